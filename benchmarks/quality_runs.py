"""The small-data quality runs and their ablation: ``cgan-lightning fit`` per variant and seed (not a test).

Each run is ``cgan-lightning fit --config examples/mnist.yaml`` (the recommended config) plus the variant's
arguments, for ``--epochs`` epochs of the data module's training split, with the whole evidence bundle
(``PerClassFID``, ``SampleQuality``, ``ClassificationAccuracyScore``) evaluated once, after the last epoch, and a
``CSVLogger`` whose final ``val/`` row is read back. The seed's loop (``benchmarks/train_throughput.py``'s
reference worker) runs the same epochs in the same pool, so the wall-time ratio is measured side by side.

Variants (``--variants`` picks some). ``recommended`` is the recommended config as shipped; ``plain`` is the same
config at one G update per batch, without its frozen-feature critic and mode-seeking term and with G's EMA at 0.998;
``baseline`` is ``plain`` with the optimizer, batch and EMA of the quality target's "today's best" (Adam at 1e-3 on
batches of 32, EMA at 0.999: FID 3.94, accuracy 0.994); every other variant adds one option to ``baseline`` or
``plain``, ``all`` every small-data option, as ``examples/mnist_small_data.yaml`` does:

- ``recommended``: ``examples/mnist.yaml`` as shipped (``plain`` plus the critic, mode seeking at 0.3, EMA 0.995,
  two G updates per batch, both learning rates decayed to zero over the second half, atypical weighting at 0.25,
  sampling with latents 1.05 times wider, rejection under class-head probability 0.7 and the feature tilt at
  temperature 6, per-class moment matching at 35 with its covariance term at 12 in 8 directions, channels-last
  networks);
- ``recommended_g3``: the same at three G updates per batch (the config before two);
- ``recommended_no_covariance``: that without the covariance term, the moment matching at 30;
- ``recommended_untilted``: that without the sampling tilt (the same training);
- ``recommended_nchw``: the same without the moment matching, with NCHW networks and latents 1.1 times wider (the
  config before them);
- ``recommended_channels_last``: that with channels-last networks (the same maths up to rounding);
- ``recommended_lr_decay``: ``recommended_nchw`` without atypical weighting and with plain sampling;
- ``recommended_constant_lr``: that at constant learning rates;
- ``recommended_g1``: that at one G update per batch;
- ``plain``: Adam at 3e-3 on batches of 16, G's EMA at 0.998, no critic, no mode seeking;
- ``plain_critic`` / ``plain_mode_seeking``: ``plain`` with the critic (and the EMA at 0.995), or with mode seeking
  at 0.3;
- ``baseline``: ``plain`` with Adam at 1e-3 on batches of 32 and G's EMA at 0.999;
- ``critic``: the frozen-feature critic (``--model.discriminator.init_args.feature_critic mnist``);
- ``lr3e3`` / ``batch16``: ``baseline`` with Adam at 3e-3, or on batches of 16 (``plain`` is both, with the EMA at
  0.998);
- ``diffaugment``: ``--model.augment [translation, cutout]`` (probability 1);
- ``ada``: the same transforms, their probability adapted (``--model.ada_target 0.6``);
- ``lecam``: ``--model.lecam_weight 0.3``;
- ``mode_seeking``: ``--model.mode_seeking_weight 1.0``;
- ``res_blocks``: one residual block at each inner resolution of G and D;
- ``wide``: twice the channels in G and D (``base_channels`` 64);
- ``all``: ``examples/mnist_small_data.yaml``.

Example (two runs at a time, one thread each, three seeds of two variants, one seed of the others)::

    python benchmarks/quality_runs.py --variants recommended baseline --seeds 42 1 2 --jobs 2
    python benchmarks/quality_runs.py --variants diffaugment ada lecam --seeds 42 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from machine import cpu_model
from runners import DEFAULT_DATA_DIR, REPO, cli_launcher, seed_loop_command

AUGMENT = "--model.augment=[translation, cutout]"
CRITIC = "--model.discriminator.init_args.feature_critic=mnist"
#: Undo what examples/mnist.yaml changed last: two G updates per batch, where it made three.
BEFORE_TWO_G_STEPS = ["--model.g_steps_per_batch=3"]
#: Undo what examples/mnist.yaml added before: the covariance term of the per-class moment matching (and the moment
#: term's weight of 35 where it was 30).
BEFORE_COVARIANCE = [*BEFORE_TWO_G_STEPS, "--model.class_covariance_weight=0", "--model.class_moment_weight=30"]
#: Undo what examples/mnist.yaml added before: sampling tilted towards the training split's features.
BEFORE_TILT = [*BEFORE_COVARIANCE, "--model.sample_tilt_temperature=0"]
#: Undo what examples/mnist.yaml changed before: latents 1.05 times wider when sampling, where they were 1.1.
BEFORE_NARROWER_LATENTS = [*BEFORE_TILT, "--model.sample_latent_scale=1.1"]
#: Undo what examples/mnist.yaml added before: the per-class moment matching and channels-last networks.
BEFORE_CLASS_MOMENTS = [*BEFORE_NARROWER_LATENTS, "--model.class_moment_weight=0",
                        "--model.generator.init_args.channels_last=false",
                        "--model.discriminator.init_args.channels_last=false"]
#: Undo what examples/mnist.yaml added after the ablation's runs: learning-rate decay, atypical weighting of D's real
#: terms and sampling with wider latents and rejection by D's class head (and what came after them).
BEFORE_LR_DECAY = [*BEFORE_CLASS_MOMENTS, "--model.lr_decay=0", "--model.atypical_weighting=0",
                   "--model.sample_latent_scale=1", "--model.sample_min_class_prob=0"]
#: examples/mnist.yaml as the ablation ran it, with one G update per batch, without its critic and mode-seeking term,
#: G's EMA at 0.998.
PLAIN = ["--config", "examples/mnist.yaml", *BEFORE_LR_DECAY, "--model.g_steps_per_batch=1",
         "--model.discriminator.init_args.feature_critic=null", "--model.mode_seeking_weight=0.0",
         "--model.ema_decay=0.998"]
BASELINE = [*PLAIN, "--model.optimizer_g.init_args.lr=0.001", "--model.optimizer_d.init_args.lr=0.001",
            "--data.batch_size=32", "--model.ema_decay=0.999"]
VARIANTS: dict[str, list[str]] = {
    "recommended": ["--config", "examples/mnist.yaml"],
    # The recommended config at three G updates per batch, before two.
    "recommended_g3": ["--config", "examples/mnist.yaml", *BEFORE_TWO_G_STEPS],
    # The recommended config before the covariance term.
    "recommended_no_covariance": ["--config", "examples/mnist.yaml", *BEFORE_COVARIANCE],
    # The recommended config before the sampling tilt (the same training as recommended_no_covariance).
    "recommended_untilted": ["--config", "examples/mnist.yaml", *BEFORE_TILT],
    # The recommended config before the per-class moment matching and channels-last networks.
    "recommended_nchw": ["--config", "examples/mnist.yaml", *BEFORE_CLASS_MOMENTS],
    # That with both networks channels-last: the same maths up to rounding, another trajectory.
    "recommended_channels_last": ["--config", "examples/mnist.yaml", *BEFORE_NARROWER_LATENTS,
                                  "--model.class_moment_weight=0"],
    # The recommended config with learning-rate decay alone (no atypical weighting, plain sampling).
    "recommended_lr_decay": ["--config", "examples/mnist.yaml", *BEFORE_LR_DECAY, "--model.lr_decay=0.5"],
    # The same at constant learning rates: the recommended config before lr_decay.
    "recommended_constant_lr": ["--config", "examples/mnist.yaml", *BEFORE_LR_DECAY],
    # And at one G update per batch: the rows of the ablation measured before g_steps_per_batch.
    "recommended_g1": ["--config", "examples/mnist.yaml", *BEFORE_LR_DECAY, "--model.g_steps_per_batch=1"],
    "plain": PLAIN,
    "plain_critic": [*PLAIN, CRITIC, "--model.ema_decay=0.995"],
    "plain_mode_seeking": [*PLAIN, "--model.mode_seeking_weight=0.3"],
    "baseline": BASELINE,
    "critic": [*BASELINE, CRITIC],
    "lr3e3": [*BASELINE, "--model.optimizer_g.init_args.lr=0.003", "--model.optimizer_d.init_args.lr=0.003"],
    "batch16": [*BASELINE, "--data.batch_size=16"],
    "diffaugment": [*BASELINE, AUGMENT, "--model.augment_p=1.0"],
    "ada": [*BASELINE, AUGMENT, "--model.ada_target=0.6", "--model.ada_kimg=100"],
    "lecam": [*BASELINE, "--model.lecam_weight=0.3"],
    "mode_seeking": [*BASELINE, "--model.mode_seeking_weight=1.0"],
    "res_blocks": [*BASELINE, "--model.generator.init_args.res_blocks=1",
                   "--model.discriminator.init_args.res_blocks=1"],
    "wide": [*BASELINE, "--model.generator.init_args.base_channels=64",
             "--model.discriminator.init_args.base_channels=64"],
    "all": ["--config", "examples/mnist_small_data.yaml"],
}
#: The metrics in the summary table: (metric, aggregate over classes). "min" columns take the worst class.
SUMMARY = (("fid/mean", "mean"), ("fid/worst", "mean"), ("acc/mean", "mean"), ("cas/mean", "mean"),
           ("cas/real", "mean"), ("coverage/class_", "min"), ("coverage/mean", "mean"), ("recall/mean", "mean"),
           ("precision/mean", "mean"), ("kid/mean", "mean"), ("memorization/mean", "mean"))


def evidence_fragment(epochs: int) -> str:
    """The evidence bundle, evaluated after the last epoch only (``every_n_epochs`` = ``epochs``)."""
    return f"""trainer:
  callbacks:
    - class_path: cgan_lightning.callbacks.PerClassFID
      init_args: {{every_n_epochs: {epochs}, samples_per_class: 1000, seed: 0}}
    - class_path: cgan_lightning.callbacks.SampleQuality
      init_args: {{every_n_epochs: {epochs}, samples_per_class: 1000, seed: 0, nearest_k: 5}}
    - class_path: cgan_lightning.callbacks.ClassificationAccuracyScore
      init_args: {{every_n_epochs: {epochs}, epochs: 3}}
"""


def final_metrics(log_dir: Path) -> dict[str, float]:
    """The last logged value of every ``val/`` metric in the run's ``metrics.csv``."""
    found: dict[str, float] = {}
    for path in sorted(log_dir.rglob("metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                found.update({k: float(v) for k, v in row.items() if k.startswith("val/") and v not in ("", None)})
    return found


def run(name: str, cmd: list[str], work: Path, threads: int) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with (work / "output.log").open("w") as out:
        code = subprocess.call(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{name}: {shlex.join(cmd)} exited with {code}; see {work / 'output.log'}")
    result: dict[str, object] = {"name": name, "seconds": seconds, "command": shlex.join(cmd)}
    if name != "seed loop":
        result["metrics"] = final_metrics(work)
    print(f"{date.today()} {name:28s} {seconds:7.1f} s", flush=True)
    return result


def split_configs(variant_args: list[str]) -> tuple[list[str], list[str]]:
    """A variant's ``--config FILE`` pairs, and its other arguments (in their order)."""
    configs: list[str] = []
    others: list[str] = []
    items = iter(variant_args)
    for item in items:
        if item == "--config":
            configs += [item, next(items)]
        elif item.startswith("--config="):
            configs.append(item)
        else:
            others.append(item)
    return configs, others


def library_command(variant_args: list[str], seed: int, args: argparse.Namespace, work: Path,
                    fragment: Path) -> list[str]:
    # The fragment's callback list replaces the configs' lists: it comes after the variant's configs and before
    # its other arguments, so a variant's `--trainer.callbacks+=...` adds to the evidence bundle.
    configs, others = split_configs(variant_args)
    return [*cli_launcher(), "fit", *configs, "--config", str(fragment), *others, f"--seed_everything={seed}",
            f"--data.data_dir={args.data_dir}", "--data.download=false", f"--trainer.max_epochs={args.epochs}",
            f"--trainer.default_root_dir={work}", "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.save_dir={work}"]


def summarize(results: list[dict[str, object]], args: argparse.Namespace) -> None:
    seed_seconds = [float(r["seconds"]) for r in results if r["name"] == "seed loop"]  # type: ignore[arg-type]
    print(f"\n{date.today()}  {cpu_model()}, {os.cpu_count()} cores, {args.jobs} runs at a time with "
          f"{args.threads} thread(s) each, {args.epochs} epochs, data {args.data_dir}")
    header = ["run", *(m.rstrip("_") + (" (worst class)" if how == "min" else "") for m, how in SUMMARY),
              "wall time", "vs seed loop"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    seed_median = statistics.median(seed_seconds) if seed_seconds else None
    for r in results:
        metrics: dict[str, float] = r.get("metrics", {})  # type: ignore[assignment]
        cells = []
        for metric, how in SUMMARY:
            values = [v for k, v in metrics.items() if k == f"val/{metric}" or
                      (how == "min" and k.startswith(f"val/{metric}"))]
            cells.append(f"{min(values):.3f}" if values else "-")
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        ratio = "-" if seed_median is None else f"{seconds / seed_median:.1f}x"
        print(f"| {r['name']} | " + " | ".join(cells) + f" | {seconds / 60:.1f} min | {ratio} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=["recommended", "baseline"])
    p.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                   help="a further variant: its name, '=', then `cgan-lightning fit` arguments (repeatable)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR), help="folder holding MNIST/raw/")
    p.add_argument("--out", default="runs/quality", help="folder for the runs and results.jsonl")
    p.add_argument("--no_seed_loop", action="store_true", help="skip the seed loop's run")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.jobs < 1 or args.threads < 1:
        p.error("--epochs, --jobs and --threads must be at least 1")
    args.variant_args = {name: VARIANTS[name] for name in args.variants}
    for spec in args.variant:
        name, sep, variant_args = spec.partition("=")
        if not sep or not name or name in VARIANTS:
            p.error(f"--variant takes NAME=ARGS with a new NAME, got {spec!r}")
        args.variant_args[name] = shlex.split(variant_args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    fragment = out / "evidence_after_last_epoch.yaml"
    fragment.write_text(evidence_fragment(args.epochs))
    seed_work = out / "seed_loop"
    tasks = [] if args.no_seed_loop else [("seed loop", seed_loop_command(args.epochs, args.data_dir, seed_work),
                                           seed_work)]
    for seed in args.seeds:
        for variant, variant_args in args.variant_args.items():
            work = out / f"{variant}_seed{seed}"
            tasks.append((f"{variant} seed {seed}", library_command(variant_args, seed, args, work, fragment), work))
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, name, cmd, work, args.threads) for name, cmd, work in tasks]
        results = []
        for future in futures:
            results.append(future.result())
            with (out / "results.jsonl").open("a") as f:
                f.write(json.dumps(results[-1]) + "\n")
    summarize(results, args)


if __name__ == "__main__":
    main()

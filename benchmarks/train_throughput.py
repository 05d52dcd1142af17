"""Training throughput: the reference loop against the library's ``Trainer.fit``, side by side (not a test).

Each side runs in a fresh subprocess (so its peak RSS is its own) on the same data, for the same number of
epochs, and is timed after the same warm-up; the two alternate ``--rounds`` times and the medians are
reported, because the machines these figures come from are shared and noisy. Besides wall-clock images/s,
each run reports images per CPU-second of its own process, which waiting for a busy core does not dilute.

- ``reference``: the design's loop written out plainly: torchvision MNIST with per-image transforms
  (Resize, ToTensor, Normalize), a shuffled ``DataLoader`` of batch 64, the two MLPs ending in Sigmoid with
  ``nn.BCELoss``, ``Adam(2e-4, betas=(0.5, 0.999))`` each, a G step then a D step per batch.
- ``library``: ``ConditionalGAN`` (reference MLPs, BCE, the same Adam) + ``MNISTDataModule`` (batch 64)
  under ``Trainer.fit`` with the options of ``--library_config`` (``examples/fast.yaml`` by default).
- ``plain`` (``--with_plain``): the fast path's maths in a bare PyTorch loop, the floor without Lightning.

``--mode eval`` times the evaluation path instead: PerClassFID on 10 classes x 1000 generated samples.

Examples::

    python benchmarks/train_throughput.py                          # CPU, 5 alternating rounds
    python benchmarks/train_throughput.py --threads 1 --with_plain  # both sides on one thread
    python benchmarks/train_throughput.py --library_config ''     # the library without the fast options
    python benchmarks/train_throughput.py --mode eval
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"


# ------------------------------------------------------------------------------------------------ helpers
def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (``VmHWM``; ``ru_maxrss`` where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: Any) -> None:
    """Wait for queued GPU work so that wall-clock time covers it."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed_result(args: argparse.Namespace, device: Any, start: float | None, cpu_start: float, seen: int,
                 batches: int) -> dict[str, Any]:
    """A hand-written loop's figures once it ends: time since the clock started at batch ``--warmup_batches``."""
    sync(device)
    if start is None:
        raise ValueError(f"--warmup_batches {args.warmup_batches} leaves no batch to time in {batches} batches")
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "images": seen, "batches": batches}


# ------------------------------------------------------------------------------------- the reference loop
def run_reference(args: argparse.Namespace) -> dict[str, Any]:
    """The design's training loop, as written there (only the timing around it is added)."""
    import torch
    import torch.nn as nn
    import torch.optim as optim
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(args.seed)
    batch_size = 64
    learning_rate = 0.0002
    latent_dim = 100
    num_classes = 10
    img_size = 28
    channels = 1
    device = torch.device(args.device)

    transform = transforms.Compose(
        [transforms.Resize(img_size), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]
    )
    train_dataset = datasets.MNIST(root=args.data_dir, train=True, transform=transform, download=False)
    train_loader = DataLoader(dataset=train_dataset, batch_size=batch_size, shuffle=True)

    class Generator(nn.Module):
        def __init__(self, latent_dim, num_classes):
            super().__init__()
            self.label_emb = nn.Embedding(num_classes, num_classes)

            def block(in_feat, out_feat, normalize=True):
                layers = [nn.Linear(in_feat, out_feat)]
                if normalize:
                    layers.append(nn.BatchNorm1d(out_feat, momentum=0.8))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                return layers

            self.model = nn.Sequential(
                *block(latent_dim + num_classes, 128, normalize=False),
                *block(128, 256),
                *block(256, 512),
                *block(512, 1024),
                nn.Linear(1024, channels * img_size * img_size),
                nn.Tanh(),
            )

        def forward(self, noise, labels):
            gen_input = torch.cat((noise, self.label_emb(labels)), -1)
            img = self.model(gen_input)
            return img.view(img.size(0), channels, img_size, img_size)

    class Discriminator(nn.Module):
        def __init__(self, latent_dim, num_classes):
            super().__init__()
            self.label_emb = nn.Embedding(num_classes, num_classes)
            self.model = nn.Sequential(
                nn.Linear(channels * img_size * img_size + num_classes, 512),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(512, 256),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(256, 1),
                nn.Sigmoid(),
            )

        def forward(self, img, labels):
            img_flat = img.view(img.size(0), -1)
            d_in = torch.cat((img_flat, self.label_emb(labels)), -1)
            return self.model(d_in)

    generator = Generator(latent_dim, num_classes).to(device)
    discriminator = Discriminator(latent_dim, num_classes).to(device)
    adversarial_loss = nn.BCELoss()
    optimizer_G = optim.Adam(generator.parameters(), lr=learning_rate, betas=(0.5, 0.999))
    optimizer_D = optim.Adam(discriminator.parameters(), lr=learning_rate, betas=(0.5, 0.999))

    seen, start, cpu_start = 0, None, 0.0
    batches = 0
    for epoch in range(args.epochs):
        for i, (imgs, labels) in enumerate(train_loader):
            if batches == args.warmup_batches:
                sync(device)
                start, cpu_start, seen = time.perf_counter(), time.process_time(), 0
            batch_size = imgs.size(0)
            real_imgs = imgs.to(device)
            labels = labels.to(device)
            valid = torch.ones(batch_size, 1, device=device)
            fake = torch.zeros(batch_size, 1, device=device)

            optimizer_G.zero_grad()
            z = torch.randn(batch_size, latent_dim, device=device)
            gen_labels = torch.randint(0, num_classes, (batch_size,), device=device)
            gen_imgs = generator(z, gen_labels)
            validity = discriminator(gen_imgs, gen_labels)
            g_loss = adversarial_loss(validity, valid)
            g_loss.backward()
            optimizer_G.step()

            optimizer_D.zero_grad()
            real_validity = discriminator(real_imgs, labels)
            d_real_loss = adversarial_loss(real_validity, valid)
            fake_validity = discriminator(gen_imgs.detach(), gen_labels)
            d_fake_loss = adversarial_loss(fake_validity, fake)
            d_loss = (d_real_loss + d_fake_loss) / 2
            d_loss.backward()
            optimizer_D.step()

            if i % 400 == 0:
                print(f"Epoch [{epoch}/{args.epochs}] Batch {i}/{len(train_loader)} "
                      f"Loss D: {d_loss.item():.4f}, loss G: {g_loss.item():.4f}", file=sys.stderr)
            batches += 1
            seen += batch_size
    return timed_result(args, device, start, cpu_start, seen, batches)


# --------------------------------------------------------------------------------------- the library run
def library_cli_args(args: argparse.Namespace) -> list[str]:
    """The library run's ``cgan-lightning fit`` arguments (less ``fit``): the config, then what equalizes the work.

    Both sides train on the same data for the same epochs, without validation or checkpoint files (the
    reference loop has neither).
    """
    cli_args = [f"--config={args.library_config}"] if args.library_config else []
    return cli_args + [
        f"--data.data_dir={args.data_dir}", "--data.download=false", "--data.batch_size=64",
        f"--trainer.max_epochs={args.epochs}", f"--trainer.default_root_dir={args.root_dir}",
        f"--trainer.accelerator={args.accelerator}", "--trainer.devices=1",
        "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        "--checkpoint.save_top_k=0", "--checkpoint.save_last=false",
        f"--seed_everything={args.seed}", *args.library_args,
    ]


def run_library(args: argparse.Namespace) -> dict[str, Any]:
    """``Trainer.fit`` of ``ConditionalGAN`` + ``MNISTDataModule`` built by the CLI from ``--library_config``."""
    from lightning.pytorch import Callback

    from cgan_lightning.callbacks.torch_threads import TorchThreads
    from cgan_lightning.cli.lightning_cli import build_cli

    class Timer(Callback):
        """Starts the clock at batch ``warmup_batches`` and stops it when fit ends; counts images in between."""

        def __init__(self) -> None:
            self.batches, self.seen, self.start, self.stop, self.cpu = 0, 0, None, None, 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.batches == args.warmup_batches:
                sync(pl_module.device)
                self.start, self.cpu, self.seen = time.perf_counter(), time.process_time(), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.batches += 1
            self.seen += batch[1].size(0)

        def on_train_end(self, trainer, pl_module) -> None:
            sync(pl_module.device)
            self.stop, self.cpu = time.perf_counter(), time.process_time() - self.cpu

    cli = build_cli(library_cli_args(args), run=False)
    if args.threads:  # --threads N: the same count on both sides, overriding the config's TorchThreads
        for callback in cli.trainer.callbacks:
            if isinstance(callback, TorchThreads):
                callback.num_threads = args.threads
    timer = Timer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if timer.start is None:
        raise ValueError(f"--warmup_batches {args.warmup_batches} leaves no batch to time in {timer.batches} batches")
    return {"seconds": timer.stop - timer.start, "cpu_seconds": timer.cpu, "images": timer.seen,
            "batches": timer.batches}


# ------------------------------------------------------------------------------------ the plain-loop floor
def plain_step(generator: Any, discriminator: Any, opt_g: Any, opt_d: Any, row_scale: Any, real: Any, labels: Any,
               autocast: Any, mark: Callable[[str], None] = lambda phase: None) -> None:
    """One batch of ``examples/fast.yaml``'s maths with no framework; ``mark(phase)`` is called as each phase ends.

    The phases: ``forward`` (G, one D forward of real and generated pairs, the losses), ``backward`` (one pass through
    D serving both updates, ``shared_d_backward``), ``g_step`` and ``d_step`` (fused Adam, zeroing included).
    """
    import torch

    from cgan_lightning.losses import bce_d_loss, bce_g_loss
    from cgan_lightning.utilities.row_gradient_scale import backward_g_and_d

    n, device = real.size(0), real.device
    with autocast:
        fake_labels = torch.randint(0, 10, (n,), device=device)
        fake = generator(torch.randn(n, 100, device=device), fake_labels)
        logits = discriminator(torch.cat((real, row_scale.mark(fake))), torch.cat((labels, fake_labels)))
        real_logits, fake_logits = logits[:n], logits[n:]
        g_loss = bce_g_loss(fake_logits)
        d_loss = bce_d_loss(real_logits, fake_logits)
    mark("forward")
    opt_g.zero_grad(set_to_none=True)
    opt_d.zero_grad(set_to_none=True)
    # The optimizers' own parameter lists: no new list per batch.
    backward_g_and_d(d_loss, g_loss, fake_logits, opt_g.param_groups[0]["params"], opt_d.param_groups[0]["params"],
                     row_scale)
    mark("backward")
    opt_g.step()
    mark("g_step")
    opt_d.step()
    mark("d_step")


def plain_setup(args: argparse.Namespace) -> tuple[Any, ...]:
    """The plain loop's data loader, networks, fused Adam optimizers, row scale and autocast context."""
    import torch

    from cgan_lightning import MLPDiscriminator, MLPGenerator, MNISTDataModule
    from cgan_lightning.utilities.cuda_check import skip_nvml_check_without_nvml
    from cgan_lightning.utilities.row_gradient_scale import RowGradientScale

    # As the library's setup does: after `import lightning` every Adam step asks for a CUDA check through NVML, which
    # fails (and costs) where no NVIDIA driver is installed. The seed loop's process never imports Lightning.
    skip_nvml_check_without_nvml()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    data = MNISTDataModule(args.data_dir, download=False, batch_size=64, seed=args.seed)
    data.setup("fit")
    generator, discriminator = MLPGenerator().to(device), MLPDiscriminator().to(device)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999), "fused": True}
    opt_g = torch.optim.Adam(generator.parameters(), **adam)
    opt_d = torch.optim.Adam(discriminator.parameters(), **adam)
    # bf16-mixed as Lightning's precision plugin does it: the forward and the losses under autocast.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=getattr(args, "plain_precision", "32-true") == "bf16-mixed")
    return data.train_dataloader(), generator, discriminator, opt_g, opt_d, RowGradientScale(), autocast, device


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    """The fast path's maths in a bare PyTorch loop: what the library would reach with no framework cost.

    The library's networks, losses and in-memory batches, fused Adam, and ``examples/fast.yaml``'s step: the
    reference order (G step, then D step on the same generated batch) with one D forward of real and generated
    pairs and one backward through D serving both updates (``shared_d_backward``); no Lightning, no logging, no
    checks; with ``--plain_precision bf16-mixed``, the forward and the losses under ``torch.autocast``.
    """
    loader, generator, discriminator, opt_g, opt_d, row_scale, autocast, device = plain_setup(args)
    seen, start, cpu_start, batches = 0, None, 0.0, 0
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        for real, labels in loader:
            if batches == args.warmup_batches:
                sync(device)
                start, cpu_start, seen = time.perf_counter(), time.process_time(), 0
            real, labels = real.to(device), labels.to(device)
            plain_step(generator, discriminator, opt_g, opt_d, row_scale, real, labels, autocast)
            batches += 1
            seen += real.size(0)
    return timed_result(args, device, start, cpu_start, seen, batches)


# ------------------------------------------------------------------------------------------- evaluation
def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """PerClassFID's work: real statistics of the test split once, then 10 x ``eval_samples`` generated digits.

    Times the engine behind the callback (``PerClassEvaluator``: what each evaluation epoch of ``fit`` costs once
    the real statistics are cached) and one end-to-end ``Trainer.validate`` with the ``PerClassFID`` callback. The
    generator is the untrained reference model: the cost does not depend on its weights.
    """
    import torch
    from lightning.pytorch import Trainer, seed_everything

    from cgan_lightning import ConditionalGAN, MNISTDataModule, PerClassEvaluator, PerClassFID
    from cgan_lightning.metrics.sampling import image_label_batches

    seed_everything(args.seed, verbose=False)
    device = torch.device(args.device)
    model = ConditionalGAN().to(device)
    data = MNISTDataModule(args.data_dir, download=False, batch_size=1000)
    data.setup("validate")

    start = time.perf_counter()
    evaluator = PerClassEvaluator(model.num_classes).to(device)
    built = time.perf_counter()
    real_images = evaluator.add_real(image_label_batches(data.val_dataloader()), batch_size=1000)
    sync(device)
    real_done = time.perf_counter()
    evaluate_seconds, cpu_seconds = [], []
    for _ in range(args.eval_repeats):
        t, c = time.perf_counter(), time.process_time()
        evaluator.evaluate(model, samples_per_class=args.eval_samples, seed=args.seed, batch_size=1000)
        sync(device)
        evaluate_seconds.append(time.perf_counter() - t)
        cpu_seconds.append(time.process_time() - c)

    trainer = Trainer(accelerator=args.accelerator, devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=args.root_dir,
                      callbacks=[PerClassFID(samples_per_class=args.eval_samples, seed=args.seed)])
    t = time.perf_counter()
    trainer.validate(model, datamodule=MNISTDataModule(args.data_dir, download=False, batch_size=64), verbose=False)
    sync(device)
    samples = model.num_classes * args.eval_samples
    return {
        "setup_seconds": built - start,
        "real_seconds": real_done - built,
        "real_images": real_images,
        "seconds": statistics.median(evaluate_seconds),
        "cpu_seconds": statistics.median(cpu_seconds),
        "images": samples,
        "validate_seconds": time.perf_counter() - t,
    }


WORKERS = {"reference": run_reference, "library": run_library, "plain": run_plain, "eval": run_eval}


# ------------------------------------------------------------------------------------------ orchestration
def worker_main(args: argparse.Namespace) -> None:
    """Run one side in this (fresh) process and write its figures as JSON to ``--result``."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = WORKERS[args.worker](args)
    result["worker"] = args.worker
    result["images_per_s"] = result["images"] / result["seconds"]
    result["images_per_cpu_s"] = result["images"] / result["cpu_seconds"]
    result["peak_rss_mib"] = peak_rss_mib()
    Path(args.result).write_text(json.dumps(result))


def spawn(side: str, args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run ``side`` in a fresh Python process (its own peak RSS) and return its figures."""
    env = dict(os.environ)
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, *argv, "--worker", side, "--result", str(result), "--root_dir", tmp]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"the {side} run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(result.read_text())


def settings(args: argparse.Namespace) -> str:
    threads = args.threads or f"torch's default ({os.cpu_count()} cores) unless the library config sets TorchThreads"
    return (f"{args.accelerator}, torch threads: {threads}, "
            f"OMP_WAIT_POLICY={args.omp_wait_policy or os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
            f"load average {os.getloadavg()[0]:.1f}")


def compare_training(args: argparse.Namespace, argv: list[str]) -> None:
    """Alternate reference and library runs ``--rounds`` times; print every round, then the medians."""
    print(f"training throughput: reference loop vs library ({args.library_config or 'library defaults'}); "
          f"{settings(args)}", flush=True)
    sides = ("reference", "library", "plain") if args.with_plain else ("reference", "library")
    rows: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    ratios, cpu_ratios = [], []
    for r in range(args.rounds):
        # Alternate which side goes first, so that a slow spell on the shared machine hits both.
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            rows[side].append(spawn(side, args, argv))
        ref, lib = rows["reference"][-1], rows["library"][-1]
        ratios.append(lib["images_per_s"] / ref["images_per_s"])
        cpu_ratios.append(lib["images_per_cpu_s"] / ref["images_per_cpu_s"])
        print(f"round {r + 1}/{args.rounds}: reference {ref['images_per_s']:6.0f} img/s "
              f"({ref['images_per_cpu_s']:.0f}/CPU-s, {ref['peak_rss_mib']:.0f} MiB), library "
              f"{lib['images_per_s']:6.0f} img/s ({lib['images_per_cpu_s']:.0f}/CPU-s, {lib['peak_rss_mib']:.0f} MiB), "
              f"ratio {ratios[-1]:.2f}x (CPU time {cpu_ratios[-1]:.2f}x)", flush=True)
        if args.with_plain:
            plain = rows["plain"][-1]
            print(f"    plain loop {plain['images_per_s']:6.0f} img/s ({plain['images_per_cpu_s']:.0f}/CPU-s, "
                  f"{plain['peak_rss_mib']:.0f} MiB)", flush=True)

    def med(side: str, key: str) -> float:
        return statistics.median(row[key] for row in rows[side])

    images = rows["library"][0]["images"]
    print(f"\nmedians of {args.rounds} alternating rounds ({args.epochs} epochs, {images} timed images per run after "
          f"{args.warmup_batches} warm-up batches; batch 64, {settings(args)}):\n")
    print("| run | images/s | images per CPU-second | peak RSS (MiB) |")
    print("|---|---:|---:|---:|")
    for side in sides:
        print(f"| {side} | {med(side, 'images_per_s'):.0f} | {med(side, 'images_per_cpu_s'):.0f} | "
              f"{med(side, 'peak_rss_mib'):.0f} |")
    print(f"| library / reference | {statistics.median(ratios):.2f}x | {statistics.median(cpu_ratios):.2f}x | "
          f"{med('library', 'peak_rss_mib') / med('reference', 'peak_rss_mib'):.2f}x |")
    print(f"\nspeed ratio per round: min {min(ratios):.2f}x, max {max(ratios):.2f}x")


def measure_eval(args: argparse.Namespace, argv: list[str]) -> None:
    """Run the evaluation worker ``--rounds`` times in fresh processes; print every run, then the medians."""
    print(f"evaluation: PerClassFID on 10 x {args.eval_samples} generated samples; {settings(args)}", flush=True)
    runs = []
    for r in range(args.rounds):
        runs.append(spawn("eval", args, argv))
        run = runs[-1]
        print(f"run {r + 1}/{args.rounds}: real statistics {run['real_seconds']:.2f} s ({run['real_images']} images), "
              f"evaluation {run['seconds']:.2f} s ({run['images_per_s']:.0f} samples/s), validate with PerClassFID "
              f"{run['validate_seconds']:.2f} s, peak RSS {run['peak_rss_mib']:.0f} MiB", flush=True)

    def med(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(f"\nmedians of {args.rounds} runs ({settings(args)}):\n")
    print("| step | seconds | images/s |")
    print("|---|---:|---:|")
    real = runs[0]["real_images"]
    print(f"| real statistics, test split ({real} images, once per run) | {med('real_seconds'):.2f} | "
          f"{real / med('real_seconds'):.0f} |")
    print(f"| one evaluation: generate + score 10 x {args.eval_samples} samples | {med('seconds'):.2f} | "
          f"{med('images_per_s'):.0f} |")
    print(f"| `Trainer.validate` with `PerClassFID` (both of the above + the validation loop) | "
          f"{med('validate_seconds'):.2f} | |")
    print(f"\npeak RSS: {med('peak_rss_mib'):.0f} MiB")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=("train", "eval"), default="train")
    p.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR), help="folder holding MNIST/raw/")
    p.add_argument("--epochs", type=int, default=4, help="epochs per timed run (each side the same)")
    p.add_argument("--warmup_batches", type=int, default=20, help="batches run before the clock starts")
    p.add_argument("--rounds", type=int, default=5, help="alternating reference/library rounds (eval: runs)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads on every side, overriding a TorchThreads callback in the library\n"
                        "config (0: torch's default, or what that callback sets)")
    p.add_argument("--omp_wait_policy", default="",
                   help="OMP_WAIT_POLICY of every side ('', the default: the environment's). PASSIVE (idle OpenMP\n"
                        "threads sleep instead of spinning) keeps 2-thread runs from stalling on a busy machine\n"
                        "but slows them on an idle one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="device of the reference loop (and of --mode eval)")
    p.add_argument("--accelerator", default="cpu", help="Trainer accelerator of the library run")
    p.add_argument("--library_config", default=str(REPO / "examples" / "fast.yaml"),
                   help="cgan-lightning config of the library run ('' for the library's defaults)")
    p.add_argument("--library_arg", dest="library_args", action="append", default=[],
                   help="one extra cgan-lightning fit argument (repeatable), e.g. --library_arg=--model.compile=true")
    p.add_argument("--with_plain", action="store_true",
                   help="also time the fast path's maths in a bare PyTorch loop (the floor without Lightning)")
    p.add_argument("--plain_precision", choices=("32-true", "bf16-mixed"), default="32-true",
                   help="precision of the plain loop: bf16-mixed runs its forward and losses under torch.autocast\n"
                        "(pair with --library_arg=--trainer.precision=bf16-mixed)")
    p.add_argument("--eval_samples", type=int, default=1000, help="--mode eval: generated samples per class")
    p.add_argument("--eval_repeats", type=int, default=3, help="--mode eval: evaluations per run (median)")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--root_dir", default=".", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not (Path(args.data_dir) / "MNIST" / "raw").is_dir():
        p.error(f"--data_dir {args.data_dir} has no MNIST/raw/ folder (expected torchvision's layout)")
    if args.epochs < 1 or args.rounds < 1 or args.warmup_batches < 0:
        p.error("--epochs and --rounds must be >= 1 and --warmup_batches >= 0")
    if args.eval_samples < 2 or args.eval_repeats < 1:
        p.error("--eval_samples must be >= 2 (FID needs a covariance) and --eval_repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
    elif args.mode == "train":
        compare_training(args, argv)
    else:
        measure_eval(args, argv)


if __name__ == "__main__":
    main()

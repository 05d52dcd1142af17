"""End to end, as users run it: ``cgan-lightning fit`` with shipped configs against the seed's loop (not a test).

Every run is a fresh process timed by wall clock from launch to exit. Start-up (imports, data loading, compile
warm-up) is cancelled by timing each side twice, for ``--epochs`` epochs and for 1 epoch: the difference is
the cost of ``epochs - 1`` epochs beyond start-up, everything an epoch does included (training, validation,
the evidence callbacks on their schedule, checkpoints, logging). Sides alternate within each round (the machines
are shared and noisy); the table gives per-side medians over the rounds, the median of the per-round ratios
(seed loop time / side time: above 1 is faster than the seed loop) and each side's median peak RSS (the
``epochs`` run's ``ru_maxrss``, from ``wait4``).

- ``seed``: the seed's loop as its design writes it (``benchmarks/train_throughput.py``'s reference worker:
  torchvision MNIST with per-image transforms, a shuffled ``DataLoader``, the MLPs, ``BCELoss``, Adam).
- every ``--side NAME=ARGS``: ``cgan-lightning fit ARGS`` plus the data and output-folder arguments.
- ``bare loop`` (``--with_bare_loop``): ``examples/fast.yaml``'s maths in a bare PyTorch loop on in-memory batches
  (``train_throughput.py``'s plain worker): no Lightning, validation, evidence, checkpoints or logging. It is the
  ceiling any framework could reach with exact maths on this machine.

On a GPU machine pass ``--device cuda`` (the seed loop picks the GPU as its design does; the bare loop runs there
too) and GPU sides, e.g. ``examples/fast_gpu.yaml``'s.

Examples::

    python benchmarks/end_to_end.py                       # the default sides, 5 rounds, 11 vs 1 epochs
    python benchmarks/end_to_end.py --rounds 3 --side fast="--config examples/fast.yaml" \
        --side bf16="--config examples/fast.yaml --trainer.precision bf16-mixed"
    python benchmarks/end_to_end.py --device cuda --warmup --epochs 31 --with_bare_loop \
        --side gpu="--config examples/fast.yaml --config examples/fast_gpu.yaml"
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from machine import cpu_model
from runners import DEFAULT_DATA_DIR, REPO, cli_launcher, worker_command

#: The sides timed by default: the shipped configs as shipped (only the epochs, data and output folder set), and
#: the reference config without its evidence callbacks (the same progress bar), which tells what the evidence costs.
NO_EVIDENCE = ("'--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.TQDMProgressBar, "
               "init_args: {refresh_rate: 10}}]'")
DEFAULT_SIDES = {
    "`reference.yaml` (with its evidence callbacks)": "--config examples/reference.yaml",
    "`reference.yaml` without the evidence callbacks": f"--config examples/reference.yaml {NO_EVIDENCE}",
    "`fast.yaml` (float32)": "--config examples/fast.yaml",
}
#: bf16 autocast, timed where the CPU multiplies bfloat16 natively (AVX-512 BF16 / AMX); add it with ``--side``.
BF16_SIDE = "--config examples/fast.yaml --trainer.precision bf16-mixed"
BARE_LOOP = "bare loop (fast.yaml's maths, no Lightning)"
#: The sides that are train_throughput.py workers rather than `cgan-lightning fit` runs.
WORKERS = {"seed loop": "reference", BARE_LOOP: "plain"}



def timed_process(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` to completion; return (wall seconds, peak RSS in MiB). Raises if it fails."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}; its output is in {log}:\n"
                           + log.read_text()[-3000:])
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def train_split_size(data_dir: str) -> int:
    """Images in the MNIST train split under ``data_dir`` (the count in its idx label file's header)."""
    from cgan_lightning.data.mnist import check_idx_file  # only here: the rounds need no torch in this process

    return check_idx_file(Path(data_dir) / "MNIST" / "raw" / "train-labels-idx1-ubyte")[0]


def library_command(side_args: str, epochs: int, args: argparse.Namespace, work: Path) -> list[str]:
    cli = [*cli_launcher(), "fit", *shlex.split(side_args)]
    return cli + [f"--data.data_dir={args.data_dir}", "--data.download=false", f"--trainer.max_epochs={epochs}",
                  f"--trainer.default_root_dir={work}"]


def side_command(name: str, epochs: int, args: argparse.Namespace, work: Path) -> list[str]:
    """The command of side ``name`` for ``epochs`` epochs, writing under ``work``."""
    if name in WORKERS:
        return worker_command(WORKERS[name], epochs, args.data_dir, work, args.device)
    return library_command(args.sides[name], epochs, args, work)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR), help="folder holding MNIST/raw/")
    p.add_argument("--epochs", type=int, default=11, help="epochs of the long run (the short run has 1)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--side", action="append", default=[], metavar="NAME=ARGS",
                   help="a library side: its name, '=', then the `cgan-lightning fit` arguments (repeatable; "
                        "default: the shipped reference and fast configs, fast also in bf16-mixed)")
    p.add_argument("--with_bare_loop", action="store_true",
                   help="also time fast.yaml's maths in a bare PyTorch loop (the ceiling with exact maths)")
    p.add_argument("--warmup", action="store_true",
                   help="run each side once for 1 epoch, untimed, before the rounds (fills torch.compile's cache, so\n"
                        "that the first round's 1-epoch run does not pay a cold compile that its long run skips)")
    p.add_argument("--device", default="cpu",
                   help="device of the seed loop and the bare loop (the library sides take theirs from their config)")
    p.add_argument("--with_bf16", action="store_true",
                   help="also time `fast.yaml --trainer.precision bf16-mixed` (slow where bf16 is emulated)")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error(f"--epochs must be at least 2 (the short run has 1 epoch), got {args.epochs}")
    sides = dict(DEFAULT_SIDES)
    if args.side:
        sides = {}
        for spec in args.side:
            name, sep, side_args = spec.partition("=")
            if not sep or not name:
                p.error(f"--side takes NAME=ARGS, got {spec!r}")
            sides[name] = side_args
    if args.with_bf16:
        sides["`fast.yaml --trainer.precision bf16-mixed`"] = BF16_SIDE
    args.sides = sides
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    names = ["seed loop", *args.sides, *([BARE_LOOP] if args.with_bare_loop else [])]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    rss: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="cgan_e2e_") as tmp:
        for name in names if args.warmup else []:
            work = Path(tmp) / f"warmup_{names.index(name)}"
            work.mkdir()
            warm_seconds, _ = timed_process(side_command(name, 1, args, work), work / "output.log")
            print(f"warm-up    {name:45s} {warm_seconds:7.2f} s (1 epoch, untimed)", flush=True)
        for round_ in range(args.rounds):
            # Alternate the order each round so that neither side always runs first on a warmed-up machine.
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                spent = {}
                for epochs in (1, args.epochs):
                    work = Path(tmp) / f"r{round_}_{len(seconds[name])}_{epochs}_{names.index(name)}"
                    work.mkdir()
                    spent[epochs], peak = timed_process(side_command(name, epochs, args, work), work / "output.log")
                seconds[name].append(spent[args.epochs] - spent[1])
                rss[name].append(peak)
                print(f"round {round_ + 1}/{args.rounds}  {name:45s} {seconds[name][-1]:7.2f} s "
                      f"({spent[args.epochs]:.1f} - {spent[1]:.1f}), peak RSS {peak:.0f} MiB", flush=True)
            for name in names:
                ratios[name].append(seconds["seed loop"][-1] / seconds[name][-1])

    seed_rss = statistics.median(rss["seed loop"])
    images = (args.epochs - 1) * train_split_size(args.data_dir)
    device = args.device
    if device.startswith("cuda"):
        import torch  # only here: the CPU tables need no torch in this process

        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    print(f"\n{date.today()}  {cpu_model()}, {os.cpu_count()} cores, device {device}, "
          f"{args.rounds} rounds, {args.epochs} epochs minus 1 epoch, data {args.data_dir}")
    print(f"\n| what ran | {args.epochs - 1} epochs beyond start-up (median) | images/s | vs seed loop (median ratio) "
          "| peak RSS (median) | RSS vs seed loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        med_rss, med_seconds = statistics.median(rss[name]), statistics.median(seconds[name])
        print(f"| {name} | {med_seconds:.2f} s | {images / med_seconds:.0f} | {statistics.median(ratios[name]):.2f}x "
              f"| {med_rss:.0f} MiB | {med_rss / seed_rss:.2f}x |")
    with_evidence, without = (f"`reference.yaml` {part}" for part in ("(with its evidence callbacks)",
                                                                      "without the evidence callbacks"))
    if with_evidence in seconds and without in seconds:
        shares = [a / b - 1 for a, b in zip(seconds[with_evidence], seconds[without], strict=True)]
        print(f"\nThe evidence callbacks cost {100 * statistics.median(shares):.1f}% of the training time "
              f"(median over rounds; rounds {', '.join(f'{100 * x:.1f}%' for x in shares)}).")


if __name__ == "__main__":
    main()

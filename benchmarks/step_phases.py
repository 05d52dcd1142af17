"""The bare loop's batch, phase by phase, round after round: which phases move with the host's load (not a test).

Runs the bare loop of ``benchmarks/train_throughput.py`` (``examples/fast.yaml``'s maths, fused Adam, no Lightning)
with the clock read between its phases (the forward, the backward, G's Adam step, D's), for ``--rounds`` rounds of
``--epochs`` epochs after one warm-up epoch, and prints milliseconds per batch. Each round then times G's Adam step
alone in a tight loop, its weights, gradients and moments (24 MB) warm in cache, as the yardstick of that step
without the rest of the batch evicting its operands. On a shared host the rounds show which phases a neighbour's
load slows: compute-bound ones (the products) or memory-bound ones (the optimizer's streams).

    python benchmarks/step_phases.py --data_dir ../shared/data --rounds 6
    python benchmarks/step_phases.py --data_dir ../shared/data --rounds 6 --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from typing import Any

import torch
from train_throughput import plain_setup, plain_step

PHASES = ("forward", "backward", "g_step", "d_step")


def phase_times(loader: Iterable[Any], networks: tuple[Any, ...], epochs: int) -> dict[str, float]:
    """Milliseconds per batch of each phase (and ``total``) over ``epochs`` passes of ``loader``."""
    seconds = dict.fromkeys(PHASES, 0.0)
    last = 0.0
    batches = 0

    def mark(phase: str) -> None:  # one closure for the whole run, not one per batch
        nonlocal last
        now = time.perf_counter()
        seconds[phase] += now - last
        last = now

    for _ in range(epochs):
        for real, labels in loader:
            last = time.perf_counter()
            plain_step(*networks[:5], real, labels, networks[5], mark)
            batches += 1
    times = {phase: 1e3 * s / batches for phase, s in seconds.items()}
    times["total"] = sum(times.values())
    return times


def adam_alone(optimizer: torch.optim.Optimizer, steps: int = 50) -> float:
    """Milliseconds of one ``optimizer.step()`` repeated in a tight loop on its current gradients (warm in cache).

    Works on a copy of the optimizer's parameters and state, so the training it was taken from is unchanged.
    """
    group = optimizer.param_groups[0]
    params = [p.detach().clone() for p in group["params"]]
    for copy, original in zip(params, group["params"], strict=True):
        copy.grad = original.grad.clone() if original.grad is not None else torch.zeros_like(copy)
    twin = type(optimizer)(params, **{k: v for k, v in group.items() if k != "params"})
    for _ in range(5):
        twin.step()
    start = time.perf_counter()
    for _ in range(steps):
        twin.step()
    return 1e3 * (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="../shared/data", help="folder holding MNIST/raw/")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default="32-true",
                        help="bf16-mixed: the forward and the losses under torch.autocast, as Lightning runs them")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1:
        parser.error(f"--rounds and --epochs must be >= 1, got {args.rounds} and {args.epochs}")
    args.device, args.plain_precision = "cpu", args.precision
    loader, generator, discriminator, opt_g, opt_d, row_scale, autocast, _ = plain_setup(args)
    networks = (generator, discriminator, opt_g, opt_d, row_scale, autocast)
    phase_times(loader, networks, 1)  # warm-up: allocator, thread pool, the optimizers' state
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {torch.get_num_threads()} threads, {args.precision}, "
          f"{args.epochs} epochs a round; ms per batch\n")
    print("| round | forward | backward | G's Adam step | D's Adam step | batch | G's Adam step alone, warm |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        times = phase_times(loader, networks, args.epochs)
        cells = " | ".join(f"{times[key]:.2f}" for key in (*PHASES, "total"))
        print(f"| {round_} | {cells} | {adam_alone(opt_g):.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""The matrix products of one training batch of the seed's design, timed alone (not a test).

``examples/fast.yaml``'s step multiplies, per batch of 64: G's five linear layers (forward, input gradient, weight
gradient) on 64 rows, and D's three on 128 (real and generated pairs in one forward). Each product is timed in a
loop with its operands warm in cache, so the sum is what the step's matrix products cost at best on this machine;
``benchmarks/profile_step.py`` gives what they cost inside the step. Prints a Markdown table per thread count.
``--dtype bfloat16`` times the same products in bfloat16 (what ``bf16-mixed`` autocast runs them in).

    python benchmarks/matmul_shapes.py
    python benchmarks/matmul_shapes.py --threads 2 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import date

import torch
from machine import cpu_model

BATCH = 64
#: (network, in_features, out_features, rows): the reference MLPs of examples/reference.yaml and fast.yaml.
LAYERS = [("G", 110, 128, BATCH), ("G", 128, 256, BATCH), ("G", 256, 512, BATCH), ("G", 512, 1024, BATCH),
          ("G", 1024, 784, BATCH), ("D", 794, 512, 2 * BATCH), ("D", 512, 256, 2 * BATCH), ("D", 256, 1, 2 * BATCH)]


def milliseconds(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    print(f"{date.today()}  {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.dtype}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        total_ms, flops = 0.0, 0
        print(f"\n{threads} thread(s)\n\n| layer | rows | forward (ms) | input gradient (ms) | weight gradient (ms) |"
              "\n|---|---:|---:|---:|---:|")
        for net, fan_in, fan_out, rows in LAYERS:
            x, w, b = (torch.randn(shape, dtype=dtype) for shape in ((rows, fan_in), (fan_out, fan_in), (fan_out,)))
            grad_out = torch.randn(rows, fan_out, dtype=dtype)
            times = (milliseconds(lambda: torch.addmm(b, x, w.t()), args.repeats),
                     milliseconds(lambda: grad_out.mm(w), args.repeats),
                     milliseconds(lambda: grad_out.t().mm(x), args.repeats))
            total_ms += sum(times)
            flops += 3 * 2 * rows * fan_in * fan_out
            print(f"| {net} {fan_in} -> {fan_out} | {rows} | " + " | ".join(f"{t:.3f}" for t in times) + " |")
        print(f"| **all** | | | | **{total_ms:.2f} ms a batch, {flops / total_ms / 1e6:.0f} GFLOP/s** |")


if __name__ == "__main__":
    main()

"""Where one training batch's time goes under ``Trainer.fit`` of a shipped config (not a test).

Builds the model, data and trainer from ``--config`` exactly as ``cgan-lightning fit`` does, then records
``--batches`` training batches after ``--warmup`` with ``torch.profiler``. Lightning's wrappers (the training
batch, ``manual_backward``, ``LightningOptimizer.step``, ``self.log``) are marked with ``record_function`` so
their own cost can be told from the work they wrap. Prints a Markdown table of milliseconds per batch:

- matrix products: ``aten::mm`` / ``addmm`` / ``bmm`` (self time);
- optimizer kernels: the Adam update itself (``_fused_adam_`` or the ``_foreach_`` ops);
- optimizer step, Python: ``torch.optim`` ``step()`` outside its kernels;
- other tensor ops: elementwise, batch norm, activations, losses, random numbers, autograd bookkeeping;
- host syncs: ``item`` / ``_local_scalar_dense`` / ``is_nonzero`` (a device read; cheap on a CPU);
- ``self.log``: Lightning's logging calls, their own tensor ops included;
- Lightning's step and backward wrappers: ``LightningOptimizer.step`` and ``manual_backward`` minus what they wrap;
- the rest of the loop: everything else in the batch's wall time (Lightning's loop and hooks, callbacks, the
  data loader, Python in ``training_step``).

Example::

    python benchmarks/profile_step.py --config examples/fast.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.core.optimizer import LightningOptimizer
from machine import cpu_model
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul_out"}
SYNCS = {"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"}
MARKS = ("self.log", "manual_backward", "LightningOptimizer.step")



def _marked(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(name):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def marked_wrappers() -> Iterator[None]:
    """Mark Lightning's per-step wrappers for the profiler (restored on exit)."""
    # log_dict calls log: marking log alone counts each call once.
    patches = [(LightningModule, "log", "self.log"),
               (LightningModule, "manual_backward", "manual_backward"),
               (LightningOptimizer, "step", "LightningOptimizer.step")]
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    for owner, attr, name in patches:
        setattr(owner, attr, _marked(name, getattr(owner, attr)))
    try:
        yield
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)


class StepProfiler(Callback):
    """Profiles training batches ``warmup`` .. ``warmup + batches`` and keeps the profiler's events."""

    def __init__(self, warmup: int, batches: int) -> None:
        self.warmup, self.batches, self.seen = warmup, batches, 0
        self.prof: profile | None = None
        self.wall = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.seen == self.warmup:
            self.prof = profile(activities=[ProfilerActivity.CPU])
            self.prof.__enter__()
            self._start = time.perf_counter()
        elif self.seen == self.warmup + self.batches and self.prof is not None:
            self.wall = time.perf_counter() - self._start
            self.prof.__exit__(None, None, None)
            trainer.should_stop = True
        self.seen += 1


def breakdown(prof: profile, wall_s: float, batches: int) -> list[tuple[str, float]]:
    """Milliseconds per batch by category (see the module docstring); the rows add up to the wall time."""
    events = prof.key_averages()
    self_ms = {e.key: e.self_cpu_time_total / 1000 for e in events}
    total_ms = {e.key: e.cpu_time_total / 1000 for e in events}
    ops = {k: v for k, v in self_ms.items() if k.startswith(("aten::", "autograd::", "torch::autograd"))}
    # Work inside the marked wrappers, by what it is.
    matmul = sum(v for k, v in ops.items() if k in MATMUL)
    syncs = sum(v for k, v in ops.items() if k in SYNCS)
    adam_kernels = sum(v for k, v in ops.items() if k == "aten::_fused_adam_" or k.startswith("aten::_foreach_"))
    step_python = sum(v for k, v in self_ms.items() if k.startswith("Optimizer.step#"))
    zero_grad = sum(v for k, v in self_ms.items() if k.startswith("Optimizer.zero_grad#"))
    log_total = total_ms.get("self.log", 0.0)
    # Ops inside self.log are counted in its row, not again among the tensor ops.
    log_ops = log_total - self_ms.get("self.log", 0.0)
    other_ops = sum(ops.values()) - matmul - syncs - adam_kernels - log_ops
    wrappers = self_ms.get("LightningOptimizer.step", 0.0) + self_ms.get("manual_backward", 0.0)
    accounted = matmul + syncs + adam_kernels + step_python + zero_grad + other_ops + log_total + wrappers
    wall_ms = wall_s * 1000
    rows = [
        ("matrix products (mm, addmm)", matmul),
        ("optimizer kernels (Adam update)", adam_kernels),
        ("optimizer step() and zero_grad(), Python", step_python + zero_grad),
        ("other tensor ops (elementwise, batch norm, losses, RNG, autograd)", other_ops),
        ("host syncs (item, is_nonzero)", syncs),
        ("self.log (Lightning logging)", log_total),
        ("LightningOptimizer.step and manual_backward wrappers", wrappers),
        ("the rest: Lightning's loop and hooks, callbacks, data loader, Python", wall_ms - accounted),
    ]
    return [(name, ms / batches) for name, ms in rows] + [("**one training batch (wall)**", wall_ms / batches)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "examples" / "fast.yaml"))
    p.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--warmup", type=int, default=30, help="batches before the profiler starts")
    p.add_argument("--batches", type=int, default=100, help="batches profiled")
    p.add_argument("--top_ops", type=int, default=0, help="also print the ops with the most own time, this many")
    p.add_argument("extra", nargs="*", help="more `cgan-lightning fit` arguments, after --")
    args = p.parse_args(argv)

    from cgan_lightning.cli.lightning_cli import build_cli

    profiler = StepProfiler(args.warmup, args.batches)
    cli_args = [f"--config={args.config}", f"--data.data_dir={args.data_dir}", "--data.download=false",
                "--trainer.max_epochs=100", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
                "--checkpoint.save_top_k=0", "--checkpoint.save_last=false", "--trainer.logger=false",
                f"--trainer.default_root_dir={REPO / 'runs' / 'profile_step'}", *args.extra]
    sys.argv = sys.argv[:1]  # the CLI parses cli_args only (LightningCLI warns when both are given)
    cli = build_cli(cli_args, run=False)  # run=False: the fit subcommand's parser, nothing run yet
    cli.trainer.callbacks.append(profiler)
    with marked_wrappers():
        cli.trainer.fit(cli.model, cli.datamodule)
    if profiler.prof is None or not profiler.wall:
        sys.exit("the run ended before the profiled batches: lower --warmup / --batches")
    print(f"{date.today()}  {cpu_model()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; {args.batches} batches after {args.warmup}; "
          f"config {Path(args.config).name} {' '.join(args.extra)}")
    print("\n| where the time goes | ms per batch | share |\n|---|---:|---:|")
    rows = breakdown(profiler.prof, profiler.wall, args.batches)
    total = rows[-1][1]
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {100 * ms / total:.0f}% |")
    if args.top_ops:
        events = sorted(profiler.prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        print("\n| op | own ms per batch | calls per batch |\n|---|---:|---:|")
        for event in events[:args.top_ops]:
            print(f"| {event.key} | {event.self_cpu_time_total / 1000 / args.batches:.2f} | "
                  f"{event.count / args.batches:.1f} |")


if __name__ == "__main__":
    main()

"""What each callback of ``cgan-lightning fit`` costs, timed inside the run it is part of (not a test).

A callback for the CLI: at ``setup`` it wraps every hook of the trainer's other callbacks with a clock and, at exit,
prints the seconds each callback spent in its hooks, the fit's wall time (from ``setup`` to ``teardown``) and the
share of the evidence callbacks: their seconds over the rest of the fit's. Both sides of that share come from the
same process in the same minutes, so a neighbour's load slows both alike; the difference of two runs' wall times
(``end_to_end.py``'s "without the evidence callbacks" side) carries each run's noise whole.

    PYTHONPATH=benchmarks cgan-lightning fit --config examples/reference.yaml --data.data_dir ../shared/data \
        --data.download false '--trainer.callbacks+=hook_timer.HookTimer'

Run as a script, it does that ``--rounds`` times in fresh processes (a config as shipped: only the data and the
output folder set) and prints each round and the medians:

    python benchmarks/hook_timer.py --rounds 3 --config examples/reference.yaml

The evidence callbacks are ``PerClassFID``, ``InterferenceTest``, ``LatentTraversal``, ``SampleQuality``,
``ClassificationAccuracyScore`` and ``BestFIDCheckpoint`` (whose writes exist because ``PerClassFID`` scores), as
configured. Callbacks whose ``setup`` runs before this one's are timed from their next hook on (a
``FixedLatentCallback``'s ``setup`` draws its latents: microseconds).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

EVIDENCE = frozenset({"PerClassFID", "InterferenceTest", "LatentTraversal", "SampleQuality",
                      "ClassificationAccuracyScore", "BestFIDCheckpoint"})
#: Callback methods Lightning calls: ``setup``, ``teardown`` and every ``on_*`` hook.
HOOKS = tuple(name for name in dir(Callback) if name.startswith("on_") or name in ("setup", "teardown"))


class HookTimer(Callback):
    """Seconds per callback, summed over its hooks; printed at exit (and written to ``result`` as JSON if given).

    Args:
        result: a JSON file for the figures (``None``: printed only).
        evidence: the class names counted as evidence (default: :data:`EVIDENCE`).
        report_at_exit: print (and write) the figures when the process exits.
    """

    def __init__(self, result: str | None = None, evidence: tuple[str, ...] = tuple(sorted(EVIDENCE)),
                 report_at_exit: bool = True) -> None:
        self.result = result
        self.evidence = frozenset(evidence)
        self.seconds: dict[str, float] = defaultdict(float)
        self.training_batches = 0.0
        self._batch_start = 0.0
        self._fit_start: float | None = None
        self._fit_seconds = 0.0
        if report_at_exit:
            atexit.register(self.report)

    def _timed(self, name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(hook)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return timed

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._fit_start is not None:  # one fit per timer: a second setup would wrap the hooks twice
            return
        self._fit_start = time.perf_counter()
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if callback is self:
                continue
            name = type(callback).__name__
            for hook in HOOKS:
                # Only hooks the callback's class overrides: the base class's are empty.
                if getattr(type(callback), hook) is not getattr(Callback, hook):
                    setattr(callback, hook, self._timed(name, getattr(callback, hook)))

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch_start = time.perf_counter()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.training_batches += time.perf_counter() - self._batch_start

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._fit_start is not None:
            self._fit_seconds = time.perf_counter() - self._fit_start

    def figures(self) -> dict[str, Any]:
        """The fit's seconds, each callback's, the evidence callbacks' sum and its share of the rest of the fit."""
        evidence = sum(seconds for name, seconds in self.seconds.items() if name in self.evidence)
        rest = self._fit_seconds - evidence
        return {"fit_s": self._fit_seconds, "training_batches_s": self.training_batches,
                "callbacks_s": dict(self.seconds), "evidence_s": evidence,
                "evidence_share": evidence / rest if rest > 0 else float("nan")}

    def report(self) -> None:
        if not self._fit_seconds:
            return
        figures = self.figures()
        for name, seconds in sorted(figures["callbacks_s"].items(), key=lambda item: -item[1]):
            print(f"{name}: {seconds:.3f} s" + (" (evidence)" if name in self.evidence else ""))
        print(f"fit {figures['fit_s']:.2f} s, training batches {figures['training_batches_s']:.2f} s, evidence "
              f"{figures['evidence_s']:.2f} s = {figures['evidence_share']:.1%} of the rest of the fit")
        if self.result:
            with open(self.result, "w") as file:
                json.dump(figures, file)


def main() -> None:
    from machine import cpu_model
    from runners import DEFAULT_DATA_DIR, REPO, cli_launcher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="examples/reference.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "benchmarks"),
                                                                      os.environ.get("PYTHONPATH")]))}
    rounds = []
    with tempfile.TemporaryDirectory() as work:
        for number in range(args.rounds):
            result = Path(work) / f"round_{number}.json"
            timer = f"{{class_path: hook_timer.HookTimer, init_args: {{result: {result}}}}}"
            command = [*cli_launcher(), "fit", "--config", args.config, "--data.data_dir", args.data_dir,
                       "--data.download", "false", "--trainer.default_root_dir", str(Path(work) / f"run_{number}"),
                       f"--trainer.callbacks+={timer}"]
            run = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
            if run.returncode != 0:
                raise SystemExit(f"round {number + 1} failed ({' '.join(command)}):\n{run.stderr[-3000:]}")
            rounds.append(json.loads(result.read_text()))
            figures = rounds[-1]
            print(f"round {number + 1}: fit {figures['fit_s']:.2f} s, training batches "
                  f"{figures['training_batches_s']:.2f} s, evidence {figures['evidence_s']:.2f} s "
                  f"({figures['evidence_share']:.1%} of the rest of the fit, "
                  f"{figures['evidence_s'] / figures['training_batches_s']:.1%} of the training batches)", flush=True)
    print(f"{args.config}, {len(rounds)} rounds, {date.today()}, {cpu_model()}, {os.cpu_count()} cores")
    for name in sorted({name for figures in rounds for name in figures["callbacks_s"]}):
        seconds = statistics.median(figures["callbacks_s"].get(name, 0.0) for figures in rounds)
        print(f"| {name} | {seconds:.3f} s |")
    for key in ("fit_s", "training_batches_s", "evidence_s"):
        print(f"| {key} | {statistics.median(figures[key] for figures in rounds):.2f} s |")
    share = statistics.median(figures["evidence_share"] for figures in rounds)
    of_batches = statistics.median(figures["evidence_s"] / figures["training_batches_s"] for figures in rounds)
    print(f"evidence: median {share:.1%} of the rest of the fit, {of_batches:.1%} of the training batches")


if __name__ == "__main__":
    main()

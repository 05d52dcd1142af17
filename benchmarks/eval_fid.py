"""Time one full per-class evaluation: 10 classes x 1000 generated samples against cached real statistics (not a test).

What is timed is what ``PerClassFID`` does at each validation once the real statistics exist: generate 10 x 1000
images with the reference MLP generator, extract classifier features and predictions in batches, and compute 11
FIDs (10 classes + pooled) and the per-class accuracy. The one-off real pass (10k test images) is timed separately.
Wall time and this process's CPU time are both printed: on a shared machine the wall time includes waiting for the
cores, the CPU time does not.

Examples::

    python benchmarks/eval_fid.py                              # real MNIST test split from ../shared/data
    python benchmarks/eval_fid.py --ckpt runs/mnist/.../last.ckpt --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from cgan_lightning import ConditionalGAN, MNISTDataModule, PerClassEvaluator
from cgan_lightning.metrics.sampling import image_label_batches

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, cpu) seconds since ``start``."""
    return time.perf_counter() - start[0], time.process_time() - start[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR), help="folder holding MNIST/raw/")
    parser.add_argument("--ckpt", default=None, help="a ConditionalGAN checkpoint (default: untrained reference MLP)")
    parser.add_argument("--samples_per_class", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target machine has 2 cores)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ConditionalGAN.load_from_checkpoint(args.ckpt, map_location="cpu") if args.ckpt else ConditionalGAN()
    model.eval()
    data = MNISTDataModule(args.data_dir, download=False)
    data.setup("validate")

    start = _clock()
    evaluator = PerClassEvaluator(model.num_classes)
    n_real = evaluator.add_real(image_label_batches(data.val_dataloader()))
    wall, cpu = _elapsed(start)
    print(f"real statistics ({n_real} images, once per run): wall {wall:6.2f} s   cpu {cpu:6.2f} s")

    walls, cpus = [], []
    scores: dict[str, float] = {}
    for i in range(args.repeats):
        start = _clock()
        scores = evaluator.evaluate(model, samples_per_class=args.samples_per_class, seed=0, batch_size=args.batch_size)
        wall, cpu = _elapsed(start)
        walls.append(wall)
        cpus.append(cpu)
        print(f"evaluation {i + 1}: 10 x {args.samples_per_class} samples: wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    print(f"median over {args.repeats}: wall {statistics.median(walls):.2f} s, cpu {statistics.median(cpus):.2f} s "
          f"({torch.get_num_threads()} threads; target: < 10 s on 2 cores)")
    print(f"val/fid/mean {scores['fid/mean']:.2f}  val/fid/overall {scores['fid/overall']:.2f}  "
          f"val/acc/mean {scores['acc/mean']:.3f}")


if __name__ == "__main__":
    main()

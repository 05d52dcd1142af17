"""Per-class FID of checkpoints in several feature spaces: is a gain real, or only in the space G was trained against?

The evidence callbacks score in the shipped classifier's feature space. A generator whose discriminator reads another
classifier's features (``feature_critic``) could look better there without being better. This prints the mean
per-class FID (against the real evaluation split, on ``PerClassFID``'s samples) in the shipped classifier's space, in
the space of every ``--classifier`` given (train them with another seed), and in pixel space, which no network shapes;
the first row is the real training split (the floor).

    python -m cgan_lightning.metrics.classifier_training --data_dir ../shared/data --seed 2 --out /tmp/clf_seed2.pt
    python benchmarks/feature_space_fid.py --data_dir ../shared/data --classifier /tmp/clf_seed2.pt \\
        --ckpt runs/a/.../last.ckpt runs/b/.../last.ckpt
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from fid_terms import generated_images, load_generator, mean_class_fid
from torch import Tensor

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.features import ClassifierFeatures


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", nargs="+", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--classifier", nargs="*", default=[], help="more classifier files (save_classifier format)")
    parser.add_argument("--samples_per_class", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spaces: dict[str, Callable[[Tensor], Tensor]] = {"shipped classifier": ClassifierFeatures()}
    spaces.update({Path(p).name: ClassifierFeatures(p) for p in args.classifier})
    spaces["pixels"] = lambda images: images.flatten(1)
    data = MNISTDataModule(args.data_dir, download=False)
    (train_images, train_labels), (eval_images, eval_labels) = data.split("train"), data.split("test")
    train_images, eval_images = normalize(train_images), normalize(eval_images)
    real = {name: space(eval_images) for name, space in spaces.items()}

    print("| images | " + " | ".join(spaces) + " |")
    print("|---|" + "---:|" * len(spaces))
    floors = [mean_class_fid(space(train_images), train_labels, real[name], eval_labels)
              for name, space in spaces.items()]
    print("| real training split (floor) | " + " | ".join(f"{v:.2f}" for v in floors) + " |")
    for ckpt in args.ckpt:
        model = load_generator(ckpt)
        images, labels = generated_images(model, args.samples_per_class, args.seed)
        values = [mean_class_fid(space(images), labels, real[name], eval_labels) for name, space in spaces.items()]
        print(f"| {ckpt} | " + " | ".join(f"{v:.2f}" for v in values) + " |", flush=True)


if __name__ == "__main__":
    main()

"""Use cgan-lightning from Python: load a checkpoint written by `cgan-lightning fit` and draw chosen digits.

    python examples/generate_digits.py runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --label 7 --out sevens.png
"""

from __future__ import annotations

import argparse

import torch
from torchvision.utils import save_image

from cgan_lightning import ConditionalGAN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt_path")
    parser.add_argument("--label", type=int, default=7)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="digits.png")
    args = parser.parse_args()

    model = ConditionalGAN.load_from_checkpoint(args.ckpt_path, map_location="cpu")
    if not 0 <= args.label < model.num_classes:
        parser.error(f"--label must be one of the checkpoint's labels, 0..{model.num_classes - 1}; got {args.label}")
    images = model.sample([args.label] * args.n, generator=torch.Generator().manual_seed(args.seed))
    save_image(images, args.out, nrow=8, normalize=True, value_range=(-1, 1))
    print(f"wrote {args.n} images of label {args.label} to {args.out}")


if __name__ == "__main__":
    main()

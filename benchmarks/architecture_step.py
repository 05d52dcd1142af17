"""Time one training batch (G forward, one D step, one G step) of the networks of the shipped configs.

Builds G and D from a config's ``model`` section (any ``examples/*.yaml``), then runs the same arithmetic as
``ConditionalGAN.training_step`` on random images: the chosen loss, its penalty and R1 if set, the AC-GAN head's
loss if D has one, ``d_steps_per_g_step`` D updates, fused Adam. Prints the median milliseconds per batch over
``--steps`` batches (after two warm-up batches) and the implied minutes for 20 epochs of 5,000 images.

Run it with ``--threads 1`` and ``--threads 2`` to see the effect of sharing the cores: when other jobs run on
the same two cores, PyTorch's two intra-op threads wait on each other, and one thread is much faster.

Example::

    python benchmarks/architecture_step.py examples/mnist.yaml examples/mnist_dcgan_projection.yaml --threads 1
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from functools import partial
from typing import Any

import torch
import yaml

from cgan_lightning.losses import get_loss, r1_penalty


def _build(spec: dict[str, Any], *args: Any) -> torch.nn.Module:
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(*args, **spec.get("init_args", {}))


def _adam(spec: dict[str, Any], params: Any) -> torch.optim.Optimizer:
    kwargs = {"lr": 2e-4, "betas": (0.5, 0.999), **spec.get("init_args", {})}
    kwargs["betas"] = tuple(kwargs["betas"])
    return torch.optim.Adam(params, **kwargs)


def time_config(path: str, steps: int) -> tuple[float, int]:
    """Median seconds per batch of the config at ``path`` and its batch size."""
    config = yaml.safe_load(open(path))
    model, batch_size = config["model"], int(config.get("data", {}).get("batch_size", 64))
    latent_dim, shape = int(model.get("latent_dim", 100)), (1, 28, 28)
    g = _build(model["generator"], latent_dim, 10, shape)
    d = _build(model["discriminator"], 10, shape)
    opt_g = _adam(model.get("optimizer_g", {}), g.parameters())
    opt_d = _adam(model.get("optimizer_d", {}), d.parameters())
    loss = get_loss(model.get("loss", "bce"))
    penalties = [p for p in (loss.penalty,) if p]
    if model.get("r1_gamma"):
        penalties.append(partial(r1_penalty, gamma=float(model["r1_gamma"])))
    judge = getattr(d, "logits_and_aux_loss", None) or (lambda x, y: (d(x, y), None))
    real = torch.rand(batch_size, *shape) * 2 - 1
    labels = torch.randint(0, 10, (batch_size,))

    def batch() -> None:
        fake = g(torch.randn(batch_size, latent_dim), labels)
        for _ in range(int(model.get("d_steps_per_g_step", 1))):
            real_logits, aux = judge(real, labels)
            d_loss = loss.d_loss(real_logits, judge(fake.detach(), labels)[0]) + (aux if aux is not None else 0)
            for penalty in penalties:
                d_loss = d_loss + penalty(d, real, fake.detach(), labels)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        fake_logits, aux = judge(fake, labels)
        g_loss = loss.g_loss(fake_logits) + (aux if aux is not None else 0)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        batch()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times), batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="YAML configs, e.g. examples/mnist.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed batches per config")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={torch.get_num_threads()}")
    for path in args.configs:
        seconds, batch_size = time_config(path, args.steps)
        minutes = seconds * (-(-5000 // batch_size)) * 20 / 60
        print(f"{path}: {seconds * 1000:.1f} ms per batch of {batch_size} -> {minutes:.1f} min for 20 epochs "
              "of 5,000 images (training arithmetic only)", flush=True)


if __name__ == "__main__":
    main()

"""Building G and D from their factories, with one clear error when a network does not fit the GAN."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

GENERATOR_SIGNATURE = ("factory(latent_dim, num_classes, image_shape) returning an nn.Module whose "
                       "forward(z [B, latent_dim], labels [B]) returns images [B, C, H, W]")
DISCRIMINATOR_SIGNATURE = ("factory(num_classes, image_shape) returning an nn.Module whose "
                           "forward(images [B, C, H, W], labels [B]) returns one logit per image [B]")

#: What running out of memory looks like (torch.OutOfMemoryError is a RuntimeError on CUDA; the CPU allocator
#: raises a plain RuntimeError).
_OOM_MARKERS = ("out of memory", "not enough memory", "DefaultCPUAllocator", "can't allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is PyTorch running out of (CPU or GPU) memory."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError | MemoryError) and any(m in str(error) for m in _OOM_MARKERS)


def _name(factory: Any) -> str:
    # functools.partial, also jsonargparse's partial(call_without_instantiate_context, instantiator, cls, ...)
    target = next((a for a in getattr(factory, "args", ()) if isinstance(a, type)), None)
    target = target or getattr(factory, "func", factory)
    name = getattr(target, "__qualname__", None) or type(target).__name__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module and not module.startswith("cgan_lightning") else name


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def build_network(factory: Callable[..., Any], args: tuple[Any, ...], role: str) -> nn.Module:
    """Call ``factory(*args)`` and check that the result works as the GAN's ``role`` (``generator``/``discriminator``).

    One forward pass of a copy on two all-zero inputs (eval mode, RNG state kept) checks the output shape, so a network
    that does not fit fails here, naming the setting and the expected signature, instead of deep inside training.

    Args:
        factory: the ``model.generator`` / ``model.discriminator`` setting.
        args: ``(latent_dim, num_classes, image_shape)`` for the generator, ``(num_classes, image_shape)`` for D.
        role: ``"generator"`` or ``"discriminator"``.

    Raises:
        ValueError: the factory rejects the arguments (e.g. negative layer sizes), runs out of memory, does not
            return an ``nn.Module``, or the network's forward fails or returns the wrong shape.
    """
    signature = GENERATOR_SIGNATURE if role == "generator" else DISCRIMINATOR_SIGNATURE
    name = _name(factory)
    try:
        network = factory(*args)
    except ValueError as err:
        raise ValueError(f"model.{role} ({name}): {err}") from err
    except (TypeError, RuntimeError, MemoryError) as err:
        if is_out_of_memory(err):
            raise ValueError(f"model.{role} ({name}) does not fit in memory with {args}: {_first_line(err)}; use "
                             "smaller layers or latent_dim") from err
        raise ValueError(f"model.{role} ({name}) could not be built with {args}: {_first_line(err)}. Expected "
                         f"{signature}, with positive layer sizes") from err
    if not isinstance(network, nn.Module):
        raise ValueError(f"model.{role} ({name}) returned {type(network).__name__}, not an nn.Module; expected "
                         f"{signature}")
    _probe(network, args, role, name, signature)
    return network


@torch.no_grad()
def _probe(network: nn.Module, args: tuple[Any, ...], role: str, name: str, signature: str) -> None:
    image_shape = tuple(args[-1])
    device = next((p.device for p in network.parameters()), torch.device("cpu"))
    labels = torch.zeros(2, dtype=torch.long, device=device)
    if role == "generator":
        inputs: tuple[Tensor, ...] = (torch.zeros(2, args[0], device=device), labels)
        expected: tuple[int, ...] = (2, *image_shape)
    else:
        inputs = (torch.zeros(2, *image_shape, device=device), labels)
        expected = (2,)
    try:  # a copy: the probe must leave no trace (call counters, lazy initialization, running statistics)
        probe = copy.deepcopy(network).eval()
    except Exception:  # a network that cannot be copied is not probed; its first training step will tell
        return
    try:
        with torch.random.fork_rng(devices=[]):  # dropout must not shift the training's RNG stream either
            out = probe(*inputs)
    except Exception as err:  # any failure here means the network does not fit the GAN
        if is_out_of_memory(err):
            raise ValueError(f"model.{role} ({name}) does not fit in memory: {_first_line(err)}") from err
        raise ValueError(f"model.{role} ({name}) does not fit: calling it as the {role} failed with "
                         f"{_first_line(err)}. Expected {signature}") from err
    shape = tuple(out.shape) if isinstance(out, Tensor) else None
    ok = shape == expected or (role == "discriminator" and shape is not None and out.numel() == 2 and shape[0] == 2)
    if not ok:
        got = shape if shape is not None else type(out).__name__
        raise ValueError(f"model.{role} ({name}) does not fit: for a batch of 2 it returned {got}, expected "
                         f"{expected}. Expected {signature}")


__all__ = ["DISCRIMINATOR_SIGNATURE", "GENERATOR_SIGNATURE", "build_network", "is_out_of_memory"]

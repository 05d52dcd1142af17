"""An exponential moving average (EMA) of the generator's weights.

Sampling from an EMA of G's weights gives smoother, usually better digits than the last training step's
weights, at the cost of one extra copy of G. Only G is averaged: D is never sampled from.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from cgan_lightning.utilities.eval_mode import eval_mode


class GeneratorEMA(nn.Module):
    """Keeps ``ema = d * ema + (1 - d) * weights`` for every parameter of a network, after each optimizer step.

    With ``warmup`` (default), the ``n``-th update uses ``d = min(decay, (1 + n) / (10 + n))`` (as TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``): early on the average follows the network closely instead of
    staying near its random initialization for the ~``1 / (1 - decay)`` steps a plain EMA needs to forget it, which
    matters for short runs (0.999 over 800 steps would still weigh the initial weights by 0.999^800 = 45%).
    The update count is a Python int kept in the module's extra state (saved in checkpoints), so computing
    ``d`` reads nothing from the device.

    The average lives in ``self.module``, a frozen copy of the network (``requires_grad=False``, evaluated in
    eval mode), so it moves with ``.to(device)``, is saved in the owner's ``state_dict`` (hence in
    checkpoints), and is ignored by optimizers and by DDP's gradient reduction.

    Buffers (BatchNorm running statistics and counters) are copied from the live network at every update
    rather than averaged: they describe the activations of recent weights and need no smoothing.

    :meth:`update` runs one ``torch._foreach_lerp_`` over all parameters and one ``torch._foreach_copy_``
    over the buffers: a few kernel launches, no host synchronization, nothing read back to the CPU.

    Args:
        network: the network to average; copied at construction (the average starts at its weights).
        decay: weight of the old average at each update, in ``(0, 1)``; ``0.999`` averages over roughly
            the last 1,000 updates.
        warmup: ramp the decay up from 0.1 as ``(1 + n) / (10 + n)`` until it reaches ``decay``.

    Raises:
        ValueError: ``decay`` outside ``(0, 1)``.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must lie strictly between 0 and 1 (e.g. 0.999), got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(network)
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Move the average one step toward ``network``'s current weights (call after each optimizer step).

        Args:
            network: the live network; same architecture as the one given at construction.
        """
        ema_params: list[Tensor] = list(self.module.parameters())
        params = [p.detach() for p in network.parameters()]
        if len(ema_params) != len(params):
            raise ValueError(f"network has {len(params)} parameters but the EMA copy has {len(ema_params)}")
        if ema_params:
            torch._foreach_lerp_(ema_params, params, 1.0 - self.current_decay())
        self.updates += 1
        ema_buffers = list(self.module.buffers())
        if ema_buffers:
            torch._foreach_copy_(ema_buffers, list(network.buffers()))

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def get_extra_state(self) -> dict[str, int]:
        # Saved in the owner's state_dict (and checkpoints): a resumed run continues the same warmup.
        return {"updates": self.updates}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.updates = int(state["updates"])

    @torch.no_grad()
    def forward(self, *args: object, **kwargs: object) -> object:
        """Run the averaged network in eval mode (its train/eval flag is restored afterwards)."""
        # The flag itself follows the LightningModule's train()/eval() (Lightning warns about modules left
        # in eval mode at fit start); the average is only ever evaluated.
        with eval_mode(self.module):
            return self.module(*args, **kwargs)


__all__ = ["GeneratorEMA"]

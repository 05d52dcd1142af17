"""Data-parallel (DDP) training of a GAN under manual optimization.

Lightning's ``DDPStrategy`` wraps the whole LightningModule in one ``DistributedDataParallel``, whose reducer
expects every parameter to receive a gradient in every backward. A GAN step trains one half at a time: with
``toggled_optimizer`` the other half is frozen and gets no gradient, so stock DDP stops with "parameters that
were not used in producing the loss" unless ``find_unused_parameters=True``, which then walks the autograd
graph and all-reduces the frozen half's (zero) gradients in every backward as well.

:class:`GANDDPStrategy` keeps Lightning's DDP machinery (process launch, ranks, samplers, ``sync_dist``,
rank-0 checkpoints) but replaces the wrapper: after each backward it averages the gradients of exactly the
parameters that backward trained, in one all-reduce. It is registered as ``gan_ddp`` (``gan_ddp_spawn``,
``gan_ddp_notebook``), and the ``cgan-lightning`` CLI uses it for ``--trainer.strategy ddp``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from datetime import timedelta
from types import FrameType
from typing import Any, Literal, cast

import torch
import torch.distributed as dist
from lightning.fabric.plugins import CheckpointIO, ClusterEnvironment
from lightning.pytorch.accelerators import Accelerator
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import DDPStrategy, Strategy, StrategyRegistry
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from typing_extensions import override

from cgan_lightning.utilities.lightning_internals import (
    ddp_wrapper_kwargs,
    mark_sigterm_received,
    sigterm_handlers_without_lightnings_broadcast,
)

StartMethod = Literal["popen", "spawn", "fork", "forkserver"]

#: Stock DDP names that the CLI maps to the GAN-aware strategy with the same start method.
_GAN_STRATEGY_FOR = {
    "ddp": "gan_ddp",
    "ddp_spawn": "gan_ddp_spawn",
    "ddp_fork": "gan_ddp_notebook",
    "ddp_notebook": "gan_ddp_notebook",
}


def _groups(tensors: Iterable[Tensor]) -> list[list[Tensor]]:
    """Split tensors by (device, dtype): each group travels as one flat buffer."""
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return list(groups.values())


@torch.no_grad()
def broadcast_from_rank_zero(tensors: Iterable[Tensor]) -> None:
    """Overwrite ``tensors`` in place with global rank 0's values: one ``broadcast`` per (device, dtype).

    Every rank must pass tensors of the same shapes in the same order.
    """
    for group in _groups(tensors):
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.broadcast(flat, src=0)
        torch._foreach_copy_(group, [v.view_as(t) for v, t in zip(flat.split([t.numel() for t in group]), group)])


@torch.no_grad()
def average_gradients(params: Iterable[Tensor], world_size: int) -> None:
    """Replace each parameter's gradient by its mean over all ranks: one ``all_reduce`` per (device, dtype).

    As DDP with ``find_unused_parameters``: a rank with no gradient for a parameter contributes zeros, and a
    parameter that has no gradient on any rank keeps ``grad = None`` (so optimizers skip it everywhere).

    Args:
        params: the parameters to synchronize, in the same order on every rank.
        world_size: number of processes (the gradients are divided by it, then summed).

    Raises:
        ValueError: a sparse gradient (e.g. ``nn.Embedding(sparse=True)``), which this flat all-reduce can't carry.
    """
    for group in _groups(params):
        if any(p.grad is not None and p.grad.is_sparse for p in group):
            raise ValueError("GANDDPStrategy averages dense gradients only; build embeddings with sparse=False")
        local = [p.grad is not None for p in group]
        k = len(group)
        first = group[0]
        # Gradients, then one has-a-gradient flag per parameter; the sum of the flags tells who had one. The
        # usual all-present flags are filled on the device: no host-to-device copy, hence no GPU sync.
        flags = first.new_ones(k) if all(local) else torch.tensor(local, dtype=first.dtype, device=first.device)
        flat = torch.cat([p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in group]
                         + [flags])
        # Divide before summing, as DDP does, so half-precision gradients don't overflow in the sum.
        flat[:-k].div_(world_size)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        values = [v.view_as(p) for v, p in zip(flat[:-k].split([p.numel() for p in group]), group)]
        if all(local):  # the usual case: no host read
            torch._foreach_copy_(cast("list[Tensor]", [p.grad for p in group]), values)  # all(local): none is None
            continue
        counts = flat[-k:].tolist()
        for p, value, count in zip(group, values, counts):
            if p.grad is not None:
                p.grad.copy_(value)
            elif count > 0:
                p.grad = value.clone()


class GANDDPStrategy(DDPStrategy):
    """Multi-process data parallelism for modules that train parts of themselves in separate backwards (GANs).

    Differences from Lightning's ``DDPStrategy`` (everything else, launch, ranks, ``sync_dist``, rank-0
    checkpointing and logging, is inherited):

    - The module is not wrapped in ``DistributedDataParallel``. At setup every rank takes rank 0's parameters
      and buffers. After every backward (``manual_backward`` or Lightning's automatic one), the gradients of the
      parameters that currently require grad are averaged over ranks in one all-reduce. Under
      ``toggled_optimizer`` those are exactly the network being trained, so the frozen half costs nothing and no
      graph walk is needed (without toggling, every trainable parameter is synced: correct, more traffic).
    - After every training step all buffers (BatchNorm running statistics, the EMA's copy of them) are
      broadcast from rank 0, so every rank holds the same model whenever a callback, validation or a checkpoint
      sees it. This keeps the statistics of rank 0's batches, as DDP's ``broadcast_buffers`` does;
      ``Trainer(sync_batchnorm=True)`` (GPU only in torch) normalizes with the statistics of the global batch.

    Gradients are reduced when the backward has finished rather than overlapped with it; for GAN-sized models
    that is one all-reduce of a few MB per optimizer step.

    Args:
        accelerator: as for ``DDPStrategy`` (the Trainer fills it in).
        parallel_devices: as for ``DDPStrategy`` (the Trainer fills it in).
        cluster_environment: as for ``DDPStrategy`` (detected: torchrun, SLURM, ...).
        checkpoint_io: as for ``DDPStrategy``.
        precision_plugin: as for ``DDPStrategy``.
        process_group_backend: ``nccl`` on GPUs and ``gloo`` on CPUs when ``None``.
        timeout: how long a collective may wait for the other ranks.
        start_method: ``popen`` (a script or the CLI relaunched per rank), ``spawn``, ``fork`` (notebooks).
    """

    strategy_name = "gan_ddp"

    def __init__(
        self,
        accelerator: Accelerator | None = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: ClusterEnvironment | None = None,
        checkpoint_io: CheckpointIO | None = None,
        precision_plugin: Precision | None = None,
        process_group_backend: str | None = None,
        timeout: timedelta | None = None,
        start_method: StartMethod = "popen",
    ) -> None:
        super().__init__(
            accelerator=accelerator,
            parallel_devices=parallel_devices,
            cluster_environment=cluster_environment,
            checkpoint_io=checkpoint_io,
            precision_plugin=precision_plugin,
            process_group_backend=process_group_backend,
            timeout=timeout,
            start_method=start_method,
        )
        #: The ``inputs=`` of the backward in progress (``None``: not restricted).
        self._backward_inputs: Tensor | Iterable[Tensor] | None = None
        #: A SIGTERM reached this rank; the ranks agree on it at the end of each training step.
        self._sigterm_requested = False

    def _is_multiprocess(self) -> bool:
        return dist.is_available() and dist.is_initialized() and self.world_size > 1

    @override
    def configure_ddp(self) -> None:
        """Start every rank from rank 0's weights and buffers (instead of wrapping in DistributedDataParallel)."""
        if self._is_multiprocess():
            assert self.model is not None
            broadcast_from_rank_zero(list(self.model.parameters()) + list(self.model.buffers()))

    @override
    def backward(self, closure_loss: Tensor, optimizer: Any, *args: Any, **kwargs: Any) -> Tensor:
        # A backward restricted with ``inputs=`` (ConditionalGAN(step_order="g_first")) trains exactly those.
        self._backward_inputs = kwargs.get("inputs")
        try:
            return super().backward(closure_loss, optimizer, *args, **kwargs)
        finally:
            self._backward_inputs = None

    @override
    def post_backward(self, closure_loss: Tensor) -> None:
        """Average the gradients this backward produced: of its ``inputs=`` if given, else of the parameters that
        require grad (the network ``toggled_optimizer`` left trainable)."""
        if self._is_multiprocess():
            assert self.lightning_module is not None
            inputs = self._backward_inputs
            if inputs is not None:
                params = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            else:
                params = [p for p in self.lightning_module.parameters() if p.requires_grad]
            if params:
                average_gradients(params, self.world_size)

    @override
    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        output = super().training_step(*args, **kwargs)
        if self._is_multiprocess():
            assert self.lightning_module is not None
            buffers = list(self.lightning_module.buffers())
            if buffers:
                broadcast_from_rank_zero(buffers)
            self._agree_on_sigterm()
        return output

    @override
    def on_train_start(self) -> None:
        super().on_train_start()
        if self._is_multiprocess() and threading.current_thread() is threading.main_thread():
            # Lightning's SIGTERM handler calls dist.broadcast wherever the signal lands, e.g. while this rank
            # waits in a gradient all_reduce and the other in the handler's broadcast: both then wait forever.
            # This one only records the signal (and forwards it to the local ranks, as Lightning's does); the
            # ranks agree on it at the end of each training step, and all stop after the same batch.
            assert self.lightning_module is not None
            self._sigterm_requested = False
            signal.signal(signal.SIGTERM, sigterm_handlers_without_lightnings_broadcast(
                self.lightning_module.trainer, self._on_sigterm))

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if not self._sigterm_requested and self.launcher is not None:
            self.launcher.kill(signum)
        self._sigterm_requested = True

    def _agree_on_sigterm(self) -> None:
        """One all-reduce: if any rank got a SIGTERM, every rank marks it, so the fit loop stops them together."""
        flag = torch.full((1,), float(self._sigterm_requested), device=self.root_device)  # a fill: no host copy
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            assert self.lightning_module is not None
            self._sigterm_requested = True
            mark_sigterm_received(self.lightning_module.trainer)

    @classmethod
    @override
    def register_strategies(cls, strategy_registry: Any) -> None:
        for name, start_method in (("gan_ddp", "popen"), ("gan_ddp_spawn", "spawn"), ("gan_ddp_notebook", "fork")):
            if name not in strategy_registry:
                strategy_registry.register(
                    name, cls, description=f"GAN-aware DDP, start method {start_method!r}", start_method=start_method
                )


GANDDPStrategy.register_strategies(StrategyRegistry)


def gan_strategy_name(strategy: str | Strategy) -> str | Strategy:
    """Map the stock DDP names (``ddp``, ``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``) to their ``gan_ddp`` twins.

    Anything else (``auto``, a strategy object, ``ddp_find_unused_parameters_true``, ...) is returned unchanged.
    """
    return _GAN_STRATEGY_FOR.get(strategy, strategy) if isinstance(strategy, str) else strategy


def allow_unused_parameters(strategy: Strategy) -> None:
    """Make a stock ``DDPStrategy`` tolerate the frozen half of a GAN step (``find_unused_parameters=True``).

    Called from the module's ``setup`` (before the model is wrapped), so ``Trainer(strategy="ddp")`` and
    ``devices=N`` with ``strategy="auto"`` train correctly; :class:`GANDDPStrategy` is left untouched.
    """
    if not isinstance(strategy, DDPStrategy) or isinstance(strategy, GANDDPStrategy):
        return
    ddp_kwargs = ddp_wrapper_kwargs(strategy)
    if ddp_kwargs is None:
        return
    if ddp_kwargs.get("static_graph"):
        raise ValueError(
            "DDPStrategy(static_graph=True) can't train a GAN step: its D and G backwards use different "
            "parameters. Use strategy='gan_ddp' (or 'ddp', which the cgan-lightning CLI maps to it)."
        )
    if ddp_kwargs.get("find_unused_parameters"):
        return
    ddp_kwargs["find_unused_parameters"] = True
    rank_zero_info(
        "DDPStrategy: enabled find_unused_parameters (each GAN backward trains only G or D). "
        "strategy='gan_ddp' trains the same way with fewer all-reduces."
    )


__all__: list[str] = [
    "GANDDPStrategy",
    "allow_unused_parameters",
    "average_gradients",
    "broadcast_from_rank_zero",
    "gan_strategy_name",
]

"""Rescale, row by row, the gradient that flows back into a batch: one backward through D for both GAN updates.

In the reference order (a G step, then a D step on the same generated batch, D unchanged in between) G's loss and
D's fake term read the same logits ``l = D(x)`` of the generated images ``x``. When D scores each row on its own
(no batch norm), the gradient of any loss of the logits reaches row ``i`` of ``x`` as ``u_i * dl_i/dx_i``, where
``u_i`` is that loss's derivative in ``l_i``. So the gradient D's loss sends into ``x`` becomes G's gradient by
multiplying row ``i`` by ``u_G,i / u_D,i``: one backward pass through D then gives D its weight gradients and G
its own, where two passes (one per loss) gave the same numbers.

>>> import torch
>>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> scale = RowGradientScale()
>>> y = scale.mark(x)
>>> scale.factors = torch.tensor([2.0, -1.0])
>>> y.sum().backward()
>>> x.grad
tensor([[ 2.,  2.],
        [-1., -1.]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


class _ScaleRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: RowGradientScale) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        factors = ctx.scale.factors
        if factors is None:
            return grad, None
        return grad * factors.reshape(-1, *([1] * (grad.dim() - 1))).to(grad.dtype), None


class RowGradientScale:
    """Marks a batch whose incoming gradient is multiplied row by row by factors set after the forward.

    ``mark(x)`` returns ``x``'s values; in the backward, row ``i`` of the gradient reaching ``x`` through the marked
    tensor is multiplied by ``factors[i]``. While ``factors`` is ``None`` the gradient passes unchanged.
    """

    def __init__(self) -> None:
        self.factors: Tensor | None = None

    def mark(self, x: Tensor) -> Tensor:
        return _ScaleRows.apply(x, self)


#: Below this size a row's D-loss derivative is treated as zero: rescaling it could lose G's gradient to underflow.
SMALLEST_D_DERIVATIVE = 1e-20


def loss_ratio_factors(d_loss: Tensor, g_loss: Tensor, fake_logits: Tensor) -> Tensor | None:
    """Per row of ``fake_logits``: ``dg_loss/dl_i`` divided by ``dd_loss/dl_i``; ``None`` where a row can't be rescaled.

    When a row's D-loss derivative is zero (a hinge loss past its margin), not finite, or so small that rescaling
    could underflow, G's gradient can't be recovered from D's: the caller runs G's backward on its own for that
    batch. One host read.
    """
    d_grad = torch.autograd.grad(d_loss, fake_logits, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, fake_logits, retain_graph=True)[0]
    if not bool((d_grad.abs() > SMALLEST_D_DERIVATIVE).all()):
        return None
    return g_grad / d_grad


def backward_g_and_d(d_loss: Tensor, g_loss: Tensor, fake_logits: Tensor, g_params: Sequence[Tensor],
                     d_params: Sequence[Tensor], scale: RowGradientScale | None,
                     run_backward: Callable[..., Any] = torch.autograd.backward) -> None:
    """Give G the gradients of ``g_loss`` and D those of ``d_loss``, both losses reading ``fake_logits``.

    With a ``scale`` that marked D's generated input, one backward of ``d_loss`` does both where every row can be
    rescaled (:func:`loss_ratio_factors`); otherwise two backwards, each restricted to its own network's parameters.
    ``run_backward`` is ``torch.autograd.backward`` or ``LightningModule.manual_backward``.
    """
    if scale is not None:
        # Set on every batch: a batch that takes two backwards must see no factors from the one before.
        scale.factors = loss_ratio_factors(d_loss, g_loss, fake_logits)
        if scale.factors is not None:
            run_backward(d_loss, inputs=[*g_params, *d_params])
            return
    # D's backward first: only D's graph is kept for the second pass, so a compiled G is backpropagated once.
    run_backward(d_loss, inputs=list(d_params), retain_graph=True)
    run_backward(g_loss, inputs=list(g_params))

"""Why ``compile`` leaves D eager under ``g_first``: a compiled graph backpropagated twice (not a test).

The G step of ``g_first`` runs two backwards through one D forward where one shared backward can't serve a batch:
one for G's loss (into the images) with the graph kept, one for D's loss (into D's weights). This script does the same
with the MLP discriminator's shape (flattened image concatenated to a label embedding, Linear, LeakyReLU, Linear,
squeeze), eager and under ``torch.compile``, and prints the summed absolute weight gradients of the second pass:

    python benchmarks/compiled_double_backward.py

On torch 2.14.1 (CPU) a single backward gives the same gradients in both. After a first backward with the graph kept,
the compiled D refuses the second (its saved buffers were donated to the first); with buffer donation turned off it
runs, and gives other weight gradients than eager. ``tests/test_fast_path.py`` checks the library's way around it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EmbeddingConcatD(nn.Module):
    """``[flatten(x) ‖ embed(y)] -> Linear -> LeakyReLU -> Linear -> squeeze``: the MLP D in small."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 10)
        self.model = nn.Sequential(nn.Linear(794, width), nn.LeakyReLU(0.2, inplace=True), nn.Linear(width, 1))

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.model(torch.cat((images.flatten(1), self.embed(labels)), 1)).squeeze(1)


def second_pass_gradients(d: nn.Module, images: Tensor, labels: Tensor, first_pass: bool) -> list[float]:
    """D's summed absolute weight gradients of D's loss, after (or without) a first backward of G's loss."""
    d.zero_grad(set_to_none=True)
    x = images.clone().requires_grad_()
    logits = d(x, labels)
    g_loss, d_loss = F.softplus(-logits).mean(), F.softplus(logits).mean() + logits.pow(2).mean()
    if first_pass:
        torch.autograd.backward(g_loss, inputs=[x], retain_graph=True)
    torch.autograd.backward(d_loss, inputs=list(d.parameters()))
    return [round(p.grad.abs().sum().item(), 4) for p in d.parameters() if p.grad is not None]


def main() -> None:
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    # No compiled graph from an earlier process: each case below compiles under its own settings.
    inductor_config.fx_graph_cache = False
    functorch_config.enable_autograd_cache = False
    torch.manual_seed(0)
    eager = EmbeddingConcatD()
    images, labels = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    print(f"torch {torch.__version__}; summed |gradient| of D's weights (embedding, layer 1 W, b, layer 2 W, b)")
    cases = [("one backward", False, True), ("after a first backward (retain_graph=True)", True, True),
             ("the same with torch._functorch.config.donated_buffer = False", True, False)]
    for title, first_pass, donated_buffer in cases:
        compiled = copy.deepcopy(eager)  # a fresh compilation for each case
        compiled.compile()
        print(f"{title}:")
        print(f"  eager    {second_pass_gradients(eager, images, labels, first_pass)}")
        with functorch_config.patch(donated_buffer=donated_buffer):
            try:
                print(f"  compiled {second_pass_gradients(compiled, images, labels, first_pass)}")
            except RuntimeError as error:
                print(f"  compiled RuntimeError: {str(error).splitlines()[0][:110]}...")


if __name__ == "__main__":
    main()

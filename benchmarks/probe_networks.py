"""Network probes of docs/evidence.md that are not library options: classes named on the command line (not a test).

Each is a variant of a library network, to measure an idea on the quality target before (or instead of) making it an
option. Name one as a config's class with ``PYTHONPATH=benchmarks``; the library network's other settings carry over:

    PYTHONPATH=benchmarks python benchmarks/quality_runs.py --variants --seeds 42 --jobs 2 --no_seed_loop \
        --variant "label_input=--config examples/mnist.yaml \
--model.generator.class_path=probe_networks.LabelInputGenerator"

- :class:`LabelInputGenerator`: the DCGAN generator with conditional BatchNorm that also feeds a label embedding to its
  first (linear) layer, so each class gets its own map from z to the first feature maps, not only per-channel gains.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cgan_lightning.nn.conditioning import GeneratorConditioning
from cgan_lightning.nn.dcgan import DCGANGenerator, _layer, _to_channels_last
from cgan_lightning.utilities.argument_checks import ImageShape


class LabelInputGenerator(DCGANGenerator):
    """:class:`~cgan_lightning.nn.dcgan.DCGANGenerator` whose first layer reads ``z ‖ embed(y)`` as well.

    With ``conditioning="cbn"`` the label otherwise enters only through the norms' per-class, per-channel gains and
    biases: every class shares the linear map from z to the first 7 x 7 feature maps. Here a label embedding of
    ``input_embedding_dim`` values joins z at that map's input, so each class also shifts those maps as it needs.
    Same arguments as the parent, plus ``input_embedding_dim``.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        base_channels: int = 64,
        conditioning: GeneratorConditioning = "cbn",
        embedding_dim: int = 32,
        spectral_norm: bool = False,
        res_blocks: int = 0,
        channels_last: bool = False,
        input_embedding_dim: int = 32,
    ) -> None:
        super().__init__(latent_dim, num_classes, image_shape, base_channels, conditioning, embedding_dim,
                         spectral_norm, res_blocks, channels_last)
        if input_embedding_dim <= 0:
            raise ValueError(f"input_embedding_dim must be positive, got {input_embedding_dim}")
        if conditioning == "concat":
            raise ValueError("conditioning='concat' already feeds the label to the first layer: use DCGANGenerator")
        self.input_embedding = nn.Embedding(num_classes, input_embedding_dim)
        self.project = _layer(nn.Linear(latent_dim + input_embedding_dim, math.prod(self.start_shape)), spectral_norm)
        _to_channels_last(self, channels_last)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        """As the parent's, with ``embed(labels)`` concatenated to ``z`` before the first layer."""
        return super().forward(torch.cat((z, self.input_embedding(labels)), dim=1), labels)


__all__ = ["LabelInputGenerator"]

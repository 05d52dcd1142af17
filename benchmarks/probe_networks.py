"""Network probes of docs/evidence.md that are not library options: classes named on the command line (not a test).

Each is a variant of a library network, to measure an idea on the quality target before (or instead of) making it an
option. Name one as a config's class with ``PYTHONPATH=benchmarks``; the library network's other settings carry over:

    PYTHONPATH=benchmarks python benchmarks/quality_runs.py --variants --seeds 42 --jobs 2 --no_seed_loop \
        --variant "label_input=--config examples/mnist.yaml \
--model.generator.class_path=probe_networks.LabelInputGenerator"

- :class:`LabelInputGenerator`: the DCGAN generator with conditional BatchNorm that also feeds a label embedding to its
  first (linear) layer, so each class gets its own map from z to the first feature maps, not only per-channel gains.
- :class:`LatentModulatedGenerator`: the DCGAN generator whose conditional norms are modulated by z as well (BigGAN's
  skip-z), so the latent sets per-sample gains at every resolution, not only the first feature maps.
- :class:`NoiseInjectionGenerator`: the DCGAN generator with StyleGAN's per-pixel noise before each inner norm, a
  source of variation outside z with a learned strength per channel.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
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


def _check_cbn(conditioning: str, name: str) -> None:
    if conditioning != "cbn":
        raise ValueError(f"{name} works on conditional BatchNorm: use conditioning='cbn', got {conditioning!r}")


class LatentModulatedGenerator(DCGANGenerator):
    """:class:`~cgan_lightning.nn.dcgan.DCGANGenerator` whose norms read z too: ``norm(x, y) * (1 + s(z)) + t(z)``.

    BigGAN (Brock et al. 2019) feeds the latent to every conditional norm ("skip-z") so that it shapes each
    resolution directly. Here each inner norm gets a per-channel scale ``s`` and shift ``t``, linear in the whole z;
    the maps start at zero, so at initialization the network is its parent. The parent's arguments, whose
    ``conditioning`` must be ``cbn``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_cbn(self.conditioning, "LatentModulatedGenerator")
        widths = (self.start_shape[0], self.start_shape[0] // 2)  # the two inner norms: 2b and b channels
        self.latent_modulations = nn.ModuleList(nn.Linear(self.latent_dim, 2 * w) for w in widths)
        for modulation in self.latent_modulations:
            nn.init.zeros_(cast(nn.Linear, modulation).weight)
            nn.init.zeros_(cast(nn.Linear, modulation).bias)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        """As the parent's, with each norm's output scaled and shifted by its map of ``z``."""
        x = self.project(z).view(z.size(0), *self.start_shape)
        for blocks, norm, up, modulation in zip(self.res_blocks, self.norms, self.upsample, self.latent_modulations):
            for block in cast(nn.ModuleList, blocks):
                x = block(x, labels)
            scale, shift = modulation(z)[:, :, None, None].chunk(2, dim=1)
            x = up(F.relu(norm(x, labels) * (1 + scale) + shift))
        return torch.tanh(x)


class NoiseInjectionGenerator(DCGANGenerator):
    """:class:`~cgan_lightning.nn.dcgan.DCGANGenerator` with per-pixel noise added before each inner norm.

    As in StyleGAN (Karras et al. 2019), one map of N(0, 1) noise per image and layer, scaled by a learned strength per
    channel (starting at zero, so at initialization the network is its parent), gives G variation that z does not
    carry: stroke-level detail at 7 x 7 and 14 x 14. The noise comes from torch's global generator. The parent's
    arguments, whose ``conditioning`` must be ``cbn``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_cbn(self.conditioning, "NoiseInjectionGenerator")
        widths = (self.start_shape[0], self.start_shape[0] // 2)
        self.noise_strengths = nn.ParameterList(nn.Parameter(torch.zeros(1, w, 1, 1)) for w in widths)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        """As the parent's, with ``strength * noise`` added to the feature maps before each norm."""
        x = self.project(z).view(z.size(0), *self.start_shape)
        for blocks, norm, up, strength in zip(self.res_blocks, self.norms, self.upsample, self.noise_strengths):
            for block in cast(nn.ModuleList, blocks):
                x = block(x, labels)
            noise = torch.randn(x.size(0), 1, x.size(2), x.size(3), device=x.device, dtype=x.dtype)
            x = up(F.relu(norm(x + strength * noise, labels)))
        return torch.tanh(x)


__all__ = ["LabelInputGenerator", "LatentModulatedGenerator", "NoiseInjectionGenerator"]

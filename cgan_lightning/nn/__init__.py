"""Generators, discriminators and the layers that bring the label into them."""

from cgan_lightning.nn.atypical_weighting import AtypicalRealWeighting
from cgan_lightning.nn.base import ConditionalDiscriminator, ConditionalGenerator
from cgan_lightning.nn.class_moments import ClassMomentMatching
from cgan_lightning.nn.conditioning import ConditionalBatchNorm2d, FiLM2d
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANDiscriminator, DCGANGenerator
from cgan_lightning.nn.ema import GeneratorEMA
from cgan_lightning.nn.feature_critic import FrozenFeatureCritic
from cgan_lightning.nn.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "ACGANDiscriminator",
    "AtypicalRealWeighting",
    "ClassMomentMatching",
    "ConditionalBatchNorm2d",
    "ConditionalDiscriminator",
    "ConditionalGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "FiLM2d",
    "FrozenFeatureCritic",
    "GeneratorEMA",
    "MLPDiscriminator",
    "MLPGenerator",
]

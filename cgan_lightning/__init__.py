"""cgan-lightning: class-conditional GANs on PyTorch Lightning."""

from cgan_lightning.data import DataNotFoundError, InMemoryBatches, MNISTDataModule
from cgan_lightning.losses import LOSSES, AdversarialLoss, get_loss
from cgan_lightning.module import ConditionalGAN, NonFiniteLossError
from cgan_lightning.networks import MLPDiscriminator, MLPGenerator

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "AdversarialLoss",
    "ConditionalGAN",
    "DataNotFoundError",
    "InMemoryBatches",
    "MLPDiscriminator",
    "MLPGenerator",
    "MNISTDataModule",
    "NonFiniteLossError",
    "get_loss",
]

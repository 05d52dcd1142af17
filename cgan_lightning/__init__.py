"""cgan-lightning: class-conditional GANs on PyTorch Lightning."""

from cgan_lightning.checkpoint_checks import CheckpointError
from cgan_lightning.conditioning import ConditionalBatchNorm2d, FiLM2d
from cgan_lightning.conv_networks import ACGANDiscriminator, DCGANDiscriminator, DCGANGenerator
from cgan_lightning.data import CorruptDataError, DataNotFoundError, InMemoryBatches, MNISTDataModule
from cgan_lightning.distributed import GANDDPStrategy
from cgan_lightning.interrupts import SaveOnInterrupt
from cgan_lightning.losses import LOSSES, AdversarialLoss, get_loss
from cgan_lightning.module import ConditionalGAN, NonFiniteLossError
from cgan_lightning.networks import MLPDiscriminator, MLPGenerator
from cgan_lightning.threads import TorchThreads

__version__ = "0.1.0"

__all__ = [
    "ACGANDiscriminator",
    "LOSSES",
    "AdversarialLoss",
    "CheckpointError",
    "ConditionalBatchNorm2d",
    "ConditionalGAN",
    "CorruptDataError",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DataNotFoundError",
    "FiLM2d",
    "GANDDPStrategy",
    "InMemoryBatches",
    "MLPDiscriminator",
    "MLPGenerator",
    "MNISTDataModule",
    "NonFiniteLossError",
    "SaveOnInterrupt",
    "TorchThreads",
    "get_loss",
]

"""cgan-lightning: class-conditional GANs on PyTorch Lightning."""

from cgan_lightning.callbacks import InterferenceTest, LatentTraversal, PerClassFID, SaveOnInterrupt, TorchThreads
from cgan_lightning.data import CorruptDataError, DataNotFoundError, InMemoryBatches, MNISTDataModule
from cgan_lightning.losses import LOSSES, AdversarialLoss, get_loss
from cgan_lightning.metrics import (
    ConditionalSampler,
    MNISTClassifier,
    PerClassEvaluator,
    evaluate_generator,
    load_classifier,
    load_mnist_classifier,
    per_class_table,
)
from cgan_lightning.module import ConditionalGAN, NonFiniteLossError
from cgan_lightning.nn import (
    ACGANDiscriminator,
    ConditionalBatchNorm2d,
    DCGANDiscriminator,
    DCGANGenerator,
    FiLM2d,
    GeneratorEMA,
    MLPDiscriminator,
    MLPGenerator,
)
from cgan_lightning.plugins import AtomicCheckpointIO
from cgan_lightning.strategies import GANDDPStrategy
from cgan_lightning.utilities.checkpoint_files import CheckpointError

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "ACGANDiscriminator",
    "AdversarialLoss",
    "AtomicCheckpointIO",
    "CheckpointError",
    "ConditionalBatchNorm2d",
    "ConditionalGAN",
    "ConditionalSampler",
    "CorruptDataError",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DataNotFoundError",
    "FiLM2d",
    "GANDDPStrategy",
    "GeneratorEMA",
    "InMemoryBatches",
    "InterferenceTest",
    "LatentTraversal",
    "MLPDiscriminator",
    "MLPGenerator",
    "MNISTClassifier",
    "MNISTDataModule",
    "NonFiniteLossError",
    "PerClassEvaluator",
    "PerClassFID",
    "SaveOnInterrupt",
    "TorchThreads",
    "evaluate_generator",
    "get_loss",
    "load_classifier",
    "load_mnist_classifier",
    "per_class_table",
]

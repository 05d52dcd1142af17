"""cgan-lightning: class-conditional GANs on PyTorch Lightning."""

from cgan_lightning.callbacks import (
    BestFIDCheckpoint,
    ClassificationAccuracyScore,
    InterferenceTest,
    LatentTraversal,
    PerClassFID,
    RunSummary,
    SampleQuality,
    SaveOnInterrupt,
    TorchThreads,
)
from cgan_lightning.data import (
    CorruptDataError,
    DataNotFoundError,
    ImageFolderDataModule,
    InMemoryBatches,
    MNISTDataModule,
    TorchvisionDataModule,
)
from cgan_lightning.hub import PretrainedGenerator
from cgan_lightning.losses import LOSSES, AdversarialLoss, get_loss
from cgan_lightning.metrics import (
    ConditionalSampler,
    ImageClassifier,
    MNISTClassifier,
    PerClassEvaluator,
    SamplerModule,
    evaluate_generator,
    load_classifier,
    load_mnist_classifier,
    per_class_table,
)
from cgan_lightning.module import ConditionalGAN, NonFiniteLossError
from cgan_lightning.nn import (
    ACGANDiscriminator,
    AtypicalRealWeighting,
    ClassMomentMatching,
    ConditionalBatchNorm2d,
    ConditionalDiscriminator,
    ConditionalGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    FiLM2d,
    FrozenFeatureCritic,
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
    "AtypicalRealWeighting",
    "BestFIDCheckpoint",
    "CheckpointError",
    "ClassMomentMatching",
    "ClassificationAccuracyScore",
    "ConditionalBatchNorm2d",
    "ConditionalDiscriminator",
    "ConditionalGAN",
    "ConditionalGenerator",
    "ConditionalSampler",
    "CorruptDataError",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DataNotFoundError",
    "FiLM2d",
    "FrozenFeatureCritic",
    "GANDDPStrategy",
    "GeneratorEMA",
    "ImageClassifier",
    "ImageFolderDataModule",
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
    "PretrainedGenerator",
    "RunSummary",
    "SampleQuality",
    "SamplerModule",
    "SaveOnInterrupt",
    "TorchThreads",
    "TorchvisionDataModule",
    "evaluate_generator",
    "get_loss",
    "load_classifier",
    "load_mnist_classifier",
    "per_class_table",
]

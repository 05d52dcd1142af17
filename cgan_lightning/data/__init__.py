"""LightningDataModules that hold labelled images in memory: MNIST family, class-per-folder images, torchvision."""

from cgan_lightning.data.image_folder import ImageFolderDataModule
from cgan_lightning.data.in_memory import InMemoryBatches, InMemoryDataModule
from cgan_lightning.data.mnist import CorruptDataError, DataNotFoundError, MNISTDataModule
from cgan_lightning.data.torchvision_dataset import TorchvisionDataModule

__all__ = [
    "CorruptDataError",
    "DataNotFoundError",
    "ImageFolderDataModule",
    "InMemoryBatches",
    "InMemoryDataModule",
    "MNISTDataModule",
    "TorchvisionDataModule",
]

"""LightningDataModules that hold labelled images in memory."""

from cgan_lightning.data.mnist import CorruptDataError, DataNotFoundError, InMemoryBatches, MNISTDataModule

__all__ = ["CorruptDataError", "DataNotFoundError", "InMemoryBatches", "MNISTDataModule"]

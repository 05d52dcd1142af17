"""Lightning plugins: crash-safe checkpoint writing."""

from cgan_lightning.plugins.checkpoint_io import AtomicCheckpointIO

__all__ = ["AtomicCheckpointIO"]

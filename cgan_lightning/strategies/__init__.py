"""Lightning strategies for GAN training (DDP that syncs only the network each backward trains)."""

from cgan_lightning.strategies.gan_ddp import GANDDPStrategy

__all__ = ["GANDDPStrategy"]

"""Share generators: export a checkpoint's generator with its evidence card, reload it with ``from_pretrained``."""

from cgan_lightning.hub.export import export_checkpoint, export_generator, pretrained_from_gan, push_export_to_hub
from cgan_lightning.hub.pretrained import PretrainedGenerator

__all__ = ["PretrainedGenerator", "export_checkpoint", "export_generator", "pretrained_from_gan", "push_export_to_hub"]

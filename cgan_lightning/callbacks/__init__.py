"""Every Lightning ``Callback`` the package ships: the evaluation evidence and the run's safety nets."""

from cgan_lightning.callbacks.best_checkpoints import BestFIDCheckpoint
from cgan_lightning.callbacks.interference import InterferenceTest
from cgan_lightning.callbacks.per_class_fid import PerClassFID
from cgan_lightning.callbacks.run_summary import RunSummary
from cgan_lightning.callbacks.save_on_interrupt import SaveOnInterrupt
from cgan_lightning.callbacks.torch_threads import TorchThreads
from cgan_lightning.callbacks.traversal import LatentTraversal

__all__ = ["BestFIDCheckpoint", "InterferenceTest", "LatentTraversal", "PerClassFID", "RunSummary", "SaveOnInterrupt",
           "TorchThreads"]

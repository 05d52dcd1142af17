"""Evidence that a conditional generator obeys its label: per-class FID and accuracy, interference, traversal.

Three Lightning callbacks, usable with ``fit``, ``validate`` and ``test`` (add them under ``trainer.callbacks``):

- :class:`PerClassFID` logs ``val/fid/class_<k>``, ``val/fid/mean``, ``val/fid/worst``, ``val/fid/overall``,
  ``val/acc/class_<k>`` and ``val/acc/mean``, and prints a per-class table after ``validate`` / ``test``.
- :class:`InterferenceTest` renders fixed latents with every label (``interference/epoch_<n>.png``) and logs
  ``interference/acc`` and ``interference/style_spread``.
- :class:`LatentTraversal` slerps between two fixed latents within each label (``traversal/epoch_<n>.png``) and logs
  ``traversal/acc``.

:func:`evaluate_generator` gives the same numbers for a loaded model without a Trainer.

The protocol
------------
The callbacks work with any LightningModule that offers (see :class:`ConditionalSampler`):

- ``num_classes: int`` and ``latent_dim: int``;
- ``sample(labels, z=None, generator=None) -> Tensor``: one image per label, ``[B, C, H, W]`` in ``[-1, 1]``, in
  eval mode without gradients. The callbacks always pass ``z`` (drawn on the CPU from their seed); a model that
  keeps EMA weights uses them inside ``sample``.

:class:`~cgan_lightning.ConditionalGAN` offers it. Judging digits uses the MNIST classifier shipped with the package
(:func:`cgan_lightning.classifier.load_mnist_classifier`); its penultimate features are the default FID feature space
(``feature="inception"`` selects torchmetrics' InceptionV3 instead). Nothing is downloaded.
"""

from cgan_lightning.evaluation.evaluator import PerClassEvaluator
from cgan_lightning.evaluation.features import (
    ClassifierFeatures,
    InceptionFeatures,
    PrecomputedFeatures,
    build_feature_extractor,
)
from cgan_lightning.evaluation.interference import InterferenceTest, interference_scores
from cgan_lightning.evaluation.per_class_fid import PerClassFID
from cgan_lightning.evaluation.protocol import ConditionalSampler, check_sampler
from cgan_lightning.evaluation.report import per_class_table
from cgan_lightning.evaluation.scores import PerClassScores
from cgan_lightning.evaluation.standalone import evaluate_generator
from cgan_lightning.evaluation.traversal import LatentTraversal, traversal_scores

__all__ = [
    "ClassifierFeatures",
    "ConditionalSampler",
    "InceptionFeatures",
    "InterferenceTest",
    "LatentTraversal",
    "PerClassEvaluator",
    "PerClassFID",
    "PerClassScores",
    "PrecomputedFeatures",
    "build_feature_extractor",
    "check_sampler",
    "evaluate_generator",
    "interference_scores",
    "per_class_table",
    "traversal_scores",
]

"""Feature extractors for torchmetrics' ``FrechetInceptionDistance``: the shipped classifier or InceptionV3.

torchmetrics (1.9) hands a custom ``feature`` module the images exactly as given to ``update`` (its ``normalize``
flag only rescales images for its built-in Inception), reads the output width from ``num_features``, and casts the
features to float64 itself. So every extractor here:

- takes images ``[B, C, 28, 28]`` as float in ``[-1, 1]`` (the generator's and the data module's range) or as uint8
  in ``0..255``;
- returns float32 features ``[B, num_features]``;
- stays in eval mode whatever ``train()`` is called with, and has no trainable parameters.

Example::

    from torchmetrics.image.fid import FrechetInceptionDistance
    fid = FrechetInceptionDistance(feature=ClassifierFeatures(), input_img_size=(1, 28, 28))
    fid.update(real_images, real=True); fid.update(fake_images, real=False); fid.compute()
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from cgan_lightning.metrics.classifier import ImageClassifier, load_classifier, load_mnist_classifier

#: The file torch-fidelity (and torchmetrics) load InceptionV3's FID weights from.
INCEPTION_WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_NAME}"

FeatureChoice = Literal["classifier", "inception"]


#: Images per classifier forward on a CPU (ClassifierFeatures splits larger batches).
CPU_CHUNK = 256


def to_unit_float(images: Tensor) -> Tensor:
    """uint8 ``0..255`` or float ``[-1, 1]`` images -> float ``[-1, 1]``."""
    if images.dtype == torch.uint8:
        return images.float().div(127.5).sub(1.0)
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [-1, 1] or uint8 in 0..255, got dtype {images.dtype}")
    return images.float()


def to_uint8(images: Tensor) -> Tensor:
    """float ``[-1, 1]`` (or uint8) images -> uint8 ``0..255``."""
    if images.dtype == torch.uint8:
        return images
    return to_unit_float(images).add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)



def has_torch_fidelity() -> bool:
    """Whether torch-fidelity (the ``inception`` extra, needed for ``feature='inception'``) is installed."""
    return importlib.util.find_spec("torch_fidelity") is not None

class _FrozenExtractor(nn.Module):
    """Eval mode forever, no gradients (like torchmetrics' own ``NoTrainInceptionV3``)."""

    num_features: int

    def train(self, mode: bool = True) -> _FrozenExtractor:
        return super().train(False)


class ClassifierFeatures(_FrozenExtractor):
    """The classifier's penultimate activations as FID features; also gives its logits in the same pass.

    Args:
        classifier: an :class:`~cgan_lightning.metrics.classifier.ImageClassifier`, a path to weights saved by
            ``cgan-lightning train-classifier``, or ``None`` for the MNIST classifier shipped with the package.
    """

    def __init__(self, classifier: ImageClassifier | str | Path | None = None) -> None:
        super().__init__()
        if classifier is None:
            classifier = load_mnist_classifier()
        elif isinstance(classifier, str | Path):
            classifier = load_classifier(classifier)
        elif not isinstance(classifier, ImageClassifier):
            raise TypeError(f"classifier must be an ImageClassifier, a weights path or None, got {type(classifier)}")
        # Batch norm folded into the convs, channels-last weights: the same features, less work per image.
        self.classifier = classifier.fuse_batch_norm().to(memory_format=torch.channels_last)
        self.num_features = classifier.feature_dim
        self.num_classes = classifier.num_classes
        self.image_shape = classifier.image_shape
        self.class_names = classifier.class_names
        self.metadata = classifier.metadata
        self.source = classifier.source

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``[B, num_features]`` and logits ``[B, num_classes]`` from one forward pass."""
        images = to_unit_float(images).contiguous(memory_format=torch.channels_last)
        if images.device.type != "cpu" or images.size(0) <= CPU_CHUNK:
            return self.classifier.features_and_logits(images)
        # On a CPU, chunks whose activations stay in cache run about twice as fast as one large batch.
        features, logits = zip(*(self.classifier.features_and_logits(chunk) for chunk in images.split(CPU_CHUNK)),
                               strict=True)
        return torch.cat(features), torch.cat(logits)

    def forward(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[0]


class InceptionFeatures(_FrozenExtractor):
    """torchmetrics' FID InceptionV3 (2048-d pool features) on grayscale or RGB images; needs ``torch-fidelity``.

    Images are converted to uint8 RGB (grayscale repeated) and resized to 299x299 inside the network. Nothing is
    downloaded: the weights come from ``weights_path`` or, when that is ``None``, from torch hub's cache
    (``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``).

    Args:
        weights_path: local copy of ``weights-inception-2015-12-05-6726825d.pth``.
        num_features: which Inception layer: 64, 192, 768 or 2048 (the standard FID).
    """

    def __init__(self, weights_path: str | Path | None = None, num_features: int = 2048) -> None:
        super().__init__()
        if not has_torch_fidelity():
            raise ModuleNotFoundError(
                "feature='inception' needs torch-fidelity: `pip install 'cgan-lightning[inception]'`. "
                "The default feature='classifier' works offline with no extra package."
            )
        if num_features not in (64, 192, 768, 2048):
            raise ValueError(f"num_features must be one of 64, 192, 768, 2048 for InceptionV3, got {num_features}")
        path = Path(weights_path) if weights_path is not None else inception_cache_path()
        if not path.is_file():
            where = f"at {path}" if weights_path is not None else f"in torch hub's cache ({path})"
            raise FileNotFoundError(
                f"InceptionV3 FID weights not found {where}; nothing is downloaded. Download {INCEPTION_WEIGHTS_URL} "
                "on a machine with network access and pass its path as `feature_weights=<path>` (callbacks) or "
                "`weights_path=<path>`, or copy it into that cache folder. Or use feature='classifier' (offline)."
            )
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.inception = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=[str(num_features)], feature_extractor_weights_path=str(path)
        )
        self.num_features = num_features

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        images = to_uint8(images)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.inception(images).float()


def inception_cache_path() -> Path:
    """Where torch-fidelity would have cached the InceptionV3 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_NAME


class PrecomputedFeatures(nn.Module):
    """Identity "extractor" for a ``FrechetInceptionDistance`` that is fed features instead of images.

    The per-class evaluation extracts features once per batch with the shared extractor and feeds them to eleven
    FID metrics (ten classes + all pooled), so no image passes through the network twice and no metric holds its
    own copy of the network.

    Args:
        num_features: width of the features that will be passed to ``update``.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected features [batch, {self.num_features}], got {tuple(features.shape)}")
        return features


def build_feature_extractor(
    feature: FeatureChoice | nn.Module = "classifier",
    weights_path: str | Path | None = None,
) -> nn.Module:
    """Return the FID feature extractor named by ``feature``.

    Args:
        feature: ``"classifier"`` (the shipped MNIST classifier, offline), ``"inception"`` (torchmetrics'
            InceptionV3, needs the ``inception`` extra and local weights) or any ``nn.Module`` mapping images in
            ``[-1, 1]`` to ``[B, D]`` features (give it a ``num_features`` attribute).
        weights_path: classifier weights for ``"classifier"`` (default: shipped), InceptionV3 weights for
            ``"inception"`` (default: torch hub's cache). Ignored for a module.
    """
    if isinstance(feature, nn.Module):
        return feature
    if feature == "classifier":
        return ClassifierFeatures(weights_path)
    if feature == "inception":
        return InceptionFeatures(weights_path)
    raise ValueError(f"feature must be 'classifier', 'inception' or an nn.Module, got {feature!r}")


def feature_dim(extractor: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """The extractor's output width: its ``num_features`` or, failing that, the width on one dummy image."""
    num = getattr(extractor, "num_features", None)
    if isinstance(num, int):
        return num
    device = next((p.device for p in extractor.parameters()), torch.device("cpu"))
    with torch.no_grad():
        out = extractor(torch.zeros(1, *image_shape, device=device))
    if out.dim() != 2:
        raise ValueError(f"a feature extractor must return [batch, features], got shape {tuple(out.shape)}")
    return int(out.shape[1])

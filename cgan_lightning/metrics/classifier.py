"""A small image classifier: its penultimate features are the FID feature space, its logits judge generated images.

One architecture serves any number of classes and any ``(channels, height, width)`` (height and width >= 8);
``cgan-lightning train-classifier --data ...`` trains it on any data module and saves it with metadata (classes,
image shape, class names, accuracy, data fingerprint) that the evaluation callbacks check against the model.

The package ships trained MNIST weights (``cgan_lightning/metrics/weights/mnist_classifier.pt``, about 0.4 MB) made
by ``python -m cgan_lightning.metrics.classifier_training --data_dir ../shared/data``. :func:`load_mnist_classifier`
reads them with :mod:`importlib.resources`, so it works from an installed wheel and never touches the network.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from cgan_lightning.metrics.report import names_are_ids

#: Where the shipped weights live inside the package.
WEIGHTS_PACKAGE = "cgan_lightning.metrics"
WEIGHTS_FILE = "weights/mnist_classifier.pt"  # beside this module


class ImageClassifier(nn.Module):
    """Three conv blocks and two linear layers; about 100k parameters and 2M multiply-adds per 28x28 image.

    ``conv5x5(16) -> pool -> conv3x3(32) -> pool -> conv3x3(64) -> pool -> linear(feature_dim) -> linear(classes)``
    with batch norm and ReLU after each conv. Kept small because it runs on every generated image (with batch norm
    folded into the convs, see :meth:`fuse_batch_norm`).

    Args:
        num_classes: number of outputs.
        feature_dim: width of the penultimate layer (the FID feature space).
        channels: output channels of the three conv blocks.
        dropout: dropout before the last layer (training only).
        image_shape: ``(channels, height, width)`` of the images it takes; height and width >= 8 (three 2x pools).
    """

    def __init__(self, num_classes: int = 10, feature_dim: int = 128, channels: Sequence[int] = (16, 32, 64),
                 dropout: float = 0.3, image_shape: Sequence[int] = (1, 28, 28)) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if num_classes < 2 or feature_dim < 1 or len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"num_classes must be >= 2, feature_dim >= 1 and channels three positive ints, got "
                             f"{num_classes}, {feature_dim} and {channels}")
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or shape[0] < 1 or min(shape[1:]) < 8:
            raise ValueError(f"image_shape must be (channels, height, width) with height and width >= 8, got "
                             f"{tuple(image_shape)}")
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.channels = channels
        self.image_shape: tuple[int, int, int] = shape
        #: What ``save_classifier`` stored beside the weights (num_classes, image_shape, class names, accuracy, ...).
        self.metadata: dict[str, Any] = {}
        #: Where it was loaded from (for error messages).
        self.source = "the classifier"

        def block(c_in: int, c_out: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True), nn.MaxPool2d(2)]

        c1, c2, c3 = channels
        self.conv = nn.Sequential(*block(shape[0], c1, 5), *block(c1, c2, 3), *block(c2, c3, 3), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(c3 * (shape[1] // 8) * (shape[2] // 8), feature_dim),
                                   nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    @property
    def class_names(self) -> list[str] | None:
        """The class names it was trained with (``None`` when unknown, e.g. the shipped MNIST classifier)."""
        names = self.metadata.get("class_names")
        return [str(n) for n in names] if names else None

    def fuse_batch_norm(self) -> ImageClassifier:
        """A frozen eval-mode copy with each batch norm folded into its conv: same outputs, about 15% faster."""
        fused = copy.deepcopy(self).eval()
        layers, out = list(fused.conv), []
        while layers:
            layer = layers.pop(0)
            if isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
                layer = fuse_conv_bn_eval(layer, cast(nn.BatchNorm2d, layers.pop(0)))  # checked just above
            out.append(layer)
        fused.conv = nn.Sequential(*out)
        return fused.requires_grad_(False)

    def _check(self, images: Tensor) -> None:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images must have shape [batch, {', '.join(map(str, self.image_shape))}] with values "
                             f"in [-1, 1], got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float with values in [-1, 1], got dtype {images.dtype}")

    def features(self, images: Tensor) -> Tensor:
        """Penultimate activations ``[B, feature_dim]`` of images ``[B, *image_shape]`` in ``[-1, 1]``."""
        self._check(images)
        return self.embed(self.conv(images))

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Both outputs from one pass: features ``[B, feature_dim]`` and logits ``[B, num_classes]``."""
        feats = self.features(images)
        return feats, self.head(feats)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` of images ``[B, *image_shape]`` in ``[-1, 1]``."""
        return self.features_and_logits(images)[1]


#: The same class under the name that the shipped MNIST weights and their docs use.
MNISTClassifier = ImageClassifier


def save_classifier(model: ImageClassifier, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Write the weights (float32) with the constructor arguments and ``metadata`` (e.g. test accuracy).

    ``num_classes`` and ``image_shape`` are always recorded in the metadata (the evaluation callbacks check them).
    """
    payload = {
        "config": {"num_classes": model.num_classes, "feature_dim": model.feature_dim, "channels": model.channels,
                   "image_shape": list(model.image_shape)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": {**(metadata or {}), "num_classes": model.num_classes, "image_shape": list(model.image_shape)},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def _build(payload: dict[str, Any], source: str) -> ImageClassifier:
    try:
        model = ImageClassifier(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as bad:
        raise ValueError(f"{source} is not a classifier file written by save_classifier: {bad}") from bad
    model.metadata = dict(payload.get("metadata", {}))
    model.source = source
    return model.eval().requires_grad_(False)


def check_classifier_matches(classifier: ImageClassifier | Any, num_classes: int,
                             image_shape: Sequence[int] | None = None,
                             class_names: Sequence[str] | None = None,
                             pass_as: str = "`classifier: classifier.pt` (callbacks, evaluate_generator)") -> None:
    """Raise ``ValueError`` when ``classifier`` cannot judge a model with these classes and image shape.

    Args:
        classifier: an :class:`ImageClassifier` (or anything with ``num_classes``, ``image_shape``, ``class_names``).
        num_classes: the model's number of labels.
        image_shape: the model's ``(C, H, W)`` (``None``: not checked).
        class_names: the model's class names (checked only when both sides have names that are not just the ids).
        pass_as: where the message tells the user to pass a matching classifier (the option that takes it).

    Raises:
        ValueError: the number of classes, the image shape or the class names differ; the message names the
            classifier file and says how to train a matching one.
    """
    source = getattr(classifier, "source", "the classifier")
    fix = ("train one on this data with `cgan-lightning train-classifier --data ... --out classifier.pt` and pass "
           f"it as {pass_as}")
    have_shape = tuple(getattr(classifier, "image_shape", ()))
    if classifier.num_classes != num_classes:
        raise ValueError(f"{source} predicts {classifier.num_classes} classes but the model has {num_classes} "
                         f"labels; {fix}")
    if image_shape is not None and have_shape and have_shape != tuple(int(v) for v in image_shape):
        raise ValueError(f"{source} takes {'x'.join(map(str, have_shape))} images but the model draws "
                         f"{'x'.join(str(int(v)) for v in image_shape)}; {fix}")
    have_names = getattr(classifier, "class_names", None)
    if have_names and class_names and not names_are_ids(class_names) and list(have_names) != list(class_names):
        raise ValueError(f"{source} was trained on classes {list(have_names)} but the model's classes are "
                         f"{list(class_names)}; {fix}")


def load_classifier(path: str | Path) -> ImageClassifier:
    """Load a classifier saved by :func:`save_classifier` (eval mode, no gradients)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found at {path}; train them with "
                                "`cgan-lightning train-classifier --data ... --out <path>` (the shipped MNIST one: "
                                "`python -m cgan_lightning.metrics.classifier_training`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as bad:  # not a torch.save file, or damaged
        raise ValueError(f"{path} is not a readable classifier file (damaged, or not written by torch.save): give "
                         "the file `cgan-lightning train-classifier --out` wrote") from bad
    if isinstance(payload, dict) and "state_dict" in payload and "config" not in payload:
        raise ValueError(f"{path} is a model checkpoint (a GAN's last.ckpt?), not a classifier file: give the file "
                         "`cgan-lightning train-classifier --out` wrote")
    return _build(payload, str(path))


def load_packaged_classifier(package: str, file: str, name: str,
                             fix: str = "reinstall cgan-lightning") -> ImageClassifier:
    """Load classifier weights shipped as package data (eval mode, frozen, on the CPU). Never downloads.

    Args:
        package: the package holding the file, e.g. ``"cgan_lightning.metrics"``.
        file: its path inside the package.
        name: what the weights are, for messages (e.g. ``"the shipped MNIST classifier"``).
        fix: what to do when the file is missing from the installed package.
    """
    resource = resources.files(package).joinpath(file)
    if not resource.is_file():
        raise FileNotFoundError(f"{name}'s weights {file} are missing from the installed package; {fix}")
    # Read the bytes rather than a filesystem path: the package may live inside a zip.
    payload = torch.load(io.BytesIO(resource.read_bytes()), map_location="cpu", weights_only=True)
    return _build(payload, f"{name} ({file})")


def load_mnist_classifier() -> ImageClassifier:
    """Load the classifier shipped inside the package (eval mode, frozen, on the CPU). Never downloads."""
    return load_packaged_classifier(
        WEIGHTS_PACKAGE, WEIGHTS_FILE, "the shipped MNIST classifier",
        "reinstall cgan-lightning or run `python -m cgan_lightning.metrics.classifier_training`")


__all__ = ["ImageClassifier", "MNISTClassifier", "check_classifier_matches", "load_classifier",
           "load_mnist_classifier", "load_packaged_classifier", "save_classifier"]

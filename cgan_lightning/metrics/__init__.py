"""Scoring a conditional generator: the shipped MNIST classifier, feature extractors and per-class scores."""

from cgan_lightning.metrics.classifier import (
    ImageClassifier,
    MNISTClassifier,
    check_classifier_matches,
    load_classifier,
    load_mnist_classifier,
)
from cgan_lightning.metrics.evaluate import evaluate_generator
from cgan_lightning.metrics.features import (
    ClassifierFeatures,
    InceptionFeatures,
    PrecomputedFeatures,
    build_feature_extractor,
)
from cgan_lightning.metrics.per_class_evaluator import PerClassEvaluator
from cgan_lightning.metrics.per_class_scores import PerClassScores
from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler
from cgan_lightning.metrics.report import per_class_table

__all__ = [
    "ClassifierFeatures",
    "ConditionalSampler",
    "ImageClassifier",
    "InceptionFeatures",
    "MNISTClassifier",
    "PerClassEvaluator",
    "PerClassScores",
    "PrecomputedFeatures",
    "build_feature_extractor",
    "check_classifier_matches",
    "check_sampler",
    "evaluate_generator",
    "load_classifier",
    "load_mnist_classifier",
    "per_class_table",
]

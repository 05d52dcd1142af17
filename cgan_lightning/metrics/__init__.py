"""Scoring a conditional generator: the shipped MNIST classifier, feature extractors and per-class scores."""

from cgan_lightning.metrics.cas import fit_classifier
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
from cgan_lightning.metrics.kid import PerClassKID
from cgan_lightning.metrics.memorization import memorization
from cgan_lightning.metrics.per_class_evaluator import PerClassEvaluator
from cgan_lightning.metrics.per_class_scores import PerClassScores
from cgan_lightning.metrics.prdc import PerClassPRDC, prdc
from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler
from cgan_lightning.metrics.report import per_class_table
from cgan_lightning.metrics.sample_checks import BadSamplesError, check_samples
from cgan_lightning.metrics.sampler_module import SamplerModule

__all__ = [
    "BadSamplesError",
    "ClassifierFeatures",
    "ConditionalSampler",
    "ImageClassifier",
    "InceptionFeatures",
    "MNISTClassifier",
    "PerClassEvaluator",
    "PerClassKID",
    "PerClassPRDC",
    "PerClassScores",
    "PrecomputedFeatures",
    "SamplerModule",
    "build_feature_extractor",
    "check_classifier_matches",
    "check_sampler",
    "check_samples",
    "evaluate_generator",
    "fit_classifier",
    "load_classifier",
    "load_mnist_classifier",
    "memorization",
    "per_class_table",
    "prdc",
]

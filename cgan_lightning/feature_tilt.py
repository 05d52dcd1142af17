"""Sampling tilted towards the training split's per-class features: resampling by a Gaussian density ratio.

``ConditionalGAN(sample_tilt_temperature=T)`` draws each sample among ``K`` candidates (its latent and ``K - 1`` fixed
permutations of it) with probabilities proportional to ``exp(log_ratio / T)``, where ``log_ratio`` is
``log N_real(f) - log N_G(f)``: ``f`` the frozen-feature critic's features of a candidate
(:class:`~cgan_lightning.nn.feature_critic.FrozenFeatureCritic`, the space the class moment matching reads),
projected on its class's :data:`TILT_DIMS` leading principal directions of the training split's features, ``N_real``
the Gaussian of the training split's projected features and ``N_G`` that of G's own samples. It is
sampling-importance resampling (as discriminator rejection sampling, Azadi et al. 2019, with a density-ratio estimate
instead of D's logit): at ``T = 1`` and many candidates the samples follow ``G * N_real / N_G``, whose projected
Gaussian is the training split's; a larger ``T`` tilts partway. The selection noise is a hash of each latent, so a
sample stays a function of its ``(z, label)`` alone, whatever batch it is drawn in.

>>> import torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> real = torch.randn(400, 3) + torch.tensor([2.0, 0.0, 0.0])  # one class, centred at x = 2
>>> generated = torch.randn(400, 3)                                # G's samples, centred at 0
>>> labels = torch.zeros(400, dtype=torch.long)
>>> tilt = FeatureTilt(num_classes=1, dims=2)
>>> tilt.fit_real(real, labels)
>>> tilt.fit_generated(generated, labels)
>>> ratio = tilt.log_ratio(torch.tensor([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]]), torch.tensor([0, 0]))
>>> bool(ratio[0] > 0 > ratio[1])  # a candidate where the real class lies gains; one away from it loses
True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: Where a checkpoint keeps the tilt's training statistics.
TILT_CHECKPOINT_KEY = "sample_tilt"
#: Principal directions of each class's training features in which both Gaussians are fitted.
TILT_DIMS = 32
#: G's samples per class from which its Gaussian is fitted (drawn with :data:`CALIBRATION_SEED`).
CALIBRATION_SAMPLES = 1000
#: The seed of the calibration draws: fixed, so a model tilts the same way on every run.
CALIBRATION_SEED = 12345
#: The seed of the candidates' latent permutations (distinct from the class-head redraws').
CANDIDATE_SEED = 4321
#: How far the projections of a latent are stretched before their fractional part is the selection's uniform draw.
HASH_SCALE = 1e5
#: Added to each covariance, relative to its mean variance: the Gaussians stay invertible.
RIDGE = 1e-3


def gaussian_log_ratio(x: Tensor, real_mean: Tensor, real_tril: Tensor, fake_mean: Tensor, fake_tril: Tensor) -> Tensor:
    """``log N(x; real_mean, real_tril real_tril^T) - log N(x; fake_mean, ...)`` for rows ``x`` ``[B, D]``."""
    real = torch.distributions.MultivariateNormal(real_mean, scale_tril=real_tril)
    fake = torch.distributions.MultivariateNormal(fake_mean, scale_tril=fake_tril)
    return real.log_prob(x) - fake.log_prob(x)


def _gaussian(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[D]`` and Cholesky factor ``[D, D]`` of rows ``x`` ``[N, D]`` (float64, with the ridge)."""
    x = x.double()
    cov = torch.cov(x.T)
    cov = cov + RIDGE * cov.diagonal().mean() * torch.eye(cov.size(0), dtype=cov.dtype)
    return x.mean(0), torch.linalg.cholesky(cov)


class FeatureTilt:
    """Per-class Gaussians of the training split's features and of G's, in the training split's principal directions.

    :meth:`fit_real` once (on the training split's features), :meth:`fit_generated` whenever G changes (on features
    of G's own samples), then :meth:`log_ratio` scores candidates.

    Args:
        num_classes: number of labels.
        dims: leading principal directions per class; fewer where a class has no more training images than that, or
            the features fewer values (:attr:`fitted_dims`).
    """

    def __init__(self, num_classes: int, dims: int = TILT_DIMS) -> None:
        if num_classes <= 0 or dims <= 0:
            raise ValueError(f"num_classes and dims must be positive, got {num_classes} and {dims}")
        self.num_classes, self.dims = num_classes, dims
        self.real: dict[str, Tensor] | None = None
        self.generated: dict[str, Tensor] | None = None

    @property
    def fitted_dims(self) -> int:
        """The directions the training statistics were fitted in (``dims`` or fewer)."""
        return int(self._fitted_real()["basis"].shape[-1])

    def _per_class(self, features: Tensor, labels: Tensor, what: str, minimum: int) -> list[Tensor]:
        counts = torch.bincount(labels.cpu(), minlength=self.num_classes)
        if counts.numel() > self.num_classes or bool((counts < minimum).any()):
            raise ValueError(f"the sampling tilt fits a Gaussian per class and needs at least {minimum} {what} of "
                             f"each of the {self.num_classes} classes, got counts {counts.tolist()}")
        features, labels = features.detach().cpu().double(), labels.cpu()
        return [features[labels == c] for c in range(self.num_classes)]

    def fit_real(self, features: Tensor, labels: Tensor) -> None:
        """The training split's features ``[N, F]`` and labels ``[N]``: each class's directions and Gaussian.

        Raises:
            ValueError: a class has fewer than two images.
        """
        per_class = self._per_class(features, labels, "training images", minimum=2)
        dims = min(self.dims, min(len(rows) for rows in per_class) - 1, features.size(1))
        fitted: dict[str, list[Tensor]] = {"centre": [], "basis": [], "mean": [], "tril": []}
        for rows in per_class:
            centre = rows.mean(0)
            _, _, right = torch.linalg.svd(rows - centre, full_matrices=False)
            basis = right[:dims].T  # [F, dims]
            mean, tril = _gaussian((rows - centre) @ basis)
            for key, value in zip(fitted, (centre, basis, mean, tril), strict=True):
                fitted[key].append(value)
        self.real = {key: torch.stack(values) for key, values in fitted.items()}
        self.generated = None

    def fit_generated(self, features: Tensor, labels: Tensor) -> None:
        """G's Gaussian per class from the features ``[N, F]`` of its own samples (after :meth:`fit_real`)."""
        real = self._fitted_real()
        per_class = self._per_class(features, labels, "generated samples", minimum=self.fitted_dims + 1)
        fitted = [_gaussian(self._project(rows, c, real)) for c, rows in enumerate(per_class)]
        self.generated = {"mean": torch.stack([m for m, _ in fitted]), "tril": torch.stack([t for _, t in fitted])}

    def log_ratio(self, features: Tensor, labels: Tensor) -> Tensor:
        """``log N_real - log N_G`` ``[B]`` (float32, on the features' device) for features ``[B, F]`` of labels."""
        real, generated = self._fitted_real(), self.generated
        if generated is None:
            raise RuntimeError("FeatureTilt.fit_generated must run before log_ratio")
        out = torch.empty(labels.numel(), dtype=torch.float64)
        features, labels = features.detach().cpu().double(), labels.cpu()
        for c in labels.unique().tolist():
            rows = labels == c
            out[rows] = gaussian_log_ratio(self._project(features[rows], c, real), real["mean"][c], real["tril"][c],
                                           generated["mean"][c], generated["tril"][c])
        return out.float()

    def _fitted_real(self) -> dict[str, Tensor]:
        if self.real is None:
            raise RuntimeError("FeatureTilt.fit_real must run on the training split's features first")
        return self.real

    @staticmethod
    def _project(rows: Tensor, c: int, real: dict[str, Tensor]) -> Tensor:
        return (rows - real["centre"][c]) @ real["basis"][c]

    def state_dict(self) -> dict[str, Any]:
        """The training split's statistics (G's are refitted from its weights, so not kept)."""
        return {"dims": self.dims, "real": self.real}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s statistics.

        Raises:
            ValueError: they were fitted with another number of classes or directions.
        """
        real = state.get("real")
        if state.get("dims") != self.dims or (real is not None and real["mean"].shape[0] != self.num_classes):
            raise ValueError(f"the checkpoint's sampling tilt was fitted for dims={state.get('dims')} and "
                             f"{None if real is None else real['mean'].shape[0]} classes, this model has "
                             f"dims={self.dims} and {self.num_classes} classes")
        self.real, self.generated = real, None


def selection_noise(z: Tensor, candidates: int, seed: int = CANDIDATE_SEED) -> Tensor:
    """Gumbel noise ``[B, candidates]``, each row a hash of its own latent (on the CPU, float64).

    A sample must not depend on the batch it is drawn in, so its noise comes from its latent: the fractional part of
    a large multiple of fixed random projections of ``z``, uniform and, unlike any entry of ``z``, unrelated to the
    images the candidates' latents give (an entry would favour latents with a large value in it: a biased tilt).
    """
    projections = torch.randn(z.size(1), candidates, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    uniform = torch.frac((z.detach().cpu().double() @ projections * HASH_SCALE).abs()).clamp(1e-12, 1 - 1e-12)
    return (-torch.log(-torch.log(uniform))).float()


def check_tilt_options(temperature: object, candidates: object) -> tuple[float, int]:
    """``(temperature, candidates)`` as a finite float ``>= 0`` (0: off) and an int ``>= 2``."""
    # An infinite temperature would pick candidates at random: plain sampling at K times the cost.
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature < math.inf:
        raise ValueError(f"sample_tilt_temperature must be a finite number >= 0 (0: off; e.g. 6), got "
                         f"{temperature!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(f"sample_tilt_candidates must be an integer >= 2 (e.g. 4), got {candidates!r}")
    return float(temperature), candidates


__all__ = ["CALIBRATION_SAMPLES", "CALIBRATION_SEED", "CANDIDATE_SEED", "TILT_CHECKPOINT_KEY", "TILT_DIMS",
           "FeatureTilt", "check_tilt_options", "gaussian_log_ratio", "selection_noise"]

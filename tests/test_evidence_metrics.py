"""Evidence bundle v2 maths: PRDC against hand-computed cases, per-class KID, memorization, CAS."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import synthetic_digits

from cgan_lightning.data.mnist import normalize
from cgan_lightning.metrics.cas import accuracy_scores, class_hits, fit_classifier
from cgan_lightning.metrics.kid import PerClassKID
from cgan_lightning.metrics.memorization import memorization, nearest_neighbours
from cgan_lightning.metrics.prdc import PerClassPRDC, kth_neighbour_distances, prdc
from cgan_lightning.metrics.report import per_class_table


def line(*xs: float) -> torch.Tensor:
    """Points on a line as ``[N, 1]`` features (distances are then easy to count by hand)."""
    return torch.tensor(xs, dtype=torch.float32).unsqueeze(1)


# ------------------------------------------------------------------------------------------------- PRDC
def test_prdc_identical_sets_by_hand() -> None:
    # Points 0..6, k=2. Radii: 2 at the ends (0 and 6: 2nd neighbour two away), 1 inside. A point j is inside
    # real ball i when |i - j| < r_i: each ball holds its own centre; the end balls also hold 1 and 5.
    # Density = (1+2+1+1+1+2+1) / (k * 7) = 9 / 14.
    x = line(0, 1, 2, 3, 4, 5, 6)
    torch.testing.assert_close(kth_neighbour_distances(x, 2), torch.tensor([2, 1, 1, 1, 1, 1, 2.0]).double())
    scores = prdc(x, x.clone(), nearest_k=2)
    assert scores == pytest.approx({"precision": 1.0, "recall": 1.0, "density": 9 / 14, "coverage": 1.0})


def test_prdc_disjoint_sets_score_zero() -> None:
    real, fake = line(0, 1, 2, 3, 4, 5, 6), line(100, 101, 102, 103, 104, 105, 106)
    assert prdc(real, fake, nearest_k=2) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_one_collapsed_mode_keeps_precision_and_loses_half_the_coverage() -> None:
    # Real: two modes (0..6 and 100..106). Generated: 14 samples all in the first mode (0, 0.5, ..., 6.5).
    real = torch.cat([line(0, 1, 2, 3, 4, 5, 6), line(100, 101, 102, 103, 104, 105, 106)])
    fake = line(*[i / 2 for i in range(14)])
    scores = prdc(real, fake, nearest_k=2)
    assert scores["precision"] == 1.0  # every sample is realistic (6.5 lies in real 6's ball of radius 2)...
    assert scores["recall"] == 0.5 and scores["coverage"] == 0.5  # ...but the mode at 100 is missed


def test_prdc_needs_more_samples_than_k() -> None:
    with pytest.raises(ValueError, match="nearest_k=5 need more than 5 samples"):
        prdc(line(0, 1, 2), line(0, 1, 2, 3, 4, 5, 6))


def test_per_class_prdc_metric_matches_the_function_and_keeps_real_features() -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 3, generator=g), torch.randn(40, 3, generator=g) + 0.5
    real_labels, fake_labels = torch.arange(60) % 2, torch.arange(40) % 2
    metric = PerClassPRDC(num_classes=2, nearest_k=5)
    metric.update(real[:30], real_labels[:30], real=True)
    metric.update(real[30:], real_labels[30:], real=True)
    metric.update(torch.randn(40, 3), fake_labels, real=False)
    metric.reset_fake()  # forget those generated features, keep the real ones
    metric.update(fake, fake_labels, real=False)
    scores = metric.compute()
    for k in (0, 1):
        expected = prdc(real[real_labels == k], fake[fake_labels == k], nearest_k=5)
        assert {name: scores[f"{name}/class_{k}"] for name in expected} == pytest.approx(expected)
    assert scores["coverage/mean"] == pytest.approx((scores["coverage/class_0"] + scores["coverage/class_1"]) / 2)


def test_per_class_prdc_states_are_gathered_by_concatenation() -> None:
    """Two "ranks" merged as torchmetrics merges DDP states (cat): the same scores as one process with all data."""
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g)
    labels = torch.arange(40) % 2
    whole, rank0, rank1 = PerClassPRDC(2), PerClassPRDC(2), PerClassPRDC(2)
    assert all(rank0._reductions[name] is not None for name in ("real_features", "fake_labels"))
    whole.update(real, labels, real=True)
    whole.update(fake, labels, real=False)
    for metric, part in ((rank0, slice(0, None, 2)), (rank1, slice(1, None, 2))):
        metric.update(real[part], labels[part], real=True)
        metric.update(fake[part], labels[part], real=False)
    rank0.merge_state(rank1)
    assert rank0.compute() == pytest.approx(whole.compute())


def test_per_class_prdc_class_with_too_few_samples_is_nan_and_left_out_of_means() -> None:
    metric = PerClassPRDC(num_classes=2, nearest_k=2)
    metric.update(line(0, 1, 2, 3), torch.tensor([0, 0, 0, 0]), real=True)
    metric.update(line(0, 1, 2, 3), torch.tensor([0, 0, 0, 0]), real=False)
    scores = metric.compute()
    assert math.isnan(scores["precision/class_1"]) and scores["precision/mean"] == scores["precision/class_0"]


# -------------------------------------------------------------------------------------------------- KID
def test_per_class_kid_is_near_zero_for_one_distribution_and_large_for_another() -> None:
    g = torch.Generator().manual_seed(0)
    kid = PerClassKID(num_classes=2, num_features=8, max_subset_size=1000, subsets=10)
    labels = torch.arange(80) % 2
    kid.update(torch.randn(80, 8, generator=g), labels, real=True)
    shifted = torch.randn(80, 8, generator=g) + 3 * labels.unsqueeze(1)  # class 1 is off, class 0 is not
    kid.update(shifted, labels, real=False)
    scores = kid.compute()  # 40 samples per class: the subset size shrank from 1000 to 40
    assert abs(scores["kid/class_0"]) < 0.5 < scores["kid/class_1"]
    assert kid.kid[0].subset_size == 40
    rng = torch.get_rng_state()
    kid.compute()
    assert torch.equal(rng, torch.get_rng_state())  # subsets drawn on a forked generator


def test_per_class_kid_keeps_real_features_across_reset_fake() -> None:
    kid = PerClassKID(num_classes=1, num_features=4, subsets=2)
    kid.update(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), real=True)
    kid.update(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), real=False)
    kid.reset_fake()
    kid.update(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), real=False)
    assert math.isfinite(kid.compute()["kid/class_0"])


# ------------------------------------------------------------------------------------------ memorization
def test_nearest_neighbours_in_chunks() -> None:
    d, i = nearest_neighbours(line(0.1, 5.2, 9.9), line(0, 5, 10), chunk=2)
    torch.testing.assert_close(i, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(d, torch.tensor([0.1, 0.2, 0.1]).double(), atol=1e-6, rtol=0)


def test_copies_of_training_images_count_as_memorized_fresh_samples_do_not() -> None:
    g = torch.Generator().manual_seed(0)
    train, evaluation = torch.randn(500, 4, generator=g), torch.randn(400, 4, generator=g)
    train_labels, eval_labels = torch.arange(500) % 2, torch.arange(400) % 2
    copies = train[:100] + 1e-4
    result = memorization(copies, train_labels[:100], train, evaluation, eval_labels, num_classes=2)
    assert result.scores["memorization/mean"] == 1.0
    torch.testing.assert_close(result.neighbours, torch.arange(100))
    fresh = torch.randn(2000, 4, generator=g)
    fresh_scores = memorization(fresh, torch.arange(2000) % 2, train, evaluation, eval_labels, 2).scores
    assert fresh_scores["memorization/mean"] < 0.12  # about the 5% quantile by construction


def test_memorization_rejects_a_bad_quantile() -> None:
    with pytest.raises(ValueError, match="quantile must be in"):
        memorization(line(0), torch.tensor([0]), line(0), line(0), torch.tensor([0]), 1, quantile=1.5)


# --------------------------------------------------------------------------------------------------- CAS
def test_accuracy_scores_by_hand() -> None:
    scores = accuracy_scores(torch.tensor([3, 0, 0]), torch.tensor([4, 2, 0]))
    assert scores["cas/class_0"] == 0.75 and scores["cas/class_1"] == 0.0 and math.isnan(scores["cas/class_2"])
    assert scores["cas/mean"] == pytest.approx(0.375)


def test_fit_classifier_learns_separable_digits_inside_inference_mode_without_touching_the_rng() -> None:
    images, labels = synthetic_digits(600, seed=0)
    test_images, test_labels = synthetic_digits(200, seed=1)
    rng = torch.get_rng_state()
    with torch.inference_mode():  # as inside Lightning's validation
        model = fit_classifier(normalize(images), labels, num_classes=10, epochs=2, batch_size=64)
        correct, total = class_hits(model, [(normalize(test_images), test_labels)], "cpu")
    assert torch.equal(rng, torch.get_rng_state())
    assert total.tolist() == [20] * 10 and accuracy_scores(correct, total)["cas/mean"] > 0.9


def test_fit_classifier_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="epochs and batch_size"):
        fit_classifier(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), 10, epochs=0)


def test_table_gets_a_column_per_logged_metric() -> None:
    scores = {"val/fid/class_0": 1.0, "val/acc/class_0": 1.0, "val/coverage/class_0": 0.93, "val/cas/class_0": 0.9,
              "val/coverage/mean": 0.93}
    table = per_class_table(scores)
    assert table.splitlines()[0].split() == ["class", "FID", "accuracy", "CAS", "coverage"]
    assert "0.930" in table.splitlines()[1] and "precision" not in table

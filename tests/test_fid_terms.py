"""benchmarks/fid_terms.py: the split of a FID into its mean and covariance terms, and the spread ratio."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import benchmark_module, make_fake_mnist
from torch import Tensor

from cgan_lightning import ConditionalGAN


def _fid_terms() -> Any:
    return benchmark_module("fid_terms").fid_terms


def _parser_error(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> str:
    """What ``benchmarks/<script>.py`` prints when its argument parser refuses ``args`` (it must exit)."""
    monkeypatch.setattr("sys.argv", [f"{script}.py", *args])
    with pytest.raises(SystemExit):
        benchmark_module(script).main()
    return capsys.readouterr().err


@pytest.fixture
def real() -> torch.Tensor:
    return torch.randn(2000, 6, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.arange(1.0, 7.0))


def test_identical_sets_have_no_distance_and_equal_spread(real: torch.Tensor) -> None:
    fid, mean_term, cov_term, spread = _fid_terms()(real, real)
    assert fid == pytest.approx(0.0, abs=1e-6)
    assert mean_term == 0.0 and cov_term == pytest.approx(0.0, abs=1e-6)
    assert spread == pytest.approx(1.0)


def test_a_shift_is_all_mean_term(real: torch.Tensor) -> None:
    fid, mean_term, cov_term, spread = _fid_terms()(real + 0.5, real)
    assert mean_term == pytest.approx(6 * 0.5**2)  # 6 features, each moved by 0.5
    assert cov_term == pytest.approx(0.0, abs=1e-6)
    assert fid == pytest.approx(mean_term) and spread == pytest.approx(1.0)


def test_too_little_variety_is_covariance_term_and_low_spread(real: torch.Tensor) -> None:
    # Half the spread around the same mean: covariance S/4, so Tr(S/4 + S - 2 (S^2/4)^(1/2)) = Tr(S) / 4.
    generated = real.mean(0) + 0.5 * (real - real.mean(0))
    fid, mean_term, cov_term, spread = _fid_terms()(generated, real)
    assert mean_term == pytest.approx(0.0, abs=1e-9)
    assert cov_term == pytest.approx(float(torch.cov(real.double().T).trace()) / 4, rel=1e-6)
    assert spread == pytest.approx(0.25) and fid == pytest.approx(cov_term)


def test_mean_class_fid_averages_the_classes(real: torch.Tensor) -> None:
    # benchmarks/feature_space_fid.py: the mean over classes of each class's FID against its own real images.
    mean_class_fid = benchmark_module("feature_space_fid").mean_class_fid
    labels = torch.arange(len(real)) % 2
    shifted = real + 0.5 * (labels == 1).double().unsqueeze(1)  # class 1 moved by 0.5 in each of 6 features
    assert mean_class_fid(real, labels, real, labels) == pytest.approx(0.0, abs=1e-6)
    assert mean_class_fid(shifted, labels, real, labels) == pytest.approx(6 * 0.5**2 / 2, rel=1e-6)


def test_covered_marks_the_real_balls_that_hold_another_sample() -> None:
    # benchmarks/coverage_sources.py: coverage's per-sample count. Real points 0, 1, ..., 9 on a line (k = 1: each
    # ball's radius is 1, strict); a point at 0.5 lies in the balls of 0 and 1 only, one at 20 in none.
    covered = benchmark_module("coverage_sources").covered
    real = torch.arange(10.0).unsqueeze(1)
    hits = covered(real, torch.tensor([[0.5], [20.0]]), nearest_k=1)
    assert hits.tolist() == [True, True] + [False] * 8
    assert covered(real, real + 0.25, nearest_k=1).all()
    assert not covered(real, torch.tensor([[-1.0]]), nearest_k=1).any()  # on ball 0's edge: outside (strict)


def test_miss_overlap_counts_shared_misses_against_chance() -> None:
    # benchmarks/missed_digits.py. Real points 0, ..., 9 on a line (k = 1: radius 1); A at 0.5 covers 0 and 1,
    # B at 0.4 and 5.5 covers 0, 1, 5 and 6.
    miss_overlap = benchmark_module("missed_digits").miss_overlap
    real = torch.arange(10.0).unsqueeze(1)
    overlap = miss_overlap(real, torch.tensor([[0.5]]), torch.tensor([[0.4], [5.5]]), nearest_k=1)
    assert (overlap.digits, overlap.missed_a, overlap.missed_b, overlap.missed_both) == (10, 8, 6, 6)
    assert overlap.if_independent == pytest.approx(8 * 6 / 10)
    # Centroid 4.5: A's missed digits 2..9 lie 17 / 8 from it on average, its covered 0 and 1 lie 4.0.
    assert overlap.distance_missed == pytest.approx(17 / 8) and overlap.distance_covered == pytest.approx(4.0)


def test_shifted_copies_move_each_digit_one_pixel_without_resampling() -> None:
    # benchmarks/coverage_ceiling.py: each copy is its image moved one pixel in one of the 8 directions, the border
    # filled with the background (-1), every other value kept exactly (no interpolation).
    shifted_by_one_pixel = benchmark_module("coverage_ceiling").shifted_by_one_pixel
    images = torch.rand(64, 1, 6, 5, generator=torch.Generator().manual_seed(0))  # every value distinct
    copies = shifted_by_one_pixel(images, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), value=-1.0)
    offsets = set()
    for image, copy in zip(padded, copies):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if torch.equal(copy, image[:, 1 + dy : 7 + dy, 1 + dx : 6 + dx])]
        assert len(matches) == 1 and matches[0] != (0, 0)
        assert (copy == -1).sum() == (6 if matches[0][0] == 0 else 5 if matches[0][1] == 0 else 10)  # H 6, W 5
        offsets.add(matches[0])
    assert len(offsets) == 8  # all 8 directions drawn over 64 images


def test_coverage_ceiling_refuses_a_malformed_jitter() -> None:
    parse_jitter = benchmark_module("coverage_ceiling").parse_jitter
    assert parse_jitter("1,5,0.05") == (1.0, 5.0, 0.05)
    with pytest.raises(argparse.ArgumentTypeError, match="SHIFT,DEGREES,SCALE"):
        parse_jitter("1,5")


def test_elastic_copies_bend_each_digit_by_the_asked_displacement() -> None:
    # benchmarks/coverage_ceiling.py: no displacement gives the digits back; a displacement moves every digit, keeps
    # the range, fills with the background, and a larger one moves the digits further.
    ceiling = benchmark_module("coverage_ceiling")
    images = torch.full((8, 1, 28, 28), -1.0)
    images[:, :, 6:22, 12:16] = 1.0  # a bar, like a one
    still = ceiling.elastic_deformation(images, torch.Generator().manual_seed(0), rms=0.0, sigma=4.0)
    torch.testing.assert_close(still, images, atol=1e-5, rtol=0)
    small = ceiling.elastic_deformation(images, torch.Generator().manual_seed(0), rms=0.5, sigma=4.0)
    large = ceiling.elastic_deformation(images, torch.Generator().manual_seed(0), rms=2.0, sigma=4.0)
    assert small.min() >= -1 and small.max() <= 1
    moved_small = (small - images).flatten(1).abs().sum(1)
    moved_large = (large - images).flatten(1).abs().sum(1)
    assert bool((moved_small > 0.5).all()) and bool((moved_large > moved_small).all())
    torch.testing.assert_close(large[:, :, 0, 0], images[:, :, 0, 0])  # the background stays background


def test_slanted_copies_lean_a_vertical_bar_and_keep_its_middle_row() -> None:
    # benchmarks/coverage_ceiling.py: no shear gives the digits back; a shear leans a vertical bar (its top row moves
    # one way, its bottom row the other, the middle row stays), keeps the range and the background.
    ceiling = benchmark_module("coverage_ceiling")
    images = torch.full((64, 1, 28, 28), -1.0)
    images[:, :, 4:24, 12:16] = 1.0  # a bar, like a one, rows 4-23 (centre between rows 13 and 14)
    still = ceiling.sheared(images, torch.Generator().manual_seed(0), amount=0.0)
    torch.testing.assert_close(still, images, atol=1e-5, rtol=0)
    slanted = ceiling.sheared(images, torch.Generator().manual_seed(0), amount=0.4)
    assert slanted.min() >= -1 and slanted.max() <= 1
    torch.testing.assert_close(slanted[:, :, :, 0], images[:, :, :, 0])  # the background stays background
    columns = torch.arange(28, dtype=torch.float32)

    def centre(row: int) -> Tensor:  # the bar's horizontal centre of mass in one row, per image
        ink = slanted[:, 0, row] + 1
        return (ink * columns).sum(1) / ink.sum(1)

    top, bottom = centre(5) - 13.5, centre(22) - 13.5
    assert bool((top * bottom <= 0).all())  # the two ends move apart, one to each side
    assert float((top - bottom).abs().max()) > 3  # a shear of up to 0.4 over 17 rows leans some bars by pixels
    assert float((top - bottom).abs().std()) > 0.5  # each image draws its own factor


def test_thickened_copies_widen_or_thin_a_bar_in_place() -> None:
    # benchmarks/coverage_ceiling.py: no amount gives the digits back; each image draws a factor t in ±amount and is
    # blended towards its 3 x 3 dilation (t > 0: the bar's neighbouring columns light up by 2t) or its erosion
    # (t < 0: a one-pixel bar fades by 2|t|); nothing beyond the bar's neighbours changes.
    ceiling = benchmark_module("coverage_ceiling")
    images = torch.full((64, 1, 28, 28), -1.0)
    images[:, :, 4:24, 13] = 1.0  # a one-pixel-wide bar
    torch.testing.assert_close(ceiling.thickened(images, torch.Generator().manual_seed(0), amount=0.0), images)
    out = ceiling.thickened(images, torch.Generator().manual_seed(0), amount=0.8)
    t = (torch.rand(64, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.8
    assert bool((t > 0).any()) and bool((t < 0).any())
    torch.testing.assert_close(out[:, 0, 10, 12], -1 + 2 * t.clamp_min(0))  # the left neighbour column
    torch.testing.assert_close(out[:, 0, 10, 14], -1 + 2 * t.clamp_min(0))  # the right one
    torch.testing.assert_close(out[:, 0, 10, 13], 1 - 2 * (-t).clamp_min(0))  # the bar itself
    far = torch.cat([out[:, :, :, :12], out[:, :, :, 15:]], dim=3)  # beyond the neighbours: untouched
    torch.testing.assert_close(far, torch.full_like(far, -1.0))


def test_coverage_ceiling_refuses_a_thickness_outside_zero_to_one(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    err = _parser_error("coverage_ceiling", ["--data_dir", "unused", "--thickness", "1.5"], monkeypatch, capsys)
    assert "--thickness takes a blend factor in [0, 1]" in err


def test_coverage_ceiling_refuses_a_malformed_elastic() -> None:
    parse_elastic = benchmark_module("coverage_ceiling").parse_elastic
    assert parse_elastic("0.5,4") == (0.5, 4.0)
    for text in ("0.5", "0.5,0", "-1,4"):
        with pytest.raises(argparse.ArgumentTypeError, match="--elastic"):
            parse_elastic(text)


def test_coverage_ceiling_labels_rows_with_the_digits_each_class_holds() -> None:
    per_class = benchmark_module("coverage_ceiling").per_class
    assert per_class(torch.tensor([0, 0, 1, 1, 2, 2])) == "2"
    assert per_class(torch.tensor([0] * 946 + [1] * 1068)) == "946-1,068"


def test_expected_coverage_counts_the_balls_with_only_real_neighbours() -> None:
    # benchmarks/coverage_vs_samples.py. Six real points and one sample (k = 5): a real point's ball holds its 5
    # nearest among the 5 other real points and the sample, which is among them unless it is the farthest: 5 / 6.
    expected_coverage = benchmark_module("coverage_vs_samples").expected_coverage
    assert expected_coverage(6, 1) == pytest.approx(5 / 6)
    assert expected_coverage(6, 0) == 0.0
    assert expected_coverage(1000, 1000) == pytest.approx(0.969, abs=5e-4)
    with pytest.raises(ValueError, match="more than nearest_k=5 real points"):
        expected_coverage(5, 10)


def test_expected_coverage_matches_samples_of_the_real_distribution() -> None:
    # The count `covered` makes, averaged over draws of real points and samples from one Gaussian, meets the formula.
    module = benchmark_module("coverage_vs_samples")
    rng = torch.Generator().manual_seed(0)
    for real_count, sample_count in ((200, 100), (200, 400)):
        scores = [float(benchmark_module("coverage_sources").covered(torch.randn(real_count, 3, generator=rng),
                                                                      torch.randn(sample_count, 3, generator=rng))
                        .double().mean()) for _ in range(40)]
        assert sum(scores) / len(scores) == pytest.approx(module.expected_coverage(real_count, sample_count), abs=0.01)


def test_matched_coverage_meets_the_formula_for_one_distribution_and_falls_for_two() -> None:
    # benchmarks/coverage_at_scale.py. s points against s others of the same Gaussian cover about
    # expected_coverage(s, s); halves of one set (other=None) likewise, never a point covering itself; a shifted
    # population covers less; a far one nothing.
    module = benchmark_module("coverage_at_scale")
    expected = benchmark_module("coverage_vs_samples").expected_coverage(100, 100)
    rng = torch.Generator().manual_seed(0)
    real, same = torch.randn(1000, 3, generator=rng), torch.randn(1000, 3, generator=rng)
    assert module.matched_coverage(real, same, 100, 60, rng) == pytest.approx(expected, abs=0.008)
    assert module.matched_coverage(real, same + 1.0, 100, 60, rng) < expected - 0.1
    assert module.matched_coverage(real, same + 100.0, 100, 5, rng) == 0.0
    # Two halves of 200 points: drawn independently, half of the points would also sit on the other side.
    assert module.matched_coverage(real[:200], None, 100, 60, rng) == pytest.approx(expected, abs=0.006)
    assert module.matched_coverage(real, real, 1000, 1, rng) == 1.0  # every point drawn on both sides


def test_matched_coverage_refuses_sizes_the_sets_cannot_fill() -> None:
    matched_coverage = benchmark_module("coverage_at_scale").matched_coverage
    rng = torch.Generator().manual_seed(0)
    points = torch.randn(20, 2, generator=rng)
    with pytest.raises(ValueError, match="size must exceed nearest_k=5"):
        matched_coverage(points, points, 5, 1, rng)
    with pytest.raises(ValueError, match=r"size 11 needs 22 rows of real and none of other \(halves of real\), "
                                         "got 20 rows of real$"):
        matched_coverage(points, None, 11, 1, rng)
    with pytest.raises(ValueError, match="size 12 needs 12 rows of real and 12 of other, got 20 rows of real and 10"):
        matched_coverage(points, points[:10], 12, 1, rng)


def test_extrapolate_log2_reads_the_least_squares_line_at_the_target() -> None:
    extrapolate_log2 = benchmark_module("coverage_at_scale").extrapolate_log2
    # On a line in log2 of the scale: one more doubling continues it.
    assert extrapolate_log2([125, 250, 500], [0.96, 0.95, 0.94], 1000) == pytest.approx(0.93)
    # Off the line: the least-squares fit through (0, 0.9), (1, 1.0), (2, 0.9) is flat at 0.9333.
    assert extrapolate_log2([1, 2, 4], [0.9, 1.0, 0.9], 16) == pytest.approx(0.9 + 0.1 / 3)
    with pytest.raises(ValueError, match="two or more distinct scales"):
        extrapolate_log2([100, 100], [0.9, 0.8], 1000)


def test_coverage_at_scale_prints_each_scale_and_the_line_through_the_fitted_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # 20 digits per class on each side of the synthetic split: rows at 6, 8 and 10, the reference where the class
    # holds twice the count, and a last row that continues the line through 8 and 10 only (--fit_from 8).
    module = benchmark_module("coverage_at_scale")
    data_dir = make_fake_mnist(tmp_path / "data", n_train=200, n_test=200)
    monkeypatch.setattr("sys.argv", ["coverage_at_scale.py", "--data_dir", str(data_dir), "--scales", "10", "6", "8",
                                     "--repeats", "2", "--fit_from", "8"])
    module.main()
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["| 6", "| 8", "| 10",
                                        "| fitted over 8-10, read at 20-20 (the class's evaluation count)"]
    assert all(row[-1] != "n/a |" for row in rows[:3])
    per_class = [[float(cell) for cell in row[1:11]] for row in rows]
    for k in range(10):
        line = module.extrapolate_log2([8, 10], [per_class[1][k], per_class[2][k]], 20)
        assert per_class[3][k] == pytest.approx(min(1.0, max(0.0, line)), abs=1.5e-3)
    assert max(per_class[3]) <= 1.0
    assert float(rows[3][11].strip("*")) == pytest.approx(min(per_class[3]), abs=1e-3)


def test_coverage_at_scale_refuses_scales_past_the_training_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = make_fake_mnist(tmp_path / "data")  # 20 training digits per class

    def error(*args: str) -> str:
        return _parser_error("coverage_at_scale", list(args), monkeypatch, capsys)

    assert "smallest class holds 20 digits: drop the larger scales" in error("--data_dir", str(data_dir),
                                                                             "--scales", "6", "30")
    assert "each > 5" in error("--data_dir", "unused", "--scales", "62", "5")
    assert "--fit_from 600 leaves 0" in error("--data_dir", "unused", "--fit_from", "600")


def test_coverage_per_class_scores_each_class_against_its_own_samples() -> None:
    # Class 0's samples sit on its real points, class 1's far away: coverage 1 and 0, not a pooled 0.5.
    coverage_per_class = benchmark_module("coverage_sources").coverage_per_class
    real = torch.randn(40, 2, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(40) % 2
    samples = torch.where((labels == 1).unsqueeze(1), real + 100.0, real)
    assert coverage_per_class(real, labels, samples, labels) == [1.0, 0.0]


def test_coverage_vs_samples_refuses_partial_draws(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    err = _parser_error("coverage_vs_samples", ["--ckpt", "unused", "--data_dir", "unused", "--counts", "1000", "1500"],
                        monkeypatch, capsys)
    assert "--counts takes multiples of 1,000" in err


@pytest.mark.parametrize("script", ["coverage_ceiling", "coverage_reweighting", "coverage_sources",
                                    "coverage_vs_samples", "fid_terms", "missed_digits", "rejection_sampling"])
@pytest.mark.parametrize(("scale", "message"), [
    ("0", "argument --latent_scale: must be > 0 (1: latents as trained), got 0.0"),
    ("-1", "argument --latent_scale: must be > 0 (1: latents as trained), got -1.0"),
    ("nan", "argument --latent_scale: must be > 0 (1: latents as trained), got nan"),
    ("wide", "argument --latent_scale: must be a number > 0 (1: latents as trained), got 'wide'"),
])
def test_every_benchmark_refuses_a_latent_scale_not_above_zero_while_parsing(
        script: str, scale: str, message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The parser refuses it before any checkpoint or data is read ("unused" names neither).
    err = _parser_error(script, ["--ckpt", "unused", "--data_dir", "unused", "--latent_scale", scale],
                        monkeypatch, capsys)
    assert message in err


def test_quasi_random_latents_are_seeded_standard_normal_and_evenly_spread() -> None:
    fid_terms = benchmark_module("fid_terms")
    z, labels = fid_terms.quasi_random_latents(3, 256, 8, seed=0)
    assert z.shape == (768, 8) and z.dtype == torch.float32 and torch.isfinite(z).all()
    assert labels.tolist() == [0] * 256 + [1] * 256 + [2] * 256
    assert torch.equal(z, fid_terms.quasi_random_latents(3, 256, 8, seed=0)[0])
    assert not torch.allclose(z, fid_terms.quasi_random_latents(3, 256, 8, seed=1)[0])
    assert not torch.allclose(z[:256], z[256:512])  # each class has its own sequence
    assert z.mean().abs() < 0.02 and (z.std() - 1).abs() < 0.02
    # Evenness: within a class, the first two entries' normal CDFs put exactly 16 of 256 points in each cell of a
    # 4 x 4 grid (a Sobol net), where independent draws scatter around 16.
    def grid_counts(latents: Tensor) -> Tensor:
        cells = (torch.special.ndtr(latents[:, :2].double()) * 4).long().clamp(max=3)
        return torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    assert all(grid_counts(z[k * 256 : (k + 1) * 256]).tolist() == [16] * 16 for k in range(3))
    independent = fid_terms.class_balanced_latents(3, 256, 8, 0)[0]
    assert grid_counts(independent[:256]).tolist() != [16] * 16
    with pytest.raises(ValueError, match="samples per class must be >= 1"):
        fid_terms.quasi_random_latents(3, 0, 8, seed=0)


def test_generated_images_draws_quasi_random_latents_when_asked() -> None:
    fid_terms = benchmark_module("fid_terms")
    torch.manual_seed(0)
    model = ConditionalGAN(latent_dim=8).eval()
    images, labels = fid_terms.generated_images(model, 4, seed=3, quasi_random=True)
    z, expected_labels = fid_terms.quasi_random_latents(model.num_classes, 4, 8, seed=3)
    assert torch.equal(labels, expected_labels)
    assert torch.equal(images, model.sample(labels, z=z))
    independent, _ = fid_terms.generated_images(model, 4, seed=3)
    assert not torch.allclose(images, independent)


@pytest.mark.parametrize("latents", ["normal", "sobol"])
def test_coverage_vs_samples_draws_the_latents_and_scale_asked_for(
        latents: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A small untrained generator stands in for the checkpoint, loaded with the asked latent scale; the row for 1,000
    # samples per class must score the images of the asked latents (independent draws from --seed, or its Sobol
    # sequences).
    module = benchmark_module("coverage_vs_samples")
    torch.manual_seed(0)
    model = ConditionalGAN(latent_dim=8).eval()
    loaded: list[tuple[str, float | None]] = []

    def load_generator(ckpt: str, latent_scale: float | None = None) -> Any:
        loaded.append((ckpt, latent_scale))
        return model

    monkeypatch.setattr(module, "load_generator", load_generator)
    scored: list[Tensor] = []

    def record_samples(real: Tensor, real_labels: Tensor, samples: Tensor, labels: Tensor) -> list[float]:
        scored.append(samples)
        return [0.5] * 10

    monkeypatch.setattr(module, "coverage_per_class", record_samples)
    data_dir = make_fake_mnist(tmp_path / "data", n_train=20, n_test=100)
    monkeypatch.setattr("sys.argv", ["coverage_vs_samples.py", "--ckpt", "unused", "--data_dir", str(data_dir),
                                     "--counts", "1000", "--seed", "2", "--latents", latents, "--latent_scale", "0.9"])
    module.main()
    assert loaded == [("unused", 0.9)]
    assert "| 1,000 | " in capsys.readouterr().out
    fid_terms = benchmark_module("fid_terms")
    images, _ = fid_terms.generated_images(model, 1000, 2, quasi_random=latents == "sobol")
    expected = module.ClassifierFeatures()(images)
    assert len(scored) == 1 and torch.allclose(scored[0], expected, atol=1e-5)


def test_seeded_draws_are_the_callbacks_sets_from_consecutive_seeds() -> None:
    fid_terms = benchmark_module("fid_terms")
    torch.manual_seed(0)
    model = ConditionalGAN(latent_dim=8).eval()

    def first_pixels(images: Tensor) -> Tensor:  # a cheap stand-in for the classifier's features
        return images.flatten(1)[:, :4]

    sets = fid_terms.seeded_draws(model, first_pixels, 2, seed=3)
    assert len(sets) == 2
    for offset, (features, labels) in enumerate(sets):
        images, expected_labels = fid_terms.generated_images(model, 1000, 3 + offset)
        assert torch.equal(labels, expected_labels) and torch.equal(features, first_pixels(images))

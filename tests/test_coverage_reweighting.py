"""benchmarks/coverage_reweighting.py: the expected coverage of weighted draws from a pool, and the weights that
maximize it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import benchmark_module, make_fake_mnist

from cgan_lightning import ConditionalGAN


def _module() -> Any:
    return benchmark_module("coverage_reweighting")


def test_expected_coverage_matches_draws_from_the_weights() -> None:
    module = _module()
    generator = torch.Generator().manual_seed(0)
    members = torch.rand(30, 12, generator=generator) < 0.15
    weights = torch.rand(12, generator=generator).double()
    weights /= weights.sum()
    expected = float(module.expected_coverage_of(members, weights, draws=4))
    draws = torch.multinomial(weights.expand(20000, -1), 4, replacement=True, generator=generator)  # [trials, 4]
    covered = members.T[draws].any(dim=1)  # [trials, 30]: a ball holds one of the trial's draws
    assert expected == pytest.approx(float(covered.double().mean()), abs=0.005)


def test_weights_balance_two_balls_and_the_penalty_keeps_them_near_uniform() -> None:
    # Ball A holds pool point 0, ball B points 1-3. Two draws cover a ball of weight a with probability 1 - (1 - a)^2:
    # the best weights give each ball a half (coverage 0.75), where uniform weights give A a quarter (0.6875).
    module = _module()
    members = torch.tensor([[True, False, False, False], [False, True, True, True]])
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    assert float(module.expected_coverage_of(members, uniform, draws=2)) == pytest.approx(0.6875)
    fitted = module.coverage_weights(members, draws=2, steps=400)
    assert float(fitted[0]) == pytest.approx(0.5, abs=0.01) and float(fitted.sum()) == pytest.approx(1.0)
    assert float(module.expected_coverage_of(members, fitted, draws=2)) == pytest.approx(0.75, abs=1e-4)
    penalized = module.coverage_weights(members, draws=2, kl=1.0, steps=400)
    assert 0.25 < float(penalized[0]) < float(fitted[0]) - 0.1
    with pytest.raises(ValueError, match="need draws >= 1 and kl >= 0"):
        module.coverage_weights(members, draws=2, kl=-0.1)


def test_ball_members_are_the_pool_points_inside_each_real_ball() -> None:
    module = _module()
    covered = benchmark_module("coverage_sources").covered
    generator = torch.Generator().manual_seed(2)
    real, pool = torch.randn(40, 3, generator=generator), torch.randn(25, 3, generator=generator)
    members = module.ball_members(real, pool)
    assert members.shape == (40, 25)
    assert torch.equal(members.any(dim=1), covered(real, pool))
    assert members.any() and not members.all()


def test_effective_share_is_one_for_uniform_weights_and_one_over_n_for_a_single_point() -> None:
    module = _module()
    assert module.effective_share(torch.full((8,), 0.125)) == pytest.approx(1.0)
    assert module.effective_share(torch.tensor([0.0, 1.0, 0.0, 0.0])) == pytest.approx(0.25)


@pytest.mark.parametrize(("args", "message"), [
    (["--pool", "1500"], "--pool takes a multiple of 1,000"),
    (["--kl", "0", "-0.1"], "every --kl >= 0, got 1000 and [0.0, -0.1]"),
    (["--draws", "0"], "--draws must be >= 1"),
    (["--train_k", "0"], "--train_k and --train_draws must be >= 1, got 0 and None"),
    (["--train_draws", "0"], "--train_k and --train_draws must be >= 1, got 5 and 0"),
])
def test_coverage_reweighting_refuses_bad_arguments(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["coverage_reweighting.py", "--ckpt", "unused", "--data_dir", "unused", *args])
    with pytest.raises(SystemExit):
        _module().main()
    assert message in capsys.readouterr().err


def _table(output: str) -> dict[str, list[str]]:
    """The printed rows by their first cell."""
    rows = [line.strip("|").split("|") for line in output.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip().strip("*") for cell in cells[1:]] for cells in rows}


def test_coverage_reweighting_scores_each_fit_and_reuses_the_pool_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The pool stands in for a generator's: noisy copies of the evaluation digits, 1,000 per class, some far more
    # often than others. The fits may only raise the expected coverage of the balls they climb, and the second run
    # must read the pool from the cache instead of sampling it again.
    module = _module()
    data_dir = make_fake_mnist(tmp_path / "data", n_train=300, n_test=300)
    eval_images, eval_labels = module.MNISTDataModule(str(data_dir), download=False).split("test")
    real = module.normalize(eval_images)
    loaded: list[tuple[str, float | None]] = []

    def load_generator(ckpt: str, latent_scale: float | None = None) -> ConditionalGAN:
        loaded.append((ckpt, latent_scale))
        return ConditionalGAN(latent_dim=8)

    monkeypatch.setattr(module, "load_generator", load_generator)

    def noisy_copies(model: ConditionalGAN, per_class: int, seed: int,
                     quasi_random: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        picks = []
        for k in range(10):
            members = (eval_labels == k).nonzero().squeeze(1)
            favoured = torch.rand(len(members), generator=generator) ** 4  # a few digits drawn far more often
            picks.append(members[torch.multinomial(favoured, per_class, replacement=True, generator=generator)])
        index = torch.cat(picks)
        return real[index] + 0.01 * torch.randn(real[index].shape, generator=generator), eval_labels[index]

    monkeypatch.setattr(benchmark_module("fid_terms"), "generated_images", noisy_copies)
    cache = tmp_path / "pool.pt"
    argv = ["coverage_reweighting.py", "--ckpt", "unused", "--data_dir", str(data_dir), "--pool", "1000",
            "--draws", "20", "--kl", "0", "100", "--steps", "150", "--pool_cache", str(cache), "--latent_scale", "0.9"]
    monkeypatch.setattr("sys.argv", argv)
    module.main()
    first = capsys.readouterr().out
    assert loaded == [("unused", 0.9)]
    table = _table(first)
    assert list(table)[1:] == ["uniform", "training balls, kl 0", "training balls, kl 100", "evaluation balls (bound)"]
    mean, drawn_mean, share = 11, 13, 15  # ten classes, then worst, mean, the draw's worst, mean, FID, effective share
    assert table["uniform"][share] == "1.00"
    assert 0.0 < float(table["uniform"][mean])
    bound = float(table["evaluation balls (bound)"][mean])  # fitted to the very balls it is scored on
    fits = [name for name in table if name not in ("weights", "evaluation balls (bound)")]
    assert all(float(table[name][mean]) < bound for name in fits)
    assert float(table["uniform"][drawn_mean]) < float(table["evaluation balls (bound)"][drawn_mean])  # drawn from q
    assert float(table["training balls, kl 0"][share]) < float(table["training balls, kl 100"][share])
    assert cache.exists()

    def no_sampling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the pool was sampled again instead of read from --pool_cache")

    monkeypatch.setattr(benchmark_module("fid_terms"), "generated_images", no_sampling)
    module.main()
    assert capsys.readouterr().out == first
    # Another checkpoint's run, or another latent scale, must not read this pool, nor overwrite it.
    for other in ([*argv[:2], "other.ckpt", *argv[3:]], [*argv[:-1], "1.0"]):
        monkeypatch.setattr("sys.argv", other)
        with pytest.raises(SystemExit):
            module.main()
        assert "holds the pool of" in capsys.readouterr().err
    assert torch.load(cache)["source"]["latent_scale"] == 0.9 and "other" not in torch.load(cache)["source"]["ckpt"]
    monkeypatch.setattr("sys.argv", argv)

    # --train_k and --train_draws shape the training split's fits only.
    ball_ks: list[int] = []
    fit_draws: list[int] = []
    ball_members, coverage_weights = module.ball_members, module.coverage_weights

    def record_balls(real: torch.Tensor, pool: torch.Tensor, nearest_k: int = 5) -> torch.Tensor:
        ball_ks.append(nearest_k)
        return ball_members(real, pool, nearest_k)

    def record_fit(members: torch.Tensor, draws: int, *args: Any) -> torch.Tensor:
        fit_draws.append(draws)
        return coverage_weights(members, draws, *args)

    monkeypatch.setattr(module, "ball_members", record_balls)
    monkeypatch.setattr(module, "coverage_weights", record_fit)
    monkeypatch.setattr("sys.argv", [*argv, "--train_k", "3", "--train_draws", "7"])
    module.main()
    assert ball_ks == [5, 3] * 10  # each class: the evaluation split's balls, then the training split's
    assert fit_draws == [7, 7, 20] * 10  # each class: two training fits (--kl 0 100), then the bound at --draws

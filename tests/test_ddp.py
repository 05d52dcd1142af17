"""DDP on CPU with two processes (gloo): what each rank trains on, identical weights, checkpoints, resume.

One subprocess (tests/ddp_worker.py, relaunched per rank by Lightning) runs three short fits; the tests read
the per-rank snapshots it leaves. The helpers below run in-process with a one-process gloo group.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from conftest import make_fake_mnist

from cgan_lightning import ConditionalGAN, MNISTDataModule, PerClassEvaluator
from cgan_lightning.metrics.classifier import MNISTClassifier, save_classifier
from cgan_lightning.strategies.gan_ddp import (
    GANDDPStrategy,
    allow_unused_parameters,
    average_gradients,
    gan_strategy_name,
)

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
N_TRAIN = 130  # odd on purpose: 2 ranks x 65, one sample left out per epoch
N_TEST = 100


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("ddp")
    data = make_fake_mnist(root / "data", n_train=N_TRAIN, n_test=N_TEST)
    out = root / "out"
    out.mkdir()
    # Any classifier gives a feature space to compare FIDs in; a seeded untrained one needs no shipped weights.
    torch.manual_seed(0)
    save_classifier(MNISTClassifier(feature_dim=32), root / "classifier.pt")
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(WORKER), str(out), str(data), str(root / "classifier.pt")],
                          capture_output=True, text=True, cwd=root, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    snapshots = {
        phase: [torch.load(out / f"{phase}_rank{r}.pt", weights_only=False) for r in range(2)]
        for phase in ("fit", "resume", "stock")
    }
    for phase in ("g_first", "shared"):
        snapshots[phase] = [torch.load(out / phase / f"{phase}_rank{r}.pt", weights_only=False) for r in range(2)]
    snapshots["out"] = out  # type: ignore[assignment]
    snapshots["root"] = root  # type: ignore[assignment]
    return snapshots


def same(x: Any, y: Any) -> bool:
    return torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y


def assert_same_tensors(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Bit-identical tensors (and equal extra state, e.g. the EMA's update counter) under the same keys."""
    assert a.keys() == b.keys()
    different = [k for k in a if not same(a[k], b[k])]
    assert not different, f"differ between ranks: {different}"


def assert_same_optimizers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    for opt_a, opt_b in zip(a, b, strict=True):
        assert opt_a["state"].keys() == opt_b["state"].keys() and opt_a["state"]
        for pid, state in opt_a["state"].items():
            for key, value in state.items():
                assert torch.equal(value, opt_b["state"][pid][key]), (pid, key)


@pytest.mark.slow
def test_cli_ddp_runs_gan_ddp_and_ranks_hold_identical_models(ddp_run: dict[str, Any]) -> None:
    rank0, rank1 = ddp_run["fit"]
    assert rank0["strategy"] == "GANDDPStrategy" and (rank0["rank"], rank1["rank"]) == (0, 1)
    assert rank0["world_size"] == 2
    # 2 epochs x 5 batches x (1 D step + 1 G step)
    assert rank0["global_step"] == rank1["global_step"] == 20
    # G, D, the EMA copy of G and every BatchNorm buffer, bit for bit; Adam's moments too.
    assert any("generator_ema" in k for k in rank0["state_dict"])
    assert any("running_mean" in k for k in rank0["state_dict"])
    assert_same_tensors(rank0["state_dict"], rank1["state_dict"])
    assert_same_optimizers(rank0["optimizers"], rank1["optimizers"])


@pytest.mark.slow
def test_each_rank_trains_on_its_own_shard(ddp_run: dict[str, Any]) -> None:
    rank0, rank1 = ddp_run["fit"]
    for epoch in (0, 1):
        seen0, seen1 = rank0["seen"][epoch], rank1["seen"][epoch]
        assert len(seen0) == len(seen1) == N_TRAIN // 2
        assert len(set(seen0)) == len(seen0) and len(set(seen1)) == len(seen1), "a sample served twice"
        assert not set(seen0) & set(seen1), "both ranks trained on the same sample in one epoch"
    assert rank0["seen"][0] != rank0["seen"][1], "the shard must be reshuffled every epoch"


@pytest.mark.slow
def test_ranks_draw_different_latents(ddp_run: dict[str, Any]) -> None:
    for phase in ("fit", "resume"):
        rank0, rank1 = ddp_run[phase]
        assert not torch.equal(rank0["rng_at_start"], rank1["rng_at_start"]), phase
    # ... without reseeding the global RNG: both ranks keep the stream seed_everything gave them.
    rank0, rank1 = ddp_run["fit"]
    assert torch.equal(rank0["global_rng_at_end"], rank1["global_rng_at_end"])


@pytest.mark.slow
def test_checkpoint_keeps_every_ranks_training_rng_and_resume_continues_each(ddp_run: dict[str, Any]) -> None:
    saved = torch.load(ddp_run["out"] / "ckpts" / "epoch=001.ckpt", weights_only=True)["training_rng"]["states"]
    assert len(saved) == 2
    for rank in range(2):
        assert torch.equal(saved[rank], ddp_run["fit"][rank]["rng_at_end"]), rank
        assert torch.equal(ddp_run["resume"][rank]["rng_at_start"], saved[rank]), rank


@pytest.mark.slow
def test_rank0_checkpoint_loads_in_one_process_and_resume_continues(ddp_run: dict[str, Any]) -> None:
    ckpts = ddp_run["out"] / "ckpts"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["epoch=000.ckpt", "epoch=001.ckpt", "epoch=002.ckpt",
                                                            "last.ckpt"]
    model = ConditionalGAN.load_from_checkpoint(ckpts / "epoch=001.ckpt", map_location="cpu")
    assert_same_tensors(model.state_dict(), ddp_run["fit"][0]["state_dict"])
    assert model.sample([0, 9], generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
    # Resumed under DDP from last.ckpt for one more epoch: 5 more batches, ranks still identical.
    rank0, rank1 = ddp_run["resume"]
    assert rank0["global_step"] == rank1["global_step"] == 30
    assert list(rank0["seen"]) == [2]
    assert_same_tensors(rank0["state_dict"], rank1["state_dict"])
    assert_same_optimizers(rank0["optimizers"], rank1["optimizers"])
    resumed = ConditionalGAN.load_from_checkpoint(ckpts / "last.ckpt", map_location="cpu")
    assert_same_tensors(resumed.state_dict(), rank0["state_dict"])


@pytest.mark.slow
def test_two_process_per_class_fid_equals_one_process_on_the_same_samples(ddp_run: dict[str, Any]) -> None:
    from ddp_worker import FID_SAMPLES_PER_CLASS

    rank0, rank1 = ddp_run["fit"]
    assert rank0["fid_scores"] == rank1["fid_scores"], "every rank must log the synced scores"
    # The evaluation after epoch 1 saw the weights of epoch=001.ckpt: score them in this single process, with
    # all real test images and all generated samples.
    model = ConditionalGAN.load_from_checkpoint(ddp_run["out"] / "ckpts" / "epoch=001.ckpt", map_location="cpu")
    data = MNISTDataModule(str(ddp_run["root"] / "data"), download=False, batch_size=13)
    data.setup("validate")
    evaluator = PerClassEvaluator(10, classifier=ddp_run["root"] / "classifier.pt")
    assert evaluator.add_real(data.val_dataloader()) == N_TEST
    single = evaluator.evaluate(model, samples_per_class=FID_SAMPLES_PER_CLASS, seed=3, batch_size=40)
    distributed = {k.removeprefix("val/"): v for k, v in rank0["fid_scores"].items()}
    assert distributed.keys() == single.keys() and "fid/class_9" in single
    for key, value in single.items():
        assert distributed[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.slow
def test_only_rank_zero_writes_logs_and_checkpoints(ddp_run: dict[str, Any]) -> None:
    versions = sorted((ddp_run["out"] / "lightning_logs").iterdir())
    assert [v.name for v in versions] == ["version_0", "version_1"]  # the fit and the resume
    for version in versions:
        assert len(list(version.glob("events.out.tfevents.*"))) == 1, version


@pytest.mark.slow
def test_stock_ddp_strategy_is_switched_to_find_unused_parameters(ddp_run: dict[str, Any]) -> None:
    rank0, rank1 = ddp_run["stock"]
    assert rank0["strategy"] == "DDPStrategy" and rank0["find_unused_parameters"] is True
    assert rank0["global_step"] == 6
    # Parameters and optimizer states agree; stock DDP leaves BatchNorm statistics rank-local (see docs/multi_gpu.md).
    params = {k: v for k, v in rank0["state_dict"].items() if "running_" not in k and "num_batches" not in k}
    assert_same_tensors(params, {k: rank1["state_dict"][k] for k in params})
    assert_same_optimizers(rank0["optimizers"], rank1["optimizers"])


# ------------------------------------------------------------------------------------ in-process helpers
@pytest.fixture
def single_process_group(tmp_path: Path):  # noqa: ANN201
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_average_gradients_keeps_none_where_no_rank_has_a_gradient(single_process_group: None) -> None:
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    used.grad = torch.tensor([2.0, 4.0, 6.0])
    average_gradients([used, unused], world_size=1)
    assert torch.equal(used.grad, torch.tensor([2.0, 4.0, 6.0]))
    assert unused.grad is None
    sparse = torch.nn.Parameter(torch.ones(2, 2))
    sparse.grad = torch.eye(2).to_sparse()
    with pytest.raises(ValueError, match="sparse"):
        average_gradients([sparse], world_size=1)


def test_cli_maps_only_the_stock_ddp_names() -> None:
    assert gan_strategy_name("ddp") == "gan_ddp"
    assert gan_strategy_name("ddp_spawn") == "gan_ddp_spawn"
    assert gan_strategy_name("ddp_notebook") == "gan_ddp_notebook"
    for unchanged in ("auto", "ddp_find_unused_parameters_true", "fsdp"):
        assert gan_strategy_name(unchanged) == unchanged
    strategy = GANDDPStrategy()
    assert gan_strategy_name(strategy) is strategy


def test_stock_ddp_static_graph_is_refused() -> None:
    from lightning.pytorch.strategies import DDPStrategy

    with pytest.raises(ValueError, match="static_graph"):
        allow_unused_parameters(DDPStrategy(static_graph=True))
    gan = GANDDPStrategy()
    allow_unused_parameters(gan)  # left alone
    assert not getattr(gan, "_ddp_kwargs", {})


@pytest.mark.slow
def test_g_first_under_gan_ddp_averages_both_backwards(ddp_run: dict[str, Any]) -> None:
    rank0, rank1 = ddp_run["g_first"]
    assert rank0["strategy"] == "GANDDPStrategy" and rank0["global_step"] == 10  # 5 batches x 2 steps
    # The ranks trained on different shards: equal weights and Adam moments mean both networks' gradients were
    # averaged (G's after its backward, D's after the other).
    assert rank0["seen"][0] != rank1["seen"][0]
    assert_same_tensors(rank0["state_dict"], rank1["state_dict"])
    assert_same_optimizers(rank0["optimizers"], rank1["optimizers"])


@pytest.mark.slow
def test_shared_d_backward_under_gan_ddp_averages_both_networks(ddp_run: dict[str, Any]) -> None:
    rank0, rank1 = ddp_run["shared"]
    assert rank0["strategy"] == "GANDDPStrategy" and rank0["global_step"] == 10
    assert rank0["seen"][0] != rank1["seen"][0]
    # One backward gave both networks their gradients; equal weights and moments on both ranks mean it averaged
    # G's as well as D's.
    assert_same_tensors(rank0["state_dict"], rank1["state_dict"])
    assert_same_optimizers(rank0["optimizers"], rank1["optimizers"])
    # And the run took the shared path: its weights are not those of the two-backward run (rounding differs).
    g_first = ddp_run["g_first"][0]["state_dict"]
    assert any(not torch.equal(v, g_first[k]) for k, v in rank0["state_dict"].items())


def test_g_first_refuses_stock_ddp() -> None:
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy

    model = ConditionalGAN(step_order="g_first")
    model._trainer = SimpleNamespace(strategy=DDPStrategy(find_unused_parameters=True))  # type: ignore[assignment]
    with pytest.raises(ValueError, match="strategy='gan_ddp'"):
        model.setup("fit")

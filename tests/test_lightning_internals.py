"""Each access to Lightning state without a public API (cgan_lightning/utilities/lightning_internals.py), checked
against the installed Lightning: these fail when a release renames or changes what the package relies on."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

from cgan_lightning.utilities.lightning_internals import (
    attached_trainer,
    callback_state_key,
    ddp_wrapper_kwargs,
    fast_dev_run,
    log_every_n_steps,
    logging_step,
    mark_sigterm_received,
    sigterm_handlers_without_lightnings_broadcast,
    trainer_callbacks,
    wandb_run_started,
)

PACKAGE = Path(__file__).resolve().parents[1] / "cgan_lightning"


def test_attached_trainer_is_none_until_a_trainer_holds_the_module() -> None:
    module = LightningModule()
    assert attached_trainer(module) is None
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    module.trainer = trainer
    assert attached_trainer(module) is trainer


def test_ddp_wrapper_kwargs_is_the_live_dict_ddp_passes_to_distributed_data_parallel() -> None:
    strategy = DDPStrategy(find_unused_parameters=False, gradient_as_bucket_view=True)
    kwargs = ddp_wrapper_kwargs(strategy)
    assert kwargs == {"find_unused_parameters": False, "gradient_as_bucket_view": True}
    kwargs["find_unused_parameters"] = True  # the module's change must reach the strategy
    assert ddp_wrapper_kwargs(strategy)["find_unused_parameters"] is True  # type: ignore[index]
    assert strategy._ddp_kwargs is kwargs
    assert ddp_wrapper_kwargs(SingleDeviceStrategy("cpu")) is None


def test_wandb_run_started_does_not_start_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert not wandb_run_started(logger)
    assert logger._experiment is None  # asking did not start one
    logger.experiment  # noqa: B018 - starts the (disabled) run
    assert wandb_run_started(logger)
    logger.experiment.finish()


def test_callback_state_key_matches_lightnings_own_format() -> None:
    class Probe(Callback):
        pass

    probe = Probe()
    assert callback_state_key(probe, n_styles=4) == probe._generate_state_key(n_styles=4)


def test_trainer_callbacks_is_the_trainers_live_list() -> None:
    class Probe(Callback):
        pass

    probe = Probe()
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[probe])
    callbacks = trainer_callbacks(trainer)
    assert callbacks is trainer.callbacks  # type: ignore[attr-defined]  # checking the accessor against the attribute
    assert probe in callbacks
    extra = Probe()
    callbacks.append(extra)  # appending reaches the trainer
    assert extra in trainer.callbacks  # type: ignore[attr-defined]


@pytest.mark.parametrize(("setting", "expected"), [(False, False), (True, True), (3, 3)])
def test_fast_dev_run_is_the_trainers_setting(setting: int | bool, expected: int | bool) -> None:
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, fast_dev_run=setting)
    value = fast_dev_run(trainer)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("steps", [0, 1, 7, 50])
def test_log_every_n_steps_is_the_trainers_setting(steps: int) -> None:
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=steps)
    assert log_every_n_steps(trainer) == steps


def test_the_package_reads_no_private_lightning_attribute_elsewhere() -> None:
    """Leading-underscore names of Lightning objects appear only in lightning_internals.py."""
    pattern = re.compile(r"\._trainer\b|\._get\(|\b_ddp_kwargs|\b_experiment\b|fit_loop|epoch_loop|batch_progress|"
                         r"_generate_state_key|_checkpoint_connector|_logger_connector|_signal_connector|"
                         r"_accelerator_connector|_results\b|from lightning[.\w]* import _|lightning[.\w]*\._")
    hits = subprocess.run(["grep", "-rnE", pattern.pattern, str(PACKAGE), "--include=*.py"], capture_output=True,
                          text=True).stdout.splitlines()
    outside = [h for h in hits if "utilities/lightning_internals.py" not in h]
    assert not outside, "\n".join(outside)


def test_mark_sigterm_received_is_what_the_fit_loop_reads() -> None:
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert not trainer.received_sigterm
    mark_sigterm_received(trainer)
    assert trainer.received_sigterm


def test_sigterm_handlers_swap_lightnings_broadcasting_notifier_and_keep_the_others() -> None:
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    calls: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append("user"))
    try:
        trainer._signal_connector.register_signal_handlers()  # as Trainer.fit does: its notifier, then the user's
        installed = signal.getsignal(signal.SIGTERM)
        assert trainer._signal_connector._sigterm_notifier_fn in installed.signal_handlers  # type: ignore[union-attr]
        swapped = sigterm_handlers_without_lightnings_broadcast(trainer, lambda signum, frame: calls.append("ours"))
        assert trainer._signal_connector._sigterm_notifier_fn not in swapped.signal_handlers
        swapped(signal.SIGTERM, None)
        assert calls == ["ours", "user"] and not trainer.received_sigterm  # the notifier did not run
    finally:
        trainer._signal_connector.teardown()
        signal.signal(signal.SIGTERM, previous)


def test_logging_step_is_the_step_lightning_gives_loggers() -> None:
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert logging_step(trainer) == 0
    trainer.fit_loop.epoch_loop._batches_that_stepped = 12  # what _LoggerConnector.log_metrics passes as step
    assert logging_step(trainer) == 12

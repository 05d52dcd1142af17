"""examples/sweep.yaml: its command, expanded by wandb's own agent code, runs `cgan-lightning fit` with every value.

``wandb agent`` receives from the sweep server a ``run`` command ``{"run_id", "program", "args": {name: {"value":
v}}}`` and turns the sweep's ``command`` list into a process with ``Agent._command_run`` (wandb/wandb_agent.py):
``${env}`` -> ``/usr/bin/env``, ``${program}`` -> the sweep's ``program``, ``${args}`` -> ``--name=value`` for each
parameter, ``${envvar:NAME}`` -> the environment variable. The test calls that very method, with the process
launcher (``AgentProcess``) replaced by a recorder, then runs each recorded command in this process, offline, on
tiny synthetic data, and reads the W&B run back.

The server-side sampling (``bayes``) is not available offline; instead the parameter sets cover every listed value
of every parameter and both ends of every distribution, so a value the CLI rejects fails the test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import wandb
import yaml
from wandb_offline import read_offline_run

from cgan_lightning.cli.lightning_cli import main

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "examples" / "sweep.yaml"
#: Makes each sampled run tiny; appended after the agent's command. It must not touch a swept parameter.
TINY = {
    "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "enable_progress_bar": False,
                "callbacks": [{"class_path": "cgan_lightning.callbacks.PerClassFID",
                               "init_args": {"samples_per_class": 4, "batch_size": 40, "seed": 0}}]},
}


def _flat_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys |= _flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return keys


def parameter_sets(parameters: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameter sets covering every ``values`` entry and the min / max / middle of every distribution.

    Raises:
        ValueError: a parameter kind this test does not know (add it here when the sweep uses it).
    """
    choices: dict[str, list[Any]] = {}
    for name, spec in parameters.items():
        if "value" in spec:
            choices[name] = [spec["value"]]
        elif "values" in spec:
            choices[name] = list(spec["values"])
        elif spec.get("distribution") == "log_uniform_values":
            lo, hi = float(spec["min"]), float(spec["max"])
            choices[name] = [lo, hi, math.sqrt(lo * hi)]
        elif spec.get("distribution") in ("uniform", None) and {"min", "max"} <= set(spec):
            lo, hi = spec["min"], spec["max"]
            choices[name] = [lo, hi] if isinstance(lo, int) and isinstance(hi, int) else [lo, hi, (lo + hi) / 2]
        else:
            raise ValueError(f"parameter {name}: unsupported spec {spec}")
    n = max(2, *(len(v) for v in choices.values() if len(v) > 1))
    return [{name: values[i % len(values)] for name, values in choices.items()} for i in range(n)]


def agent_command(sweep: dict[str, Any], params: dict[str, Any], run_id: str, monkeypatch: pytest.MonkeyPatch,
                  workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and environment ``wandb agent`` would start for this run (wandb's ``Agent._command_run``)."""
    from wandb import wandb_agent

    recorded: dict[str, Any] = {}

    class Recorder:
        def __init__(self, command: list[str] | None = None, env: dict[str, str] | None = None, **_: Any) -> None:
            recorded.update(command=command, env=env)

    monkeypatch.setattr(wandb_agent, "AgentProcess", Recorder)
    for var in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):  # _command_run sets them: restore after the test
        monkeypatch.setenv(var, "")
    agent = wandb_agent.Agent(api=None, queue=None, sweep_id="offline-test")
    agent._sweep_command = sweep["command"]  # as Agent.run does with the sweep's config from the server
    agent._command_run({"type": "run", "run_id": run_id, "program": sweep["program"],
                        "args": {name: {"value": value} for name, value in params.items()}})
    return recorded["command"], recorded["env"]


@pytest.fixture(scope="module")
def sweep() -> dict[str, Any]:
    return yaml.safe_load(SWEEP.read_text())


def test_sweep_optimizes_the_per_class_fid_and_drives_the_cli(sweep: dict[str, Any]) -> None:
    assert sweep["metric"] == {"name": "val/fid/mean", "goal": "minimize"}
    assert sweep["program"] == "cgan-lightning" and sweep["command"][:3] == ["${env}", "${program}", "fit"]
    assert "${args}" in sweep["command"]
    assert not _flat_keys(TINY) & set(sweep["parameters"]), "the test's shrinking must not override a swept value"


def test_every_parameter_set_runs_one_fit_offline(sweep: dict[str, Any], fake_mnist_session_dir: Path,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the agent runs from the repository root: give the command's relative paths
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true",
           "WANDB_DIR": str(tmp_path), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
           "WANDB_DATA_DIR": str(tmp_path / "wdata"), "WANDB_CONFIG_DIR": str(tmp_path / "config"),
           "CGAN_DATA_DIR": str(fake_mnist_session_dir)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    sets = parameter_sets(sweep["parameters"])
    assert len(sets) >= 2
    for i, params in enumerate(sets):
        run_id = f"sweeprun{i}"
        command, child_env = agent_command(sweep, params, run_id, monkeypatch, tmp_path)
        assert command[:3] == ["/usr/bin/env", "cgan-lightning", "fit"]
        assert f"--data.data_dir={fake_mnist_session_dir}" in command  # ${envvar:CGAN_DATA_DIR}
        assert all(f"--{name}={value}" in command for name, value in params.items())  # ${args}
        with monkeypatch.context() as run_env:  # the child's environment, as the agent passes it
            for key in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):
                run_env.setenv(key, child_env[key])
            main([*command[2:], "--config", str(tmp_path / "tiny.yaml")])
        wandb.teardown()  # the agent's child process exits here: W&B's service flushes the run's log
        run = read_offline_run(next((tmp_path / "runs" / "sweep" / "wandb").glob(f"offline-run-*-{run_id}")))
        assert run.run_id == run_id
        assert run.values("val/fid/mean") and all(math.isfinite(v) for v in run.values("val/fid/mean"))
        model = run.config["model"]  # the resolved config the CLI ran with: the swept values took effect
        assert model["ema_decay"] == params["model.ema_decay"] and model["loss"] == params["model.loss"]
        assert model["generator"]["init_args"]["base_channels"] == params["model.generator.init_args.base_channels"]
        assert model["optimizer_g"]["init_args"]["lr"] == pytest.approx(params["model.optimizer_g.init_args.lr"])
        assert run.config["data"]["init_args"]["batch_size"] == params["data.batch_size"]
        assert run.config["trainer"]["max_epochs"] == 1

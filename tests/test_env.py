"""The one privacy environment: telemetry off in every process medtune starts, whatever the caller's shell says."""
from __future__ import annotations

from medtune.core.env import TELEMETRY_OFF, private_env
from medtune.launch.train import child_env


def test_telemetry_is_forced_off_and_a_users_own_defaults_win():
    env = private_env({"DO_NOT_TRACK": "0", "AXOLOTL_DO_NOT_TRACK": "", "TOKENIZERS_PARALLELISM": "true"})
    assert {k: env[k] for k in TELEMETRY_OFF} == TELEMETRY_OFF
    assert env["TOKENIZERS_PARALLELISM"] == "true"
    assert private_env({})["TOKENIZERS_PARALLELISM"] == "false"


def test_training_processes_get_it_and_wandb_is_left_to_the_rendered_config(monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    env = child_env({"EXTRA": "1"})
    assert env["DO_NOT_TRACK"] == "1" and env["AXOLOTL_DO_NOT_TRACK"] == "1" and env["EXTRA"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"  # the live log and progress bar read the output as it comes
    # axolotl.yaml says `wandb_mode: disabled` unless training.tracking is wandb; an environment default here
    # would switch W&B off for the recipes that ask for it.
    assert "WANDB_MODE" not in env

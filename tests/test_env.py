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


def test_offline_runs_drop_the_loading_bars_and_a_users_own_choice_wins():
    assert private_env({"HF_HUB_OFFLINE": "1"})["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in private_env({})  # online: a large download shows its progress
    assert private_env({"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "0"})["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"


def test_known_library_noise_is_dropped_and_everything_else_still_shows(caplog):
    import logging
    import warnings

    import torch  # noqa: F401  (the torchao filter applies to a CPU build of torch, which the tests run)

    from medtune.core.console import quiet_library_noise

    quiet_library_noise()
    quiet_library_noise()  # idempotent: one filter per logger
    assert len(logging.getLogger("torchao").filters) == 1
    with caplog.at_level(logging.WARNING):
        logging.getLogger("torch.utils._pytree").warning(
            "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile")
        logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_cutlass_90a.abi3.so: Could not load")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward from x")
        logging.getLogger("torchao").warning("a real torchao problem")
        logging.getLogger("torch.utils._pytree").warning("another pytree message")
    assert [r.getMessage() for r in caplog.records] == ["a real torchao problem", "another pytree message"]
    # DeepSpeed's logger prints through its own handler (no propagation): its filter is asked directly.
    deepspeed = logging.getLogger("DeepSpeed")
    record = lambda msg: deepspeed.makeRecord("DeepSpeed", logging.WARNING, __file__, 0, msg, (), None)  # noqa: E731
    assert not deepspeed.filter(record("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable"))
    assert deepspeed.filter(record("ZeRO-3 could not gather a parameter"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_library_noise()
        warnings.warn("Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' because",
                      UserWarning)
        warnings.warn("Skipping publisher trust check for 'someone-else/kernel'", UserWarning)
    assert [str(w.message) for w in seen] == ["Skipping publisher trust check for 'someone-else/kernel'"]

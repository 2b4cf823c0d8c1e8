"""The environment every medtune process runs in: no library phones home or fills the console with noise.

The CLI applies it before any ML library is imported, training's child processes get it in their own
environment, and the judge, the tests and the benchmarks apply it too; this is the one list. W&B is not
switched here: the rendered axolotl.yaml says `wandb_mode: disabled` unless the recipe's
`training.tracking` is `wandb` (a WANDB_MODE=disabled set here would silently cancel that choice).
"""
from __future__ import annotations

import os
from typing import MutableMapping

TELEMETRY_OFF = {
    "AXOLOTL_DO_NOT_TRACK": "1",          # Axolotl's usage telemetry
    "DO_NOT_TRACK": "1",                  # the cross-tool opt-out convention
    "HF_HUB_DISABLE_TELEMETRY": "1",      # huggingface_hub's usage pings
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",  # DeepEval reports to Sentry, PostHog and New Relic at import
    "GRADIO_ANALYTICS_ENABLED": "False",  # the chat web page: Gradio's usage pings and version check
}
"""Always set, whatever the environment held: medical work must not phone home."""

QUIET_DEFAULTS = {
    "TOKENIZERS_PARALLELISM": "false",    # tokenizers' fork warning (and its deadlock guard) in datasets.map workers
}
"""Set where the environment does not say otherwise: a user's own value wins."""

OFFLINE_QUIET_DEFAULTS = {
    # Offline nothing is downloaded, so the Hub's bars have nothing to show. Online, the download bars of large
    # models are worth keeping; transformers' "Loading weights" bar is hidden either way
    # (core.console.hide_weight_loading_bars, where medtune loads a model).
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
"""Set, where the environment does not say otherwise, when HF_HUB_OFFLINE is on."""


def private_env(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Apply the settings above to `env` (default: this process's os.environ) and return it.

    Hub access (HF_HUB_OFFLINE) is not decided here: the tests are always offline, the benchmarks unless
    told otherwise, and runs reach the Hub when a recipe names a Hub model or dataset. Applied to this
    process (no `env` given), it also drops the libraries' known import-time noise from its console
    (`medtune.core.console.quiet_library_noise`).
    """
    this_process = env is None
    env = os.environ if env is None else env
    env.update(TELEMETRY_OFF)
    quiet = {**QUIET_DEFAULTS, **(OFFLINE_QUIET_DEFAULTS if _on(env.get("HF_HUB_OFFLINE")) else {})}
    for key, value in quiet.items():
        env.setdefault(key, value)
    if this_process:
        from .console import quiet_library_noise

        quiet_library_noise()
    return env


def _on(value: str | None) -> bool:
    """huggingface_hub's reading of a boolean environment variable."""
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}

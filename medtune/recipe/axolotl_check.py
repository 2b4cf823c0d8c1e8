"""Check a rendered config with Axolotl's own schema, which otherwise drops keys it does not know."""
from __future__ import annotations

import logging
from dataclasses import replace
from functools import lru_cache

from ..core.errors import Problem, did_you_mean
from ..core.schema import validation_problems


def _silence_axolotl_logs() -> None:
    # Axolotl logs hints at INFO/WARNING while validating; our own problems are what the user needs.
    # Its module loggers set their own levels, so each one is quieted by name.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("axolotl"):
            logging.getLogger(name).setLevel(logging.ERROR)


@lru_cache(maxsize=None)
def known_keys(plugins: tuple[str, ...] = ()) -> frozenset[str]:
    """Every top-level key Axolotl accepts (field names and aliases), including plugins' keys."""
    from axolotl.utils.schemas.config import AxolotlInputConfig

    model = AxolotlInputConfig
    if plugins:
        from axolotl.utils.config import merge_input_args, prepare_plugins
        from axolotl.utils.dict import DictDefault

        prepare_plugins(DictDefault({"plugins": list(plugins)}))
        _, model = merge_input_args()
    names = set(model.model_fields)
    names |= {f.alias for f in model.model_fields.values() if f.alias}
    return frozenset(names)


def unknown_key_problems(cfg: dict, prefix: str, plugins: tuple[str, ...] = ()) -> list[Problem]:
    known = known_keys(tuple(plugins))
    return [
        Problem(f"{prefix}{key}", "Axolotl has no such key (it would silently ignore it)", suggestion=did_you_mean(key, known))
        for key in cfg
        if key not in known
    ]


def capabilities_for(device: str, gpus: int) -> tuple[dict, dict]:
    """The capabilities Axolotl checks against: the recipe's target machine, not the one rendering."""
    from axolotl.utils.dict import DictDefault  # noqa: F401  (import axolotl once, here)
    import torch

    torch_version = torch.__version__.split("+", 1)[0]
    if device == "cpu":
        caps = {"bf16": False, "fp8": False, "tf32": False, "n_gpu": 1, "compute_capability": None}
    else:  # the GPUs the catalog recipes target: Ampere or newer
        caps = {"bf16": True, "fp8": False, "tf32": True, "n_gpu": gpus, "compute_capability": "sm_80"}
    return caps, {"torch_version": torch_version}


def validate(cfg: dict, device: str, gpus: int) -> list[Problem]:
    """Run Axolotl's validate_config on a rendered config; return its complaints as problems."""
    import copy

    from pydantic import ValidationError

    from axolotl.utils.config import prepare_plugins, validate_config
    from axolotl.utils.dict import DictDefault

    _silence_axolotl_logs()
    problems = unknown_key_problems(cfg, "axolotl.yaml: ", tuple(cfg.get("plugins") or ()))
    dd = DictDefault(copy.deepcopy(cfg))
    if dd.get("plugins"):
        prepare_plugins(dd)
    caps, env = capabilities_for(device, gpus)
    try:
        validate_config(dd, capabilities=caps, env_capabilities=env)
    except ValidationError as exc:
        for problem in validation_problems(exc, whole="(config)"):
            problems.append(replace(problem, path=f"axolotl.yaml: {problem.path}", message=f"Axolotl rejects it: {problem.message}"))
    except ValueError as exc:  # Axolotl's model validators raise plain ValueErrors too
        problems.append(Problem("axolotl.yaml", f"Axolotl rejects it: {exc}"))
    return problems

"""Each rank of a `--rehearse` run: Axolotl's train CLI, adapted so that several CPU processes train as one job.

`accelerate launch ... -m medtune.launch.rehearse_child axolotl.yaml` runs this in every rank; it applies three
adaptations and then runs exactly what `python -m axolotl.cli.train axolotl.yaml` runs. Each fills a gap
where Axolotl 0.19.0, accelerate 1.13.0 or DeepSpeed 0.18.9 assume that a rank with WORLD_SIZE > 1 owns
a GPU (and talks NCCL):

1. accelerate's `PartialState._prepare_backend` finds no backend for a rank without CUDA unless it was
   built with `cpu=True`, which Axolotl's `init_distributed_state` never passes; the ranks would each
   train alone. On CPU it now returns gloo with MULTI_CPU, the answer it gives for `cpu=True`, while
   leaving `cpu` itself False so a DeepSpeed run still initializes DeepSpeed's comm (over gloo).
2. Axolotl's `normalize_config` sets `device_map = {"": LOCAL_RANK}` whenever WORLD_SIZE != 1, i.e. the
   GPU with that index; on CPU every rank's model now loads to {"": "cpu"}.
3. DeepSpeed ZeRO-1/2 all-gathers the updated weights into its flat parameter buffer, which autograd
   tracks. NCCL writes into it directly; gloo's all_gather_into_tensor (torch 2.13) copies into chunk
   views of it and autograd refuses ("Output 0 of Split is a view and is being modified inplace").
   That all-gather now runs under torch.no_grad(), as an optimizer step does anyway.

The patches are pinned to the versions they were written against and refuse to run on others.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys

PINNED = {"axolotl": "0.19.0", "accelerate": "1.13.0", "deepspeed": "0.18.9"}
PREFIX = "medtune rehearsal:"


class AdaptationOutdated(RuntimeError):
    """The installed Axolotl, accelerate or DeepSpeed is not the one the rehearsal's patches were written for."""


def _say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def check_pinned_versions() -> None:
    import accelerate
    import axolotl
    import deepspeed

    found = {"axolotl": axolotl.__version__, "accelerate": accelerate.__version__, "deepspeed": deepspeed.__version__}
    wrong = {name: version for name, version in found.items() if version != PINNED[name]}
    if wrong:
        raise AdaptationOutdated(
            "medtune/launch/rehearse_child.py patches " + ", ".join(f"{n} {PINNED[n]}" for n in PINNED)
            + " but found " + ", ".join(f"{n} {v}" for n, v in wrong.items())
            + "; check that the patched functions still need and take the patch, then update PINNED"
        )


def patch_targets() -> list[tuple[object, str]]:
    """Every (owner, attribute) the adaptation replaces; AdaptationOutdated if one is gone or changed shape."""
    from accelerate.state import PartialState
    import axolotl.cli.config as cli_config
    import axolotl.utils.config as utils_config
    import deepspeed.runtime.utils as ds_utils
    import deepspeed.runtime.zero.stage_1_and_2 as zero12

    prepare = getattr(PartialState, "_prepare_backend", None)
    if prepare is None or list(inspect.signature(prepare).parameters) != ["self", "cpu", "sagemaker_dp", "backend"]:
        raise AdaptationOutdated("accelerate's PartialState._prepare_backend(self, cpu, sagemaker_dp, backend) is gone or changed")
    normalize = getattr(utils_config, "normalize_config", None)
    if normalize is None or getattr(cli_config, "normalize_config", None) is not normalize:
        # load_cfg calls the name it imported into axolotl.cli.config; both must be the one function.
        raise AdaptationOutdated("axolotl.utils.config.normalize_config is gone, or axolotl.cli.config no longer imports it")
    gather = getattr(ds_utils, "all_gather_dp_groups", None)
    if gather is None or getattr(zero12, "all_gather_dp_groups", None) is not gather:
        raise AdaptationOutdated("DeepSpeed's ZeRO-1/2 optimizer no longer calls deepspeed.runtime.utils.all_gather_dp_groups")
    return [(PartialState, "_prepare_backend"), (utils_config, "normalize_config"), (cli_config, "normalize_config"),
            (zero12, "all_gather_dp_groups")]


def _cpu_ranks() -> bool:
    import torch

    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def adapt() -> None:
    """Apply the three adaptations in this process (idempotent); see the module docstring."""
    from accelerate.state import PartialState

    if getattr(PartialState._prepare_backend, "medtune_rehearsal", False):
        return
    check_pinned_versions()
    targets = patch_targets()
    import torch
    from accelerate.utils import DistributedType

    original_prepare, original_normalize, _, original_gather = (getattr(owner, name) for owner, name in targets)

    @functools.wraps(original_prepare)
    def prepare_backend(self, cpu=False, sagemaker_dp=False, backend=None):
        found, distributed_type = original_prepare(self, cpu, sagemaker_dp, backend)
        if distributed_type == DistributedType.NO and int(os.environ.get("LOCAL_RANK", "-1")) != -1 and _cpu_ranks():
            if backend not in (None, "gloo"):
                raise AdaptationOutdated(f"a CPU rehearsal asked for backend {backend!r}; only gloo is adapted")
            return "gloo", DistributedType.MULTI_CPU
        return found, distributed_type

    @functools.wraps(original_normalize)
    def normalize_config(cfg):
        original_normalize(cfg)
        if _cpu_ranks() and cfg.device_map == {"": int(os.environ.get("LOCAL_RANK", "0"))}:
            cfg.device_map = {"": "cpu"}

    @functools.wraps(original_gather)
    def all_gather_dp_groups(*args, **kwargs):
        with torch.no_grad():
            return original_gather(*args, **kwargs)

    prepare_backend.medtune_rehearsal = True
    for (owner, name), patched in zip(targets, (prepare_backend, normalize_config, normalize_config, all_gather_dp_groups)):
        setattr(owner, name, patched)


def main() -> None:
    adapt()
    import fire
    from accelerate.state import PartialState
    from axolotl.cli.train import do_cli

    rank, world = os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?")
    _say(f"rank {rank} of world size {world} starting Axolotl's train CLI on CPU")
    fire.Fire(do_cli)  # what `python -m axolotl.cli.train` runs, with the same argv
    # The state outlives Axolotl's process group: it records what the run actually used.
    state = PartialState()
    _say(f"rank {state.process_index} of world size {state.num_processes} finished "
         f"(distributed type {state.distributed_type.value}, backend {state.backend})")


if __name__ == "__main__":
    sys.exit(main())

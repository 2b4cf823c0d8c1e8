"""The rich consoles medtune prints to (stdout for results, stderr for problems), kept free of library noise."""
from __future__ import annotations

import logging
import re
import sys
import warnings

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

NOISE: dict[str, tuple[str, ...]] = {
    # torchao's CUDA-only extensions (CUTLASS sm90a, MXFP8) cannot load into a CPU build of torch; nothing uses them.
    "torchao": ("Failed to load ",),
    # Axolotl and torchao register Enums with torch's pytree at import; the deprecation is for their authors.
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported",),
    # An optional 4-bit kernel from the Hub, unreachable offline (and untrusted online); bitsandbytes falls back
    # to its own CPU code, which is what QLoRA on CPU runs either way.
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward",),
    # A model's tokenizer config asks for WordPiece's space clean-up on decode; transformers rightly skips it for
    # a BPE tokenizer (SmolLM2's), so the answers are decoded correctly and there is nothing to change.
    "transformers.tokenization_utils_tokenizers": ("Ignoring clean_up_tokenization_spaces=True for BPE",),
    # DeepSpeed (imported with Axolotl or PEFT's merge) says it found no GPU; the recipe already said where it runs.
    "DeepSpeed": ("Setting accelerator to CPU",),
}
"""Logger name -> message fragments that are dropped: import-time warnings about parts medtune does not use.

Only these exact messages: anything else those libraries log still reaches the console, and training's own
log keeps everything (its child processes do not install these filters)."""

WARNINGS_IGNORED = (
    # The same optional kernel: `kernels` notes it skipped a trust check it could not make offline.
    "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'",
)


class _DropKnownNoise(logging.Filter):
    def __init__(self, fragments: tuple[str, ...], cpu_torch_only: bool = False):
        super().__init__()
        self.fragments = fragments
        self.cpu_torch_only = cpu_torch_only

    def filter(self, record: logging.LogRecord) -> bool:
        if self.cpu_torch_only and not _cpu_build_of_torch():
            return True  # on a CUDA build a torchao extension that fails to load is a real problem: show it
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


def _cpu_build_of_torch() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and getattr(getattr(torch, "version", None), "cuda", None) is None


def quiet_library_noise() -> None:
    """Drop the known import-time warnings above from this process's output (idempotent).

    Installed on the libraries' own loggers, by name, before they are imported: a logger's filters stay when
    the library later configures its level or handlers.
    """
    for name, fragments in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise(fragments, cpu_torch_only=name == "torchao"))
    for message in WARNINGS_IGNORED:
        warnings.filterwarnings("ignore", message=re.escape(message), category=UserWarning)


def hide_weight_loading_bars() -> None:
    """Hide transformers' "Loading weights" bar, drawn at every model load (base, tuned, BERTScore's model: four
    or more per evaluation) from files already on disk; download bars stay (idempotent, this process).

    Through transformers' public tqdm hook: every other bar it draws is created as before.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.set_tqdm_hook(_no_weight_loading_bar)


def _no_weight_loading_bar(factory, args, kwargs):
    if kwargs.get("desc") == "Loading weights":
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)

"""The Hugging Face Hub as medtune sees it: whether it may be contacted, read the same way everywhere."""
from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no Hub access (1/true/yes/on, any case), as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE

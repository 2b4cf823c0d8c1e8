"""The augment layer's user error: training data KnowTuning cannot work with, printed without a traceback, exit 2."""
from __future__ import annotations

from ..core.errors import MedtuneError


class AugmentError(MedtuneError):
    """Training rows KnowTuning cannot build facts or pairs from (no long-form answers, no pairs at all)."""

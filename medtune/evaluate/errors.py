"""The evaluate stage's user error: bad input (missing files, unknown suites or models) printed without a traceback, exit 2."""
from __future__ import annotations

from ..core.errors import MedtuneError


class EvalInputError(MedtuneError):
    """Bad input to the evaluate stage (missing files, unknown models): printed without a traceback, exit 2."""

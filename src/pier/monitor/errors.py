"""The one error pier.monitor raises: input it cannot turn into statistics."""

from __future__ import annotations

from pier.errors import PierError


class MonitorError(PierError, ValueError):
    """Data, a profile or a baseline file that cannot be profiled or compared.

    The message names the feature or file and what was wrong with it.
    """

    status = 400
    code = "VALIDATION_ERROR"

"""Refusing ``nan`` and ``inf`` in settings.

Durations and rates are floats, and TOML, JSON and ``float("nan")`` all give ``nan`` and
``inf``. ``nan`` compares false with every bound, so it passes each range check
(``x <= 0``, ``x < 0``) and then makes a timer fire never, or at once; ``inf`` makes a
timeout that never ends. Every settings class checks its floats with this.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def non_finite_field(settings: Any) -> str | None:
    """The name of the first float field of a dataclass that is ``nan`` or infinite."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            return field.name
    return None

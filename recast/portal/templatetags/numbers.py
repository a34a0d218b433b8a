"""How the portal writes the numbers of a result."""

from __future__ import annotations

import math
from typing import Any

from django import template

register = template.Library()


@register.filter
def significant(value: Any, digits: int = 4) -> str:
    """``value`` to ``digits`` significant figures (0.0676, 1.094, 3.2e-05);
    a dash for a missing number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"

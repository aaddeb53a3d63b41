"""Numbers as a reader sees them: significant digits, fixed decimals, counts and shares.

Shared by the sentences of the verdict and the report's tables, so a number
reads the same in both. Plain notation except for magnitudes below 1e-4 or
from 1e9 on; a missing value (None, NaN) is a dash.
"""

from __future__ import annotations

import math

MISSING = "\u2013"  # en dash


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def significant(x, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant digits, e.g. ``significant(1130.514, 4) == "1131"``.

    Digits before the decimal point are never dropped (12345 stays 12345);
    decimals are added only as far as ``digits`` asks (0.035617 -> 0.0356).
    """
    if _missing(x):
        return MISSING
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    rounded = float(f"{x:.{digits - 1}e}")  # 9.996 at 3 digits is 10.0, one more magnitude
    magnitude = math.floor(math.log10(abs(rounded)))
    if magnitude < -4 or magnitude >= 9:
        return f"{rounded:.{digits - 1}e}"
    decimals = digits - 1 - magnitude
    return f"{x:.0f}" if decimals <= 0 else f"{rounded:.{decimals}f}"


def fixed(x, decimals: int = 2) -> str:
    """``x`` with ``decimals`` decimals (``fixed(1.004, 2) == "1.00"``)."""
    if _missing(x):
        return MISSING
    text = f"{float(x):.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def whole(x) -> str:
    """``x`` rounded to a whole number."""
    return MISSING if _missing(x) else str(int(round(float(x))))


def percent(share) -> str:
    """A share in [0, 1] as a percentage, at most two significant digits (0.0257 -> "2.6%", 0.003 -> "0.3%")."""
    if _missing(share):
        return MISSING
    if share == 0:
        return "0%"
    text = significant(100 * float(share), 2)
    return f"{text.rstrip('0').rstrip('.') if '.' in text and 'e' not in text else text}%"


def count_of(count, total) -> str:
    """``"7 of 272 (2.6%)"``."""
    return f"{whole(count)} of {whole(total)} ({percent(count / total if total else 0)})"


def beside(value: float, threshold: float, decimals: int = 2) -> tuple[str, str]:
    """``value`` and ``threshold`` with enough decimals to tell them apart (at most ``decimals + 3``).

    ``beside(1.011, 1.01)`` is ``("1.011", "1.010")``, not ``("1.01", "1.01")``.
    """
    for places in range(decimals, decimals + 4):
        a, b = fixed(value, places), fixed(threshold, places)
        if a != b or value == threshold:
            return a, b
    return a, b


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 chain"``, ``"2 chains"``."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"

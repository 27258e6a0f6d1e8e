"""
Environment switches that turn one of netlab's speed-ups off, for comparison
(C{NETLAB_WRITE_THROUGH}, C{NETLAB_LEAN_REACTOR}).
"""

from __future__ import annotations

import os

__all__ = ["switched_on"]

_OFF = ("0", "no", "off", "false")


def switched_on(variable: str) -> bool:
    """
    Whether the environment leaves the speed-up C{variable} names on: it is
    on unless C{variable} is C{0}, C{no}, C{off} or C{false} (any case).
    """
    return os.environ.get(variable, "1").strip().lower() not in _OFF

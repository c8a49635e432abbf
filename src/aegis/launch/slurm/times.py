"""SLURM's time-limit strings (``--time``), parsed without asking SLURM.

sbatch accepts ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M`` and ``D-H:M:S``; Aegis needs the
seconds to check that the warning signal comes before the limit.
"""

from __future__ import annotations

import re
from typing import Optional

_DAYS = re.compile(r"(\d+)-(\d+)(?::(\d+))?(?::(\d+))?")
_CLOCK = re.compile(r"(\d+)(?::(\d+))?(?::(\d+))?")
FORMS = "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 02:00:00)"


def seconds(value: object) -> Optional[int]:
    """The limit in seconds, or None when ``value`` is not a SLURM time (``UNLIMITED`` included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 60 if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    days = _DAYS.fullmatch(text)
    if days:
        d, h, m, s = (int(x) if x else 0 for x in days.groups())
        total = ((d * 24 + h) * 60 + m) * 60 + s
    else:
        clock = _CLOCK.fullmatch(text)
        if not clock:
            return None
        parts = [int(x) for x in clock.groups() if x is not None]
        if len(parts) == 1:
            total = parts[0] * 60
        elif len(parts) == 2:
            total = parts[0] * 60 + parts[1]
        else:
            total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    return total if total > 0 else None


def shown(total: int) -> str:
    """``5400`` -> ``01:30:00``; days as ``D-HH:MM:SS``."""
    days, rest = divmod(int(total), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock

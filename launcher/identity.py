"""Is this recorded process the one we started, and is it alive? The one answer, shared by
the stop (launcher.process), the launcher and `status`.

psutil and the standard library only: `status` imports it and must start fast.
"""

from __future__ import annotations

import psutil

# psutil's create_time is boot time + start ticks, the same float every time it is read for
# one process, so the slack only absorbs rounding. A wall-clock step moves the kernel's boot
# time: a record made before the step is then refused, the safe side (logged, alerted).
START_TIME_TOLERANCE_S = 0.05


def start_time_matches(proc: psutil.Process, start_time: float) -> bool:
    return bool(abs(proc.create_time() - start_time) <= START_TIME_TOLERANCE_S)


def identity_matches(pid: int | None, start_time: float | None) -> bool:
    """True when `pid` is alive (not a zombie) and is the process that started at `start_time`."""
    if not pid or pid <= 0 or start_time is None:
        return False
    try:
        proc = psutil.Process(pid)
        return start_time_matches(proc, start_time) and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def process_alive(pid: int | None, start_time: float | None) -> bool:
    """Is the recorded process still running? With a recorded start time it must be that
    very process (`identity_matches`: a reused pid is not it); without one, any live pid."""
    if start_time is not None:
        return identity_matches(pid, start_time)
    if not pid or pid <= 0:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False

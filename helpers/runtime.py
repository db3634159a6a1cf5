"""How many CPU threads PyTorch may use: the cores that are idle now, so a busy machine is not oversubscribed.

PyTorch starts one thread per core. When another process already keeps a core busy, those
threads wait for each other at every parallel region and a chapter slows by far more than the
lost core (a build that takes 100 s alone was seen to hit a 900-s cell limit beside one busy
process). :func:`use_idle_cores` counts the idle cores over a short window (``/proc/stat``) and
sets ``torch.set_num_threads`` to that count, at least 1; every chapter calls it in its first
code cell, so the book slows in proportion to the load and no more.

``COURSE_THREADS=<n>`` in the environment overrides the count (``COURSE_THREADS=1`` for a fully
predictable run). Where ``/proc/stat`` does not exist (macOS, Windows), the available core count
is used, which is PyTorch's own default.
"""

from __future__ import annotations

import os
import time
from typing import Optional

import torch

from ._util import as_int

__all__ = ["available_cores", "idle_cores", "use_idle_cores"]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_times(path: str = "/proc/stat") -> tuple[float, float]:
    """(idle, total) jiffies summed over all CPUs, from the first line of /proc/stat."""
    with open(path) as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)


def idle_cores(window: float = 0.5, path: str = "/proc/stat") -> Optional[float]:
    """The number of idle cores, averaged over ``window`` seconds; ``None`` where ``path`` cannot be read.

    Measured machine-wide (``/proc/stat``), at most :func:`available_cores`; this process sleeps
    meanwhile, so it does not count itself.
    """
    try:
        idle0, total0 = _cpu_times(path)
        time.sleep(window)
        idle1, total1 = _cpu_times(path)
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    machine_idle = (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)
    return min(machine_idle, float(available_cores()))


def use_idle_cores(window: float = 0.5, verbose: bool = True) -> int:
    """Set ``torch.set_num_threads`` to the idle cores (at least 1) or ``$COURSE_THREADS``; return it.

    Rounds the idle count down but keeps a core that is more than half idle: 1.6 idle cores
    give 2 threads, 1.4 give 1.
    """
    env = os.environ.get("COURSE_THREADS")
    cores = available_cores()
    if env:
        try:
            threads = as_int(int(env), "COURSE_THREADS", positive=True)
        except (TypeError, ValueError):
            raise ValueError(f"COURSE_THREADS={env!r} must be a positive integer, the number of PyTorch threads "
                             "(e.g. COURSE_THREADS=1), or unset to use the idle cores") from None
        why = "COURSE_THREADS"
    else:
        idle = idle_cores(window)
        if idle is None:
            threads, why = cores, "all available cores (idle time not readable here)"
        else:
            threads = max(1, min(cores, int(idle + 0.5)))
            why = f"{idle:.1f} of {cores} cores idle"
    torch.set_num_threads(threads)
    if verbose:
        print(f"PyTorch uses {threads} CPU thread(s): {why}.")
    return threads

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

Two more things every chapter needs from its surroundings live here:

* :func:`choose_prior` -- which device and prior the chapter uses: the real face model
  (:data:`GPU_PRIOR`) on a CUDA GPU, the bundled cartoon prior on the CPU, or, when
  ``$COURSE_GPU_STANDIN`` names a folder, that folder *on the GPU path* (the stand-in of
  :mod:`helpers.standin`, with which ``tests/test_gpu_path.py`` runs every chapter's GPU branch
  on a CPU).
* :class:`TextClaims` -- the checks that keep a chapter's prose true: strict (an error) on the
  prior the book is built with, a visible note on any other prior, whose numbers the prose was
  not written for.
"""

from __future__ import annotations

import os
import time
from typing import Optional

import torch

from ._util import as_int

__all__ = ["available_cores", "idle_cores", "use_idle_cores", "GPU_PRIOR", "STANDIN_ENV", "choose_prior",
           "TextClaims"]

GPU_PRIOR = "google/ddpm-celebahq-256"
"""The prior of the GPU path: the DDPM of Ho et al. trained on CelebA-HQ at 256×256 (Hugging Face hub)."""
STANDIN_ENV = "COURSE_GPU_STANDIN"
"""Environment variable: a folder with a stand-in of :data:`GPU_PRIOR` (``python -m helpers.standin``);
when set, :func:`choose_prior` takes the GPU path with it, on whatever device there is."""


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


def choose_prior(cpu_prior: str = "faces", verbose: bool = False) -> tuple:
    """``(device, prior, gpu_path)`` for a chapter's parameters cell: one code path for all hardware.

    * ``$COURSE_GPU_STANDIN`` set to a folder: ``("cuda" if available else "cpu", folder, True)``
      -- the GPU path's settings with a local stand-in of the face model (tests, or a dry run).
    * a CUDA GPU: ``("cuda", GPU_PRIOR, True)`` -- the real face model, 256×256.
    * otherwise: ``("cpu", cpu_prior, False)`` -- the bundled prior (``"faces"``, 32×32).

    ``gpu_path`` tells the chapter to use its GPU settings (step counts and sweeps sized for a
    Colab T4, aligned 256-px faces); ``device`` is where the tensors go.
    """
    folder = os.environ.get(STANDIN_ENV, "").strip()
    cuda = torch.cuda.is_available()
    if folder:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"${STANDIN_ENV}={folder!r} is not a folder: write a stand-in with "
                                    f"`python -m helpers.standin --out {folder} --narrow`, or unset {STANDIN_ENV}")
        choice = ("cuda" if cuda else "cpu", folder, True)
    elif cuda:
        choice = ("cuda", GPU_PRIOR, True)
    else:
        choice = ("cpu", cpu_prior, False)
    if verbose:
        print(f"device {choice[0]}, prior {choice[1]!r}, {'GPU' if choice[2] else 'CPU'} settings")
    return choice


class TextClaims:
    """The checks that keep a chapter's words true to its numbers.

    A chapter's prose describes the numbers of the prior the book is built with (the bundled
    cartoon faces on a CPU); its cells glue those numbers into the text and check, after each
    result, the comparisons the text makes in words. On that prior (``strict=True``) a failed check
    is an error: the text must be rewritten. On any other prior (the face model on a GPU, a
    stand-in, your own) the same check prints a note instead, because the prose was not written
    for those numbers::

        claims = TextClaims(strict=not GPU_PATH)
        claims.check(best_t0 <= 0.2, "the text says a small t0 is best for deblurring")

    ``failed`` lists the messages of the checks that did not hold (non-strict mode).
    """

    def __init__(self, strict: bool = True):
        self.strict = bool(strict)
        self.failed: list = []

    def check(self, condition, message: str) -> bool:
        """Assert ``condition`` (strict) or note that the text's statement ``message`` does not hold here."""
        ok = bool(condition)
        if not ok:
            if self.strict:
                raise AssertionError(message)
            self.failed.append(message)
            print(f"Note: on this prior the text's statement does not hold ({message}); the text describes the "
                  "bundled CPU prior's numbers.")
        return ok

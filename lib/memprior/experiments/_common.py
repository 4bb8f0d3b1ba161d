"""Small helpers shared by the experiment modules (seeds, the default schedule, returning freed memory)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys

import torch

from .._checks import check_seed
from ..diffusion import Schedule

__all__ = ["generator", "schedule_or_paper", "release_memory", "releases_memory"]


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    seed = check_seed(seed, "seed")
    return torch.Generator().manual_seed(int(seed))


def schedule_or_paper(schedule) -> Schedule:
    """``schedule`` itself, or the paper's (``Schedule.linear()``: 200 steps, beta 1e-4 to 0.02) for None."""
    if schedule is None:
        return Schedule.linear()
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected a memprior.diffusion.Schedule or None, got {type(schedule).__name__}")
    return schedule


def _libc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):       # not glibc (musl, ...): nothing to do
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _libc_trim()


def release_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the operating system.

    glibc keeps memory that numpy and torch have freed inside the process's heap, where it counts
    toward the resident set although nothing uses it; after a few experiments a chapter's kernel holds
    hundreds of MB of such holes, and the next large temporary lands on top of them.  ``malloc_trim(0)``
    returns them (a no-op where the C library is not glibc).  Measured on chapter 7: the kernel's
    resident baseline falls from about 1.05 GB to 0.7 GB (``benchmarks/RESULTS.md``).
    """
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


def releases_memory(fn):
    """Decorator: :func:`release_memory` before and after ``fn`` (for the experiments with large temporaries)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        release_memory()
        try:
            return fn(*args, **kwargs)
        finally:
            release_memory()
    return wrapper

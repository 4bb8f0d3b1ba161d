"""Small helpers shared by the experiment modules (seeds, the default schedule, returning freed memory)."""
from __future__ import annotations

import functools

import torch

from .._checks import check_seed, release_memory
from ..diffusion import Schedule

__all__ = ["generator", "schedule_or_paper", "check_result", "release_memory", "releases_memory"]


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    seed = check_seed(seed, "seed")
    return torch.Generator().manual_seed(int(seed))


def check_result(name: str, value, cls):
    """``value`` itself if it is a ``cls`` (a result dataclass of an experiment module), else a TypeError."""
    if not isinstance(value, cls):
        raise TypeError(f"{name}: expected a {cls.__name__} (a result of this module), got {type(value).__name__}")
    return value


def schedule_or_paper(schedule) -> Schedule:
    """``schedule`` itself, or the paper's (``Schedule.linear()``: 200 steps, beta 1e-4 to 0.02) for None."""
    if schedule is None:
        return Schedule.linear()
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected a memprior.diffusion.Schedule or None, got {type(schedule).__name__}")
    return schedule


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

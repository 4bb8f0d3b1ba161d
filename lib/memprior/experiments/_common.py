"""Small helpers shared by the experiment modules (seeds and the default schedule)."""
from __future__ import annotations

import torch

from .._checks import check_seed
from ..diffusion import Schedule

__all__ = ["generator", "schedule_or_paper"]


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

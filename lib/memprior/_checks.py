"""Shared input validation and small utilities.

Every public function in memprior rejects bad input with a ``ValueError`` or
``TypeError`` that names the parameter and the accepted range.  These helpers
keep those messages uniform across modules.
"""
from __future__ import annotations

import math
import os
from typing import Iterable

import numpy as np
import torch

__all__ = [
    "check_positive", "check_nonneg", "check_int", "check_finite", "as_tensor",
    "check_shape", "progress", "in_book_build",
]


def check_positive(name: str, value, *, upper: float | None = None) -> float:
    """Return ``float(value)``; raise unless it is a finite number > 0 (and <= upper)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1
    ):
        raise TypeError(f"{name}: expected a positive real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        rng = f"(0, {upper}]" if upper is not None else "(0, inf)"
        raise ValueError(f"{name}: must be a finite number in {rng}, got {v!r}")
    if upper is not None and v > upper:
        raise ValueError(f"{name}: must be in (0, {upper}], got {v!r}")
    return v


def check_nonneg(name: str, value) -> float:
    """Return ``float(value)``; raise unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a non-negative real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be a finite number in [0, inf), got {v!r}")
    return v


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``int(value)``; raise unless it is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name}: must be an integer in [{lo}, {hi}], got {v}")
    return v


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or inf."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf; all entries must be finite")
    return x


def as_tensor(name: str, x, *, ndim: int | None = None, dtype: torch.dtype | None = None,
              finite: bool = True) -> torch.Tensor:
    """Convert array-like ``x`` to a floating torch tensor and validate it.

    Integer input becomes float64; float tensors keep their dtype unless ``dtype`` is given.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except Exception as exc:  # noqa: BLE001
            raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}") from exc
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        if t.is_complex():
            raise TypeError(f"{name}: expected a real array, got complex dtype {t.dtype}")
        t = t.to(torch.float64)
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {tuple(t.shape)}")
    if finite:
        check_finite(name, t)
    return t


def check_shape(name: str, x: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Raise unless ``x.shape`` matches ``shape`` (``None`` entries match anything)."""
    if len(x.shape) != len(shape) or any(s is not None and s != xs for s, xs in zip(shape, x.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name}: expected shape {want}, got {list(x.shape)}")
    return x


def in_book_build() -> bool:
    """True while the book is being built (set by the book's Sphinx extension) or under tests."""
    return os.environ.get("MEMPRIOR_QUIET", "") not in ("", "0")


def progress(iterable: Iterable, desc: str | None = None, total: int | None = None, **kw):
    """A tqdm progress bar in Jupyter and terminals; a plain iterator in the built book.

    The book's build sets ``MEMPRIOR_QUIET=1`` so that no bar noise reaches the pages.
    """
    if in_book_build():
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, **kw)

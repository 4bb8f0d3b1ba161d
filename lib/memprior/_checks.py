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
    "check_shape", "as_train", "as_points", "as_data", "check_forward", "apply_forward", "progress", "in_book_build",
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


def as_train(x_train, name: str = "x_train") -> torch.Tensor:
    """A training set as a finite ``[N, d]`` tensor with N >= 1 and d >= 1."""
    x = as_tensor(name, x_train)
    if x.dim() != 2:
        raise ValueError(f"{name}: expected shape [N, d] with N >= 1 and d >= 1, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the training set is empty; need N >= 1 rows of shape [N, d]")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: need d >= 1 columns, got shape [N, 0]")
    return x


def as_points(name: str, x, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A batch of points as a finite ``[B, dim]`` tensor, cast to ``dtype`` if given."""
    t = as_tensor(name, x)
    if t.dim() != 2 or t.shape[1] != dim:
        raise ValueError(f"{name}: expected shape [B, {dim}] (d = {dim}), got {list(t.shape)}")
    return t if dtype is None else t.to(dtype)


def as_data(y, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A datum as a finite ``[m]`` tensor (a scalar becomes ``[1]``)."""
    t = as_tensor("y", y, finite=False)
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() != 1 or t.shape[0] == 0:
        raise ValueError(f"y: expected shape [m] with m >= 1, got {list(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("y: contains NaN or inf; all entries must be finite")
    return t if dtype is None else t.to(dtype)


def check_forward(forward) -> None:
    """Raise ``TypeError`` unless ``forward`` is callable."""
    if not callable(forward):
        raise TypeError(f"forward: expected a callable mapping [B, d] -> [B, m], got {type(forward).__name__}")


def apply_forward(forward, x: torch.Tensor, m: int, what: str = "x_train", *, dtype: torch.dtype | None = None,
                  finite: bool = True) -> torch.Tensor:
    """``forward(x)``, checked to be a real ``[B, m]`` tensor (autograd kept), cast to ``dtype`` (default x's)."""
    out = forward(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward: must return a torch.Tensor of shape [B, m], got {type(out).__name__}")
    if out.dim() != 2 or out.shape[0] != x.shape[0] or out.shape[1] != m:
        raise ValueError(f"forward: must map [B, d] -> [B, m] with m = len(y) = {m}; on {what} of shape "
                         f"{list(x.shape)} it returned shape {list(out.shape)}")
    if out.is_complex():
        raise TypeError("forward: must return a real tensor (stack real and imaginary parts for complex data)")
    out = out.to(x.dtype if dtype is None else dtype)
    if finite and not torch.isfinite(out).all():
        raise ValueError(f"forward: returned NaN or inf on {what}; F must be finite there")
    return out


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

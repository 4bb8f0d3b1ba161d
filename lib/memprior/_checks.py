"""Shared input validation and small utilities.

Every public function in memprior rejects bad input with a ``ValueError`` or
``TypeError`` that names the parameter and the accepted range.  These helpers
keep those messages uniform across modules.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
import sys
from typing import Iterable

import numpy as np
import torch

__all__ = [
    "check_positive", "check_nonneg", "check_real", "check_int", "check_finite", "as_tensor",
    "check_shape", "as_train", "as_points", "as_data", "check_forward", "apply_forward", "probe_forward",
    "check_generator", "check_seed", "check_bool", "check_choice", "check_weights", "check_log_weights",
    "guard_finite", "check_diverged", "SEED_MAX", "SQUARE_MIN", "SQUARE_MAX",
    "progress", "in_book_build", "release_memory",
]

#: Largest accepted seed: torch generators and numpy take 64-bit seeds, and ``seed + k`` offsets must not wrap.
SEED_MAX = 2 ** 63 - 1
#: Smallest positive scale whose square is a normal float64 (about 1.5e-154): below it ``sigma**2``
#: underflows (to a subnormal or to 0) and every Gaussian log-weight becomes -inf or NaN.
SQUARE_MIN = math.sqrt(np.finfo(np.float64).tiny)
#: Largest scale whose square is finite in float64 (about 1.3e154).
SQUARE_MAX = math.sqrt(np.finfo(np.float64).max)

_REAL = (int, float, np.floating, np.integer)


def _scalar(name: str, value, what: str) -> float:
    """``float(value)`` for a real scalar (Python, numpy or a one-element real tensor); TypeError otherwise."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name}: expected {what} (a real scalar), got a {value.dtype} tensor of shape "
                            f"{list(value.shape)}")
        return float(value.detach())
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return float(value)
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}"
                        + (f" {value!r} (convert strings with float() first)" if isinstance(value, str) else ""))
    return float(value)


def check_positive(name: str, value, *, upper: float | None = None, square: bool = False) -> float:
    """Return ``float(value)``; raise unless it is a finite number > 0 (and <= upper).

    ``square=True`` (for a standard deviation or a bandwidth that the caller squares) also rejects
    values below :data:`SQUARE_MIN` (about 1.5e-154), whose square underflows in float64, and above
    :data:`SQUARE_MAX` (about 1.3e154), whose square overflows.
    """
    v = _scalar(name, value, "a positive real number")
    rng = f"(0, {upper}]" if upper is not None else "(0, inf)"
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be a finite number in {rng}, got {v!r}")
    if upper is not None and v > upper:
        raise ValueError(f"{name}: must be in {rng}, got {v!r}")
    if square and v < SQUARE_MIN:
        raise ValueError(f"{name}: must be in [{SQUARE_MIN:.3g}, {upper if upper is not None else 'inf'}"
                         f"{']' if upper is not None else ')'}: {v!r} is so small that its square underflows in "
                         "float64 (every Gaussian weight would be 0 or NaN)")
    if square and v > SQUARE_MAX:
        raise ValueError(f"{name}: must be in [{SQUARE_MIN:.3g}, {SQUARE_MAX:.3g}]: {v!r} is so large that its square "
                         "overflows in float64")
    return v


def check_nonneg(name: str, value) -> float:
    """Return ``float(value)``; raise unless it is a finite number >= 0."""
    v = _scalar(name, value, "a non-negative real number")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be a finite number in [0, inf), got {v!r}")
    return v


def check_real(name: str, value, *, low: float | None = None, high: float | None = None) -> float:
    """Return ``float(value)``; raise unless it is a finite real number in ``[low, high]``."""
    v = _scalar(name, value, "a real number")
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name}: must be a finite number in [{lo}, {hi}], got {v!r}")
    return v


def check_bool(name: str, value) -> bool:
    """Return ``value``; raise ``TypeError`` unless it is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def check_choice(name: str, value, choices) -> str:
    """Return ``value``; raise ``ValueError`` unless it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_generator(generator, name: str = "generator") -> torch.Generator | None:
    """Return ``generator``; raise ``TypeError`` unless it is ``None`` or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        hint = (f"; to seed, pass torch.Generator().manual_seed({generator})"
                if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool) else "")
        raise TypeError(f"{name}: expected a torch.Generator or None, got {type(generator).__name__}{hint}")
    return generator


def check_seed(seed, name: str = "seed") -> int:
    """Return ``int(seed)``; raise unless it is an integer in ``[0, 2**63 - 1]``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer in [0, 2**63 - 1], got {type(seed).__name__}")
    v = int(seed)
    if not 0 <= v <= SEED_MAX:
        raise ValueError(f"{name}: must be an integer in [0, 2**63 - 1], got {v}")
    return v


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``int(value)``; raise unless it is an integer in [low, high]."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point() \
            and not value.is_complex() and value.dtype != torch.bool:
        value = int(value.item())
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
            arr = np.asarray(x)
        except Exception as exc:  # noqa: BLE001  (ragged nested lists and the like)
            raise TypeError(f"{name}: expected an array or tensor of real numbers, got {type(x).__name__}") from exc
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{name}: expected an array or tensor of real numbers, got {type(x).__name__} "
                            f"of numpy dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.is_complex():
        raise TypeError(f"{name}: expected a real array, got complex dtype {t.dtype} "
                        "(stack real and imaginary parts as separate real entries)")
    if t.dtype == torch.bool:
        raise TypeError(f"{name}: expected a real array, got dtype torch.bool")
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype in (torch.float16, torch.bfloat16):
        # half precision cannot hold the library's log-weights: computed in float32
        t = t.to(torch.float32)
    elif not t.is_floating_point():
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
    try:
        out = forward(x)
    except TypeError as exc:
        raise TypeError(f"forward: calling it on {what} of shape {list(x.shape)} failed ({exc}); it must map a "
                        "tensor [B, d] -> [B, m]") from exc
    return _forward_output(out, x, m, what, dtype=dtype, finite=finite)


def _forward_output(out, x: torch.Tensor, m: int | None, what: str, *, dtype=None, finite: bool = True):
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward: must return a torch.Tensor of shape [B, m], got {type(out).__name__}")
    if m is None and out.dim() == 2:
        m = out.shape[1]
    if m is None or out.dim() != 2 or out.shape[0] != x.shape[0] or out.shape[1] != m:
        if m is None:
            raise ValueError(f"forward: must map [B, d] -> [B, m]; on {what} of shape {list(x.shape)} it returned "
                             f"shape {list(out.shape)}")
        raise ValueError(f"forward: must map [B, d] -> [B, m] with m = len(y) = {m}; on {what} of shape "
                         f"{list(x.shape)} it returned shape {list(out.shape)}")
    if out.is_complex():
        raise TypeError("forward: must return a real tensor (stack real and imaginary parts for complex data)")
    out = out.to(x.dtype if dtype is None else dtype)
    if finite and not torch.isfinite(out).all():
        raise ValueError(f"forward: returned NaN or inf on {what}; F must be finite there")
    return out


def probe_forward(forward, x: torch.Tensor, m: int | None = None, *, differentiable: bool = False,
                  what: str = "x_train") -> int:
    """Call ``forward`` once on (at most two rows of) ``x`` and check it; return ``m``, its output width.

    Checks that the output is a real ``[B, m]`` tensor of finite values and, with ``differentiable=True``,
    that torch autograd can differentiate it with a finite gradient (the DPS and SMC samplers need that).
    Raises ``TypeError`` / ``ValueError`` naming ``forward``.
    """
    check_forward(forward)
    xb = x[:2].detach().clone()
    if differentiable:
        xb.requires_grad_(True)
    with torch.enable_grad() if differentiable else torch.no_grad():
        try:
            out = forward(xb)
        except (TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise TypeError(f"forward: calling it on {what} rows of shape {list(xb.shape)} failed "
                            f"({type(exc).__name__}: {exc}); it must map a tensor [B, d] -> [B, m]") from exc
        out = _forward_output(out, xb, m, what, dtype=torch.float64)
        m = out.shape[1]
        if differentiable:
            if not out.requires_grad:
                raise TypeError("forward: torch autograd cannot differentiate it (its output does not depend on "
                                "the input through torch operations; numpy or .detach() inside?); the DPS and "
                                "SMC samplers need a differentiable forward map")
            (g,) = torch.autograd.grad(out.sum(), xb, allow_unused=True)
            if g is None:
                raise TypeError("forward: its output does not depend on the input through torch autograd; the DPS "
                                "and SMC samplers need a differentiable forward map")
            if not torch.isfinite(g).all():
                raise ValueError(f"forward: its gradient is NaN or inf on {what}; it must be finite")
    return int(m)


def check_weights(name: str, w, n: int | None = None, *, tol: float = 1e-6) -> torch.Tensor:
    """Probability weights ``[N]``: finite, non-negative, summing to 1 (within ``tol``); float64."""
    t = as_tensor(name, w, ndim=1).to(torch.float64)
    if n is not None:
        check_shape(name, t, (n,))
    if t.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D tensor of probabilities")
    if (t < 0).any():
        raise ValueError(f"{name}: entries must be in [0, 1] (non-negative), got min {float(t.min()):.3g}")
    s = float(t.sum())
    if abs(s - 1.0) > tol:
        raise ValueError(f"{name}: must sum to 1 (within {tol:g}), got sum {s:.6g}; normalize with w / w.sum()")
    return t


def check_log_weights(name: str, lw, n: int | None = None, *, normalized: bool = False,
                      tol: float | None = None) -> torch.Tensor:
    """Log-weights ``[N]``: no NaN, no +inf, at least one finite entry; ``normalized`` also needs
    ``logsumexp == 0`` (within ``tol``, default 1e-6 in float64 and 1e-4 in lower precision)."""
    t = as_tensor(name, lw, ndim=1, finite=False)
    if n is not None:
        check_shape(name, t, (n,))
    if t.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D tensor of log-weights")
    if torch.isnan(t).any() or torch.isposinf(t).any():
        raise ValueError(f"{name}: entries must be in [-inf, inf) (no NaN, no +inf)")
    if torch.isneginf(t).all():
        raise ValueError(f"{name}: all entries are -inf (every weight zero); need at least one finite entry")
    if normalized:
        tol = (1e-6 if t.dtype == torch.float64 else 1e-4) if tol is None else tol
        lse = float(torch.logsumexp(t.detach().to(torch.float64), 0))
        if abs(lse) > tol:
            raise ValueError(f"{name}: must be normalized (logsumexp = 0 within {tol:g}), got logsumexp {lse:.6g}; "
                             "normalize with torch.log_softmax")
    return t


def guard_finite(x: torch.Tensor, culprit: str, what: str, t=None, hint: str = "") -> torch.Tensor:
    """Raise ``FloatingPointError`` naming ``culprit`` if ``x`` holds NaN or inf (a runtime guard)."""
    if not torch.isfinite(x).all():
        at = "" if t is None else f" at level t={t}"
        raise FloatingPointError(f"{culprit}: {what} is NaN or inf{at}" + (f"; {hint}" if hint else ""))
    return x


def check_diverged(loss: float, step: int, name: str = "lr") -> None:
    """Raise ``FloatingPointError`` when a training loss is NaN or inf (divergence)."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"training diverged at step {step} (loss {loss!r}); lower {name} "
                                 "(the learning rate) or check the training data")


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
    resident baseline falls from about 1.05 GB to 0.7 GB (``benchmarks/RESULTS.md``).  Used around the
    FWI experiments (``memprior.experiments._common.releases_memory``) and between sweep tasks.
    """
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)

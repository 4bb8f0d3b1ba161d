"""memprior.pardiso: a small ctypes binding of MKL PARDISO for complex-symmetric sparse matrices (LDLᵀ).

Optional: it needs ``libmkl_rt`` (the ``mkl`` wheel on Linux x86-64, ``pip install mkl``, or
``pip install memprior[fast]``).  :func:`available` says whether it loaded; the Helmholtz solver falls
back to SuperLU otherwise.  Only what :mod:`memprior.wave` needs is bound:

* :class:`Pattern`: the upper triangle (CSR) of a symmetric sparsity pattern given in CSC, and a
  fill-reducing permutation computed once for the pattern (the first analysis) and handed to every
  later analysis, so each new matrix of the pattern skips the reordering;
* :class:`LDLT`: one factorization (matrix type 6, complex symmetric, Bunch-Kaufman pivoting)
  with multi-right-hand-side solves.  When it is collected, its analysed handle goes back to the
  pattern (up to ``Pattern.max_spare`` of them), and the next matrix of the pattern reuses the
  symbolic analysis: only the numerical factorization runs (at 64² the analysis cost twice the
  factorization).  Other handles are freed.

MKL runs sequentially here (``MKL_Set_Threading_Layer(SEQUENTIAL)`` before any other MKL call), so
a call uses one core, as the rest of the solver does.  Parallelism comes from running processes side
by side (:mod:`memprior.sweep`), or from threads that each solve with their own handle
(:meth:`LDLT.replica`; the ctypes call releases the GIL): ``Helmholtz2D(threads=k)``.

The library is found as ``$MEMPRIOR_MKL_RT`` (a path), else ``<sys.prefix>/lib/libmkl_rt.so.*``
(where the wheel puts it), else by the system loader.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import threading
import weakref

import numpy as np

__all__ = ["available", "load_error", "Pattern", "LDLT"]

_MTYPE_COMPLEX_SYMMETRIC = 6
_SEQUENTIAL = 1
_LP64 = 0
_ERRORS = {
    -1: "input inconsistent", -2: "not enough memory", -3: "reordering problem",
    -4: "zero pivot, numerical factorization or iterative refinement problem", -5: "unclassified internal error",
    -6: "reordering failed", -7: "diagonal matrix is singular", -8: "32-bit integer overflow",
    -9: "not enough memory for out-of-core", -10: "error opening out-of-core files",
    -11: "read/write error with out-of-core files", -12: "pardiso_64 called from a 32-bit library",
}

_lib = None
_load_error: str | None = None
_tried = False


def _candidates() -> list:
    env = os.environ.get("MEMPRIOR_MKL_RT")
    if env:
        return [env]
    out = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        out += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
    found = ctypes.util.find_library("mkl_rt")
    if found:
        out.append(found)
    return out


def _load():
    global _lib, _load_error, _tried
    if _tried:
        return _lib
    _tried = True
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.MKL_Set_Threading_Layer.restype = ctypes.c_int
            lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
            lib.MKL_Set_Interface_Layer.restype = ctypes.c_int
            lib.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
            if lib.MKL_Set_Threading_Layer(_SEQUENTIAL) != _SEQUENTIAL:
                raise OSError("MKL already initialized with a threaded layer")
            if lib.MKL_Set_Interface_Layer(_LP64) != _LP64:
                raise OSError("MKL already initialized with the ILP64 interface")
            lib.pardiso.restype = None
            lib.pardiso.argtypes = [ctypes.c_void_p] * 16
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        _lib = lib
        return lib
    _load_error = "; ".join(errors) if errors else "libmkl_rt not found (pip install mkl)"
    return None


def available() -> bool:
    """Whether MKL PARDISO could be loaded in this process."""
    return _load() is not None


def load_error() -> str | None:
    """Why PARDISO is not available (None when it is)."""
    _load()
    return _load_error


def _ptr(a: np.ndarray):
    return ctypes.c_void_p(a.ctypes.data)


def _int(v: int):
    return ctypes.byref(ctypes.c_int32(v))


def _iparm(user_perm: bool) -> np.ndarray:
    ip = np.zeros(64, dtype=np.int32)
    ip[0] = 1     # iparm set here, not defaults
    ip[1] = 0     # minimum-degree ordering (less fill than METIS on these 2-D grids, measured at 84² and 260²)
    ip[4] = 1 if user_perm else 2  # 1: use perm as the fill-reducing ordering; 2: return it in perm
    ip[7] = 0     # iterative refinement only after perturbed pivots (two steps); none otherwise
    ip[9] = 8     # pivots perturbed to 1e-8 (the default for symmetric indefinite matrices)
    ip[20] = 1    # Bunch-Kaufman 1x1 and 2x2 pivoting
    ip[23] = 10   # the improved two-level factorization: 15-25 % faster multi-column solves here (measured)
    ip[34] = 1    # zero-based indices
    return ip


class _Handle:
    """PARDISO's state for one matrix: the internal handle ``pt``, ``iparm`` and the ordering ``perm``."""

    __slots__ = ("pt", "iparm", "perm", "n")

    def __init__(self, n: int, perm):
        self.n = n
        self.pt = np.zeros(64, dtype=np.int64)
        self.iparm = _iparm(user_perm=perm is not None)
        self.perm = np.zeros(n, dtype=np.int32) if perm is None else perm.copy()


class Pattern:
    """Upper triangle, in CSR, of a symmetric ``n x n`` pattern given in CSC (``indptr``, ``indices``).

    For a symmetric pattern the CSC arrays read as CSR arrays of the same matrix; the entries with
    row >= column in CSC are the CSR upper triangle.  Row indices must be sorted within each column,
    and every diagonal entry present.  ``slots`` picks those entries out of a CSC data array.
    """

    def __init__(self, indptr, indices, n: int):
        indptr = np.asarray(indptr, dtype=np.int64)
        indices = np.asarray(indices, dtype=np.int64)
        if n < 1 or indptr.shape != (n + 1,) or indptr[-1] != indices.size:
            raise ValueError(f"indptr: expected {n + 1} column pointers ending at nnz = {indices.size}")
        col = np.repeat(np.arange(n), np.diff(indptr))
        keep = indices >= col
        if np.count_nonzero(indices == col) != n:
            raise ValueError("indices: every diagonal entry must be in the pattern")
        self.n = int(n)
        self.nnz = int(indices.size)
        self.slots = np.flatnonzero(keep)
        self.ia = np.concatenate([[0], np.cumsum(np.bincount(col[keep], minlength=n))]).astype(np.int32)
        self.ja = indices[keep].astype(np.int32)
        self.perm: np.ndarray | None = None  # fill-reducing ordering, set by the first factorization
        self._spare: list = []  # analysed handles of collected factorizations, ready for phase 22
        self.max_spare = 4
        self.n_analyses = 0
        self._lock = threading.Lock()  # factorizations may run in several threads (LDLT.replica)

    def factor(self, data) -> "LDLT":
        """LDLᵀ factors of the matrix with this pattern and CSC values ``data`` (complex)."""
        return LDLT(self, data)

    def _recycle(self, lib, handle: "_Handle"):
        """Keep the analysed handle of a collected factorization for the next one (or free it)."""
        with self._lock:
            keep = len(self._spare) < self.max_spare
            if keep:
                self._spare.append(handle)
        if not keep:
            _release(lib, handle)


class LDLT:
    """PARDISO's LDLᵀ factorization of a complex-symmetric matrix (``A = Aᵀ``, not Hermitian).

    Parameters
    ----------
    pattern : Pattern
    data : complex array [nnz]
        CSC values of the full matrix (both triangles), in the pattern's order.
    """

    def __init__(self, pattern: Pattern, data):
        lib = _load()
        if lib is None:
            raise RuntimeError(f"PARDISO is not available: {_load_error}")
        data = np.asarray(data)
        if data.shape != (pattern.nnz,):
            raise ValueError(f"data: expected the {pattern.nnz} CSC values of the pattern, got shape {list(data.shape)}")
        if not np.all(np.isfinite(data)):
            raise ValueError("data: contains NaN or inf")
        self._factor(lib, pattern, np.ascontiguousarray(data[pattern.slots], dtype=np.complex128))

    def replica(self) -> "LDLT":
        """A second, independent factorization of the same matrix (its own PARDISO handle).

        PARDISO may be called from several threads at once only on different handles, and the
        ctypes call releases the GIL: each thread that solves with this matrix at the same time
        needs a replica of its own.
        """
        other = LDLT.__new__(LDLT)
        other._factor(_load(), self.pattern, self._a)
        return other

    def _factor(self, lib, pattern: Pattern, a_upper: np.ndarray):
        self.pattern = pattern
        self.n = pattern.n
        self._a = a_upper
        with pattern._lock:
            spare = pattern._spare.pop() if pattern._spare else None
            if spare is None:
                pattern.n_analyses += 1
        if spare is not None:  # an analysed handle of this pattern: numerical factorization only
            self._h = spare
            self.reused_analysis = True
            phase = 22
        else:  # analysis (with the pattern's ordering after the first) and numerical factorization
            self._h = _Handle(self.n, pattern.perm)
            self.reused_analysis = False
            phase = 12
        try:
            self._call(phase)
        except RuntimeError:
            _release(lib, self._h)
            raise
        with pattern._lock:
            if pattern.perm is None:
                pattern.perm = self._h.perm.copy()
        self.perturbed_pivots = int(self._h.iparm[13])
        #: memory of the numerical factorization and the solves, KiB (PARDISO's iparm[16])
        self.memory_kib = int(self._h.iparm[16])
        self._finalizer = weakref.finalize(self, pattern._recycle, lib, self._h)

    def _call(self, phase: int, nrhs: int = 1, b=None, x=None):
        dummy = np.zeros(1, dtype=np.complex128)
        err = ctypes.c_int32(0)
        h = self._h
        _lib.pardiso(_ptr(h.pt), _int(1), _int(1), _int(_MTYPE_COMPLEX_SYMMETRIC), _int(phase), _int(self.n),
                     _ptr(self._a), _ptr(self.pattern.ia), _ptr(self.pattern.ja), _ptr(h.perm), _int(nrhs),
                     _ptr(h.iparm), _int(0), _ptr(dummy if b is None else b), _ptr(dummy if x is None else x),
                     ctypes.byref(err))
        if err.value != 0:
            raise RuntimeError(f"PARDISO phase {phase} failed with error {err.value} "
                               f"({_ERRORS.get(err.value, 'unknown')})")

    def solve(self, b) -> np.ndarray:
        """A⁻¹ b for b [n] or [n, k] (complex128; a [n, k] result is Fortran-ordered)."""
        b = np.asarray(b, dtype=np.complex128)
        if b.shape[0] != self.n or b.ndim not in (1, 2):
            raise ValueError(f"b: expected shape [{self.n}] or [{self.n}, k], got {list(b.shape)}")
        if b.ndim == 2 and b.shape[1] == 0:
            return np.empty(b.shape, dtype=np.complex128, order="F")
        bb = np.asfortranarray(b) if b.ndim == 2 else np.ascontiguousarray(b)  # iparm[5] = 0: b is only read
        x = np.empty_like(bb, order="F")
        self._call(33, 1 if b.ndim == 1 else b.shape[1], bb, x)
        return x


def _release(lib, handle: _Handle):
    """Phase -1: free PARDISO's memory for this handle."""
    if not handle.pt.any():
        return
    dummy = np.zeros(1, dtype=np.complex128)
    idummy = np.zeros(1, dtype=np.int32)
    err = ctypes.c_int32(0)
    lib.pardiso(_ptr(handle.pt), _int(1), _int(1), _int(_MTYPE_COMPLEX_SYMMETRIC), _int(-1), _int(handle.n),
                _ptr(dummy), _ptr(idummy), _ptr(idummy), _ptr(idummy), _int(1), _ptr(handle.iparm), _int(0),
                _ptr(dummy), _ptr(dummy), ctypes.byref(err))
    handle.pt[:] = 0

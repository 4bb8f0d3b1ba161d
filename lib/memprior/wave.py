"""A compact 2-D frequency-domain wave (Helmholtz) solver with a PML.

The solver discretizes

.. math::

    (\\Delta + \\omega^2 m)\\, u = -s,

on a regular grid, where :math:`m` is the squared slowness in s²/km², :math:`\\omega = 2\\pi f`
with :math:`f` in Hz, lengths are in km, and the time-harmonic convention is
:math:`e^{-i\\omega t}`, so that outgoing waves behave like :math:`e^{+ikr}`.  With this sign
and convention, the free-space Green's function is :math:`G(r) = \\tfrac{i}{4} H_0^{(1)}(kr)`.
A point source of unit strength at a grid node is the grid delta :math:`1/\\Delta x^2`
(sources and receivers between nodes use bilinear weights).

Grid
----
The arrays ``m`` and ``u`` are ``[nx, nz]`` (x horizontal, z depth) and cover the
*interior* only: node ``(i, j)`` sits at ``(i*dx, j*dx)`` km.  Around it, ``npml`` cells of
perfectly matched layer (complex coordinate stretching, quadratic ramp) absorb outgoing
waves; outside those, the field is zero (Dirichlet).  The model is extended into the PML by
copying the nearest interior value (``numpy.pad(mode="edge")``); the gradient maps back by the
adjoint of that padding (the PML values are summed onto the edge pixels).

Discretization
--------------
The stretched operator is multiplied by :math:`s_x s_z`, which gives the symmetric
(conservative) form :math:`\\partial_x (s_z/s_x\\, \\partial_x u) + \\partial_z (s_x/s_z\\,
\\partial_z u) + \\omega^2 s_x s_z m u`.  Its finite-difference matrix is therefore complex
*symmetric* (``A.T == A``), which the solver uses: one sparse LU factorization per model and
frequency serves every source, the adjoint (``A^H x = b`` is solved as
``x = conj(A^{-T} conj(b))`` with the same factors, and ``A^{-T} = A^{-1}``) and all Jacobian
products.  Right-hand sides are solved in blocks (see ``_Factor._solve``).

Backends
--------
``backend="superlu"``: scipy's SuperLU, an LU with the ordering below.  ``backend="pardiso"``: MKL
PARDISO's LDLᵀ of the complex-symmetric matrix (:mod:`memprior.pardiso`, needs the optional ``mkl``
wheel), with its fill-reducing ordering and symbolic analysis computed once per grid and reused for every
model.  ``backend="auto"`` (default) takes PARDISO when it loads, SuperLU otherwise; the environment
variable ``MEMPRIOR_SOLVER=superlu|pardiso`` overrides that choice (:func:`solver_backends`).  Both give
the same data and gradients to round-off (tested).

Ordering
--------
Fill in the LU factors depends only on the sparsity pattern, which depends only on the grid
and the stencil.  So the fill-reducing ordering (minimum degree on A + Aᵀ) is computed once per
grid shape and stencil, by a symbolic pass of SuperLU's own ordering (``_fill_reducing_labels``),
and the unknowns are numbered in that order from then on; each model's factorization then skips
the ordering step.  Internally, vectors of unknowns are in this *solver numbering*; everything
public (``matrix``, ``pad``, wavefields) uses the natural numbering ``i·NZ + j``.

``order=2`` is the classical 5-point stencil.  ``order=4`` combines the spacing-h and
spacing-2h 3-point operators as (4/3)·δ_h² − (1/3)·δ_2h², a 9-point cross that is
fourth-order accurate in the interior and stays symmetric with the variable PML coefficients.

Threads
-------
With SuperLU, factorizations and solves call OpenBLAS for their dense kernels.  Every
factorization, solve and dense contraction then runs with at most ``threads`` BLAS threads
(default 1), through ``threadpoolctl`` (see :func:`blas_threads`).  PARDISO runs on MKL's
sequential layer and needs no pinning; with ``threads=k > 1`` a gradient's sources are split into k
groups solved on k Python threads, each with its own factorization of the same matrix (PARDISO calls
release the GIL, and separate handles may run at once).  On a busy 2-core
machine, unpinned OpenBLAS threads made the factorizations several times slower.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from . import pardiso as mkl_pardiso
from ._checks import check_int, check_positive

__all__ = ["Acquisition", "Helmholtz2D", "HelmholtzData", "helmholtz_data", "blas_threads",
           "greens_function_2d", "greens_function_error", "solver_backends"]

from threadpoolctl import ThreadpoolController

_PERMC_SPECS = ("MMD_AT_PLUS_A", "COLAMD", "MMD_ATA", "NATURAL")
_BACKENDS = ("auto", "pardiso", "superlu")
_PATTERNS: dict = {}  # (NX, NZ, order) -> mkl_pardiso.Pattern (with its fill-reducing ordering), shared per grid


def solver_backends() -> dict:
    """Which factorization backends this process can use: ``{"superlu": True, "pardiso": bool}``, and
    ``"auto"``, the one ``Helmholtz2D(backend="auto")`` picks: ``$MEMPRIOR_SOLVER`` when it names an
    available backend ("superlu" or "pardiso"), else PARDISO when it loads, else SuperLU."""
    import os
    ok = mkl_pardiso.available()
    env = os.environ.get("MEMPRIOR_SOLVER", "").strip().lower()
    if env and env not in ("superlu", "pardiso", "auto"):
        raise ValueError(f"MEMPRIOR_SOLVER: must be 'superlu', 'pardiso' or 'auto', got {env!r}")
    auto = env if env in ("superlu", "pardiso") and (env == "superlu" or ok) else ("pardiso" if ok else "superlu")
    return {"superlu": True, "pardiso": ok, "auto": auto}


_POOLS: dict = {}  # the threadpoolctl controller, found once (scanning the loaded libraries is slow)
_POOL_DEPTH = [0, None]


class _Pinned:
    """Context manager of :func:`blas_threads`: limits the BLAS pools on entry, restores them on exit.

    The controller that lists the BLAS libraries is made once per process (scanning the loaded
    libraries took longer than a 64² solve); nested entries with the same limit cost nothing.
    """

    def __init__(self, n: int):
        self.n = n
        self._limiter = None

    def __enter__(self):
        if _POOL_DEPTH[0] > 0 and _POOL_DEPTH[1] == self.n:
            _POOL_DEPTH[0] += 1
            return self
        ctl = _POOLS.get("ctl")
        if ctl is None:  # numpy's and scipy's BLAS are loaded by this module's imports, so once is enough
            ctl = _POOLS["ctl"] = ThreadpoolController()
        self._limiter = ctl.limit(limits=self.n, user_api="blas")
        self._saved = tuple(_POOL_DEPTH)
        _POOL_DEPTH[:] = [1, self.n]
        return self

    def __exit__(self, *exc):
        if self._limiter is None:
            _POOL_DEPTH[0] -= 1
            return False
        self._limiter.restore_original_limits()
        _POOL_DEPTH[:] = list(self._saved)
        self._limiter = None
        return False


def blas_threads(n: int | None):
    """Context manager limiting the BLAS thread pools (numpy's and scipy's) to ``n`` threads in a block.

    Through ``threadpoolctl``. ``n=None`` leaves the pools alone.
    """
    if n is None:
        return contextlib.nullcontext()
    return _Pinned(check_int("n", n, low=1))


def greens_function_2d(r, k: float):
    """Analytic 2-D Green's function of (Δ + k²)G = −δ, with the e^{−iωt} convention.

    Parameters
    ----------
    r : array_like
        Distances from the source in km (must be > 0).
    k : float
        Wavenumber ω/c in rad/km.

    Returns
    -------
    numpy.ndarray (complex)
        ``(i/4) H_0^(1)(k r)``.
    """
    from scipy.special import hankel1

    r = np.asarray(r, dtype=float)
    k = check_positive("k", k)
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("r: distances must be finite and > 0 (the Green's function is singular at r = 0)")
    return 0.25j * hankel1(0, k * r)


def greens_function_error(ppw: float, order: int = 2, *, v: float = 2.0, dx: float = 0.01,
                          npml: int | None = None, return_line: bool = False):
    """Relative L2 error of the solver against the analytic Green's function.

    A unit point source sits at the centre node of a homogeneous medium of velocity ``v``
    (km/s) sampled with ``ppw`` points per wavelength; the error
    ``‖u − G‖ / ‖G‖`` is taken over all nodes between 1 and 3 wavelengths from the source,
    with ``G = (i/4) H_0^(1)(kr)``.  The grid spans ±3.4 wavelengths and the PML is one
    wavelength thick (``npml`` cells, default ``round(ppw)``, at least 5).

    Parameters
    ----------
    ppw : float >= 4
        Points per wavelength.
    order : {2, 4}
        Stencil (see :class:`Helmholtz2D`).
    v, dx : float
        Velocity in km/s and grid spacing in km.
    npml : int, optional
    return_line : bool
        Also return ``(r, u, G)`` along the horizontal line through the source (r > 0).

    Returns
    -------
    float, or (float, (r [n], u [n], G [n])) with ``return_line=True``.
    """
    ppw = check_positive("ppw", ppw)
    if ppw < 4:
        raise ValueError(f"ppw: must be >= 4 points per wavelength, got {ppw}")
    v = check_positive("v", v)
    dx = check_positive("dx", dx)
    lam = ppw * dx
    f = v / lam
    n = int(round(6.8 * ppw)) + 1
    npml = max(5, int(round(ppw))) if npml is None else npml
    solver = Helmholtz2D(n, n, dx, npml=npml, order=order, pml_velocity=v)
    c = (n // 2) * dx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coarse sweeps below 8 ppw are intended here
        u = solver.wavefield(np.full((n, n), 1.0 / v ** 2), f, (c, c))
    X, Z = np.meshgrid(solver.x, solver.z, indexing="ij")
    r = np.hypot(X - c, Z - c)
    ring = (r >= lam) & (r <= 3 * lam)
    g = greens_function_2d(r[ring], 2 * math.pi * f / v)
    err = float(np.linalg.norm(u[ring] - g) / np.linalg.norm(g))
    if not return_line:
        return err
    j = n // 2
    rr = r[j + 1:, j]
    return err, (rr, u[j + 1:, j], greens_function_2d(rr, 2 * math.pi * f / v))


def _as_points(name: str, pts) -> np.ndarray:
    if isinstance(pts, torch.Tensor):
        pts = pts.detach().cpu().numpy()
    try:
        a = np.asarray(pts, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array of (x, z) positions in km") from exc
    if a.ndim == 1 and a.shape[0] == 2:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1:
        raise ValueError(f"{name}: expected shape [n, 2] of (x, z) positions in km with n >= 1, got {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: positions must be finite numbers (km)")
    return a


class Acquisition:
    """Source and receiver positions in km.

    Parameters
    ----------
    sources : array_like, shape [n_src, 2]
        Source positions (x, z) in km.
    receivers : array_like, shape [n_rec, 2]
        Receiver positions (x, z) in km.

    Positions are checked against a solver's grid when used: they must lie in the interior
    grid ``[0, (nx-1)·dx] × [0, (nz-1)·dx]`` (not in the PML).  Points between nodes are
    handled with bilinear weights.
    """

    def __init__(self, sources, receivers):
        self.sources = _as_points("sources", sources)
        self.receivers = _as_points("receivers", receivers)

    @property
    def n_src(self) -> int:
        return self.sources.shape[0]

    @property
    def n_rec(self) -> int:
        return self.receivers.shape[0]

    def __repr__(self) -> str:
        return f"Acquisition(n_src={self.n_src}, n_rec={self.n_rec})"

    @classmethod
    def transmission(cls, nx: int, nz: int, dx: float, n_src: int, n_rec: int) -> "Acquisition":
        """Sources on the top row (z = 0), receivers on the bottom row (z = (nz-1)·dx).

        Both are evenly spread at cell-centred positions ``(k + 1/2)·L/n`` along x, with
        ``L = (nx-1)·dx``, as in a cross-well/transmission experiment.
        """
        nx = check_int("nx", nx, low=2)
        nz = check_int("nz", nz, low=2)
        dx = check_positive("dx", dx)
        n_src = check_int("n_src", n_src, low=1)
        n_rec = check_int("n_rec", n_rec, low=1)
        lx, lz = (nx - 1) * dx, (nz - 1) * dx
        xs = (np.arange(n_src) + 0.5) * lx / n_src
        xr = (np.arange(n_rec) + 0.5) * lx / n_rec
        return cls(np.stack([xs, np.zeros(n_src)], 1), np.stack([xr, np.full(n_rec, lz)], 1))


def _real_array(name: str, x, what: str) -> np.ndarray:
    """``x`` (numpy or torch) as a float64 array, or a TypeError naming ``name`` and ``what``."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name}: expected a real array {what}, got complex")
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        a = np.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"{name}: expected a real array {what}") from exc
    if np.iscomplexobj(a) or a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real array {what}, got dtype {a.dtype}")
    return a.astype(np.float64)


def _apply_rows(P: sp.csr_matrix, X: np.ndarray) -> np.ndarray:
    """P @ X for a sparse P whose rows are all non-empty, without the C-order copy of X that scipy
    makes for a Fortran-ordered X: [n_rows, k]."""
    if P.nnz == 0 or np.any(np.diff(P.indptr) == 0):
        return np.asarray(P @ X)
    return np.add.reduceat(X[P.indices] * P.data[:, None], P.indptr[:-1], axis=0)


_POOLS: dict = {}  # size -> ThreadPoolExecutor, kept for the process (threads > 1 with PARDISO)


def _thread_pool(size: int) -> ThreadPoolExecutor:
    """A pool of ``size`` threads, made once per size and kept: new threads per call would also
    start new malloc arenas, whose first pages fault in (measured: slower than one thread)."""
    if size not in _POOLS:
        _POOLS[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="memprior-wave")
    return _POOLS[size]


_ORDERINGS: dict = {}  # (NX, NZ, order) -> solver numbering, shared by all solvers of that grid


def _fill_reducing_labels(indices: np.ndarray, indptr: np.ndarray, n: int) -> np.ndarray:
    """Solver number of each unknown: SuperLU's minimum-degree ordering of A + Aᵀ for a pattern.

    The ordering (with SuperLU's elimination-tree postorder) depends only on the pattern.  It is
    read off an incomplete factorization that drops every fill entry, of a diagonally dominant
    matrix with the same pattern: the same ordering as a full ``splu`` with
    ``permc_spec="MMD_AT_PLUS_A"`` (tested), at a fraction of its cost.
    """
    counts = np.diff(indptr)
    P = sp.csc_matrix((-np.ones(indices.size), indices, indptr), shape=(n, n))
    P.setdiag(counts + 1.0)
    ilu = spla.spilu(P, permc_spec="MMD_AT_PLUS_A", drop_tol=1e30, fill_factor=1, diag_pivot_thresh=0.1,
                     options=dict(SymmetricMode=True))
    return np.asarray(ilu.perm_c, dtype=np.int64)


class _Factor:
    """One factorization of A(m, ω) and what is needed to reuse it.

    ``lu`` is a SuperLU object (``backend="superlu"``) or a :class:`memprior.pardiso.LDLT`
    (``backend="pardiso"``: LDLᵀ of the complex-symmetric A, every block solved in one call).
    """

    __slots__ = ("lu", "omega", "freq", "w", "shape", "threads", "backend", "_replicas")

    def __init__(self, lu, omega, freq, w, shape, threads=None, backend="superlu"):
        self.lu, self.omega, self.freq, self.w, self.shape = lu, omega, freq, w, shape
        self.threads = threads
        self.backend = backend
        self._replicas: list = []  # further PARDISO factorizations of the same matrix, one per extra thread

    def with_lu(self, lu) -> "_Factor":
        """The same factorization data around another factor object (a PARDISO replica)."""
        return _Factor(lu, self.omega, self.freq, self.w, self.shape, self.threads, self.backend)

    def replica(self, i: int) -> "_Factor":
        """The i-th independent copy (i >= 1) of a PARDISO factorization, for the i-th thread of a
        gradient.  ``Helmholtz2D._factor`` may have started it on a pool thread alongside the first (a
        future, waited for here); otherwise it is made here, on first use, and kept."""
        while len(self._replicas) < i:
            self._replicas.append(None)
        r = self._replicas[i - 1]
        if r is None:
            r = self.with_lu(self.lu.replica())
        elif not isinstance(r, _Factor):  # a future of the copy's LDLT
            r = self.with_lu(r.result())
        self._replicas[i - 1] = r
        return r

    #: right-hand sides per block of the multi-RHS solve (measured best on 64² and 260² grids): SuperLU, PARDISO
    BLOCK = 8
    PARDISO_BLOCK = 16

    def _solve(self, b: np.ndarray) -> np.ndarray:
        """A⁻¹b for b [N] or [N, k] (complex128).

        A is complex symmetric, so A⁻¹b = A⁻ᵀb and either SuperLU solve can be used.  With BLAS
        pinned to one thread, the non-transposed solve of a block of right-hand sides runs
        supernode by supernode with BLAS-3 kernels and costs about 0.6 of a single solve per
        column; a lone column is fastest with the transposed solve.  So columns go in balanced
        blocks of at most ``BLOCK``, and blocks of one or two columns use the transposed solve.
        """
        b = np.asarray(b, dtype=np.complex128)
        if b.ndim == 1:
            if self.backend == "pardiso":
                return self.lu.solve(b)
            with blas_threads(self.threads):
                return self.lu.solve(b, trans="T")
        blocks = list(self.solve_blocks(b))
        if len(blocks) == 1:
            return blocks[0][2]
        out = np.empty(b.shape, dtype=np.complex128, order="F")
        for c0, c1, x in blocks:
            out[:, c0:c1] = x
        return out

    @classmethod
    def block_edges(cls, k: int, backend: str = "superlu") -> list:
        """Balanced column blocks [(c0, c1), ...] of at most ``BLOCK`` (``PARDISO_BLOCK``) columns."""
        size = cls.PARDISO_BLOCK if backend == "pardiso" else cls.BLOCK
        nblk = max(1, -(-k // size))
        edges = [(i * k + nblk // 2) // nblk for i in range(nblk + 1)]  # round(i k / nblk), in integers
        return list(zip(edges[:-1], edges[1:]))

    def solve_blocks(self, b: np.ndarray):
        """Yield ``(c0, c1, A⁻¹ b[:, c0:c1])`` block by block (Fortran-ordered results).

        SuperLU copies each block into a Fortran-ordered array itself, so no copy is made here.
        """
        with blas_threads(self.threads if self.backend == "superlu" else None):
            for c0, c1 in self.block_edges(b.shape[1], self.backend):
                if self.backend == "pardiso":
                    x = self.lu.solve(b[:, c0:c1])
                elif c1 - c0 <= 2:
                    x = np.empty((b.shape[0], c1 - c0), dtype=np.complex128, order="F")
                    for c in range(c0, c1):
                        x[:, c - c0] = self.lu.solve(b[:, c], trans="T")
                else:
                    x = self.lu.solve(b[:, c0:c1])
                yield c0, c1, x

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve A x = rhs (multi-RHS: rhs is [N] or [N, k])."""
        return self._solve(rhs)

    def solve_adjoint(self, rhs: np.ndarray) -> np.ndarray:
        """Solve A^H x = rhs with the same factors: x = conj(A^{-T} conj(rhs))."""
        x = self.solve_adjoint_conj(rhs)
        return np.conj(x, out=x)

    def solve_adjoint_conj(self, rhs: np.ndarray) -> np.ndarray:
        """conj(x) for A^H x = rhs, that is A^{-T} conj(rhs) (= A^{-1} conj(rhs) since A = A^T)."""
        return self._solve(np.conj(rhs))


class Helmholtz2D:
    """2-D Helmholtz solver (Δ + ω²m)u = −s with a complex-stretching PML.

    Parameters
    ----------
    nx, nz : int
        Interior grid size (x horizontal, z depth), each >= 3.
    dx : float
        Grid spacing in km.
    npml : int
        PML thickness in cells on every side (>= 5).
    order : {2, 4}
        Stencil: 2 for the 5-point Laplacian, 4 for the fourth-order 9-point cross.
    pml_velocity : float
        Reference velocity (km/s) that sets the PML damping, σ_max = 3 c ln(1/R) / (2 L).
    pml_reflection : float
        Target normal-incidence reflection R of the continuous PML, in (0, 1).
    permc_spec : str
        SuperLU column ordering: "MMD_AT_PLUS_A" (default; best for this symmetric structure),
        "COLAMD", "MMD_ATA" or "NATURAL".
    backend : {"auto", "pardiso", "superlu"}
        Sparse factorization.  "superlu": scipy's SuperLU (LU with the ordering above).
        "pardiso": MKL PARDISO's LDLᵀ of the complex-symmetric matrix (needs the optional ``mkl``
        wheel, see :mod:`memprior.pardiso`): about half the work of an LU, and the symbolic
        analysis (fill-reducing ordering) computed once per grid and reused for every model.
        "auto" (default): PARDISO when it loads, else SuperLU.  The attribute ``backend`` holds
        the one in use.
    threads : int or None
        SuperLU: BLAS threads during dense work (needs threadpoolctl; otherwise a no-op).
        PARDISO: gradients and vector-Jacobian products split their sources into up to ``threads``
        groups (``MIN_WORK_PER_THREAD``), solved on as many threads, each with its own factorization
        of the matrix, all made at the same time; MKL itself stays sequential.  Default 1: one core,
        as the book and the sweep's workers use it.
    cache_size : int
        How many factorizations (model, frequency pairs) to keep, so that forward, gradient
        and Jacobian calls on the same model reuse one factorization.

    Attributes
    ----------
    n_factorizations : int
        Number of sparse LU factorizations performed so far (for tests and benchmarks).
    """

    def __init__(self, nx: int, nz: int, dx: float, npml: int = 10, order: int = 2, *,
                 pml_velocity: float = 2.0, pml_reflection: float = 1e-3,
                 permc_spec: str = "MMD_AT_PLUS_A", threads: int | None = 1, cache_size: int = 2,
                 backend: str = "auto"):
        self.nx = check_int("nx", nx, low=3)
        self.nz = check_int("nz", nz, low=3)
        self.dx = check_positive("dx", dx)
        self.npml = check_int("npml", npml, low=5)
        self.order = check_int("order", order, low=2, high=4)
        if self.order not in (2, 4):
            raise ValueError(f"order: must be 2 (5-point) or 4 (9-point cross), got {order}")
        self.pml_velocity = check_positive("pml_velocity", pml_velocity)
        self.pml_reflection = check_positive("pml_reflection", pml_reflection)
        if self.pml_reflection >= 1:
            raise ValueError(f"pml_reflection: must be in (0, 1), got {pml_reflection}")
        if permc_spec not in _PERMC_SPECS:
            raise ValueError(f"permc_spec: must be one of {_PERMC_SPECS}, got {permc_spec!r}")
        self.permc_spec = permc_spec
        if backend not in _BACKENDS:
            raise ValueError(f"backend: must be one of {_BACKENDS}, got {backend!r}")
        if backend == "pardiso" and not mkl_pardiso.available():
            raise ValueError(f"backend: 'pardiso' is not available here ({mkl_pardiso.load_error()}); "
                             "install the mkl wheel or use 'superlu'")
        self.backend = solver_backends()["auto"] if backend == "auto" else backend
        self.threads = None if threads is None else check_int("threads", threads, low=1)
        self.cache_size = check_int("cache_size", cache_size, low=1)
        p = self.npml
        self.NX, self.NZ = self.nx + 2 * p, self.nz + 2 * p
        self.N = self.NX * self.NZ
        self.n_factorizations = 0
        self._cache: OrderedDict = OrderedDict()
        self._lap_cache: OrderedDict = OrderedDict()
        self._interp_cache: dict = {}
        # padding map: extended flat index -> interior flat index (edge replication)
        ix = np.clip(np.arange(self.NX) - p, 0, self.nx - 1)
        iz = np.clip(np.arange(self.NZ) - p, 0, self.nz - 1)
        self._pad_index = (ix[:, None] * self.nz + iz[None, :]).ravel()
        # solver numbering of the unknowns: _label[natural index] -> solver index (see "Ordering")
        self._label = self._ordering()
        self._natural = np.argsort(self._label)  # solver index -> natural index
        self._build_structure(self._label)
        self._pad_index_s = self._pad_index[self._natural]  # solver index -> interior index
        self._pad_adjoint_matrix = sp.csr_matrix((np.ones(self.N), (self._pad_index_s, np.arange(self.N))),
                                                 shape=(self.nx * self.nz, self.N))  # E^T (solver numbering)
        interior = ((np.arange(self.nx)[:, None] + p) * self.NZ + (np.arange(self.nz)[None, :] + p)).ravel()
        self._interior = self._label[interior]  # solver indices of the interior nodes, natural order

    # ------------------------------------------------------------------ geometry
    def __repr__(self) -> str:
        return (f"Helmholtz2D(nx={self.nx}, nz={self.nz}, dx={self.dx}, npml={self.npml}, order={self.order}, "
                f"permc_spec={self.permc_spec!r}, backend={self.backend!r})")

    @property
    def extent(self) -> tuple[float, float]:
        """Physical size (x, z) of the interior grid in km: ((nx-1)·dx, (nz-1)·dx)."""
        return (self.nx - 1) * self.dx, (self.nz - 1) * self.dx

    @property
    def x(self) -> np.ndarray:
        """Node x-coordinates of the interior in km, shape [nx]."""
        return np.arange(self.nx) * self.dx

    @property
    def z(self) -> np.ndarray:
        """Node z-coordinates (depth) of the interior in km, shape [nz]."""
        return np.arange(self.nz) * self.dx

    def pad(self, m) -> np.ndarray:
        """Extend an interior array [nx, nz] into the PML by edge replication -> [NX, NZ]."""
        a = np.asarray(m)
        if a.shape != (self.nx, self.nz):
            raise ValueError(f"m: expected the interior shape [nx, nz] = [{self.nx}, {self.nz}], got {list(a.shape)}")
        return a.ravel()[self._pad_index].reshape(self.NX, self.NZ)

    def pad_adjoint(self, g_ext) -> np.ndarray:
        """Adjoint of :meth:`pad`: sum an extended array [NX, NZ] back onto the interior [nx, nz]."""
        g = np.asarray(g_ext)
        if g.shape != (self.NX, self.NZ):
            raise ValueError(f"g_ext: expected the extended shape [NX, NZ] = [{self.NX}, {self.NZ}], got {list(g.shape)}")
        g = g.ravel()
        if np.iscomplexobj(g):
            out = (np.bincount(self._pad_index, g.real, self.nx * self.nz)
                   + 1j * np.bincount(self._pad_index, g.imag, self.nx * self.nz))
        else:
            out = np.bincount(self._pad_index, g, self.nx * self.nz)
        return out.reshape(self.nx, self.nz)

    # ---------------------------------------------------------------- assembly
    def _stretch(self, pos_idx: np.ndarray, n_int: int, omega: float) -> np.ndarray:
        """Complex stretch s = 1 + i σ(d)/ω at extended positions (in cells, may be half-integers)."""
        p = self.npml
        t = pos_idx - p  # interior coordinate in cells
        d = np.maximum(np.maximum(-t, t - (n_int - 1)), 0.0) / p  # depth into the PML in [0, ~1]
        L = p * self.dx
        sigma_max = 3.0 * self.pml_velocity * math.log(1.0 / self.pml_reflection) / (2.0 * L)
        return 1.0 + 1j * sigma_max * d ** 2 / omega

    def _ordering(self) -> np.ndarray:
        """Solver numbering for this grid and stencil (computed once per shape, then shared)."""
        if self.permc_spec != "MMD_AT_PLUS_A":
            return np.arange(self.N)
        key = (self.NX, self.NZ, self.order)
        if key not in _ORDERINGS:
            self._build_structure(np.arange(self.N))
            _ORDERINGS[key] = _fill_reducing_labels(self._indices, self._indptr, self.N)
        return _ORDERINGS[key]

    def _build_structure(self, label: np.ndarray):
        """Sparsity pattern and the map from stencil terms to CSC data slots (done once).

        ``label[i]`` is the row/column of natural unknown ``i`` in the assembled matrix.
        """
        NX, NZ = self.NX, self.NZ
        shifts = [(1, 1.0)] if self.order == 2 else [(1, 4.0 / 3.0), (2, -1.0 / 12.0)]
        rows, cols = [], []
        # each "term" contributes coef to (r, c); we record groups so values can be filled per frequency
        self._terms = []  # (axis, shift, weight, start_indices, n_entries)
        idx = np.asarray(label).reshape(NX, NZ)
        for axis in (0, 1):
            n_ax = NX if axis == 0 else NZ
            for s, wgt in shifts:
                # edges from P (index a) to Q = a + s along axis, with a in [-s, n_ax - 1]
                a = np.arange(-s, n_ax)
                b = a + s
                a_in, b_in = (a >= 0) & (a < n_ax), (b >= 0) & (b < n_ax)
                keep = a_in | b_in
                a, b, a_in, b_in = a[keep], b[keep], a_in[keep], b_in[keep]
                self._terms.append((axis, s, wgt, a, b, a_in, b_in))
                other = np.arange(NZ if axis == 0 else NX)
                def flat(k, o):  # noqa: E306
                    return idx[k[:, None], o[None, :]] if axis == 0 else idx[o[None, :], k[:, None]]
                both = a_in & b_in
                A_, B_ = flat(np.clip(a, 0, n_ax - 1), other), flat(np.clip(b, 0, n_ax - 1), other)
                # order of entries per term: (P,P) all, (Q,Q) all, (P,Q) both, (Q,P) both
                rows += [A_[a_in].ravel(), B_[b_in].ravel(), A_[both].ravel(), B_[both].ravel()]
                cols += [A_[a_in].ravel(), B_[b_in].ravel(), B_[both].ravel(), A_[both].ravel()]
        diag = np.asarray(label)
        rows.append(diag)
        cols.append(diag)
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        key = c.astype(np.int64) * self.N + r
        ukey, inv = np.unique(key, return_inverse=True)
        self._slot = inv  # COO entry -> CSC data position
        self._nnz = ukey.size
        self._indices = (ukey % self.N).astype(np.int32)
        colcount = np.bincount(ukey // self.N, minlength=self.N)
        self._indptr = np.concatenate([[0], np.cumsum(colcount)]).astype(np.int32)
        self._diag_slot = inv[-self.N:]  # data slot of the diagonal of natural unknown i

    def _laplacian_data(self, omega: float) -> tuple[np.ndarray, np.ndarray]:
        """CSC data of the stretched Laplacian part (model independent) and the mass weight s_x s_z."""
        key = float(omega)
        if key in self._lap_cache:
            self._lap_cache.move_to_end(key)
            return self._lap_cache[key]
        NX, NZ, h2 = self.NX, self.NZ, self.dx ** 2
        sx_node = self._stretch(np.arange(NX, dtype=float), self.nx, omega)
        sz_node = self._stretch(np.arange(NZ, dtype=float), self.nz, omega)
        vals = []
        for axis, s, wgt, a, b, a_in, b_in in self._terms:
            mid = (a + b) / 2.0
            if axis == 0:
                coef = (sz_node[None, :] / self._stretch(mid, self.nx, omega)[:, None])  # [edges, NZ]
            else:
                coef = (sx_node[None, :] / self._stretch(mid, self.nz, omega)[:, None])  # [edges, NX]
            coef = coef * (wgt / h2)  # (4/3)δ_h² − (1/3)δ_2h², δ_2h² = (u₊₂ − 2u + u₋₂)/(4h²): weights 4/3, −1/12
            both = a_in & b_in
            vals += [-coef[a_in].ravel(), -coef[b_in].ravel(), coef[both].ravel(), coef[both].ravel()]
        vals.append(np.zeros(self.N, dtype=complex))
        v = np.concatenate(vals)
        data = np.bincount(self._slot, v.real, self._nnz) + 1j * np.bincount(self._slot, v.imag, self._nnz)
        w = (sx_node[:, None] * sz_node[None, :]).ravel()
        out = (data, w)
        self._lap_cache[key] = out
        if len(self._lap_cache) > 4:
            self._lap_cache.popitem(last=False)
        return out

    # ------------------------------------------------------------- validation
    def _check_grid(self, name: str, x, what: str) -> np.ndarray:
        """A finite real array [nx, nz] (numpy or torch) as float64, or an error naming ``name``."""
        a = _real_array(name, x, f"[nx, nz] {what}")
        if a.shape != (self.nx, self.nz):
            raise ValueError(f"{name}: expected shape [nx, nz] = [{self.nx}, {self.nz}], got {list(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or inf")
        return a

    def _check_m(self, m, name: str = "m") -> np.ndarray:
        a = self._check_grid(name, m, "of squared slowness (s^2/km^2)")
        if np.any(a <= 0):
            raise ValueError(f"{name}: squared slowness must be > 0 (s^2/km^2), got min {a.min():.3g}")
        return a

    def _check_freq(self, freq, m: np.ndarray) -> float:
        f = check_positive("freq", freq)
        ppw = self._ppw(m, f)
        if ppw < 4.0:
            raise ValueError(f"freq: {f:g} Hz gives {ppw:.2f} points per wavelength at the slowest velocity; "
                             "need >= 4 (lower freq or refine dx)")
        if ppw < 8.0:
            warnings.warn(f"freq: {f:g} Hz gives only {ppw:.2f} points per wavelength (< 8); expect strong "
                          "numerical dispersion", RuntimeWarning, stacklevel=3)
        return f

    def _ppw(self, m: np.ndarray, f: float) -> float:
        vmin = 1.0 / math.sqrt(float(np.max(m)))
        return vmin / (f * self.dx)

    def points_per_wavelength(self, m, freq) -> float:
        """Grid points per wavelength at the slowest velocity of ``m`` (km/s) and ``freq`` (Hz)."""
        return self._ppw(self._check_m(m), check_positive("freq", freq))

    def check_acquisition(self, acq: Acquisition) -> Acquisition:
        """Raise unless every source and receiver lies in the interior grid (not in the PML)."""
        if not isinstance(acq, Acquisition):
            raise TypeError(f"acq: expected an Acquisition, got {type(acq).__name__}")
        self._check_points("sources", acq.sources)
        self._check_points("receivers", acq.receivers)
        return acq

    def _check_points(self, name: str, pts: np.ndarray):
        lx, lz = self.extent
        tol = 1e-9 * self.dx
        bad = (pts[:, 0] < -tol) | (pts[:, 0] > lx + tol) | (pts[:, 1] < -tol) | (pts[:, 1] > lz + tol)
        if np.any(bad):
            k = int(np.argmax(bad))
            x, z = pts[k]
            p = self.npml * self.dx
            where = ("inside the PML" if (-p <= x <= lx + p and -p <= z <= lz + p) else "outside the grid")
            raise ValueError(f"{name}: point {k} at (x, z) = ({x:g}, {z:g}) km is {where}; positions must lie in "
                             f"[0, {lx:g}] x [0, {lz:g}] km")

    def _interp_matrix(self, pts: np.ndarray) -> sp.csr_matrix:
        """Bilinear interpolation from the extended grid to points: sparse [n_pts, N] (cached; solver numbering)."""
        key = pts.tobytes()
        P = self._interp_cache.get(key)
        if P is None:
            P = self._build_interp(pts)
            if len(self._interp_cache) >= 16:
                self._interp_cache.pop(next(iter(self._interp_cache)))
            self._interp_cache[key] = P
        return P

    def _build_interp(self, pts: np.ndarray) -> sp.csr_matrix:
        p, NZ = self.npml, self.NZ
        lx, lz = self.extent
        fx = np.clip(pts[:, 0], 0, lx) / self.dx
        fz = np.clip(pts[:, 1], 0, lz) / self.dx
        i0 = np.minimum(np.floor(fx).astype(int), self.nx - 2)
        j0 = np.minimum(np.floor(fz).astype(int), self.nz - 2)
        tx, tz = fx - i0, fz - j0
        n = pts.shape[0]
        rows = np.repeat(np.arange(n), 4)
        cols = np.stack([(i0 + p) * NZ + j0 + p, (i0 + p) * NZ + j0 + 1 + p,
                         (i0 + 1 + p) * NZ + j0 + p, (i0 + 1 + p) * NZ + j0 + 1 + p], 1).ravel()
        cols = self._label[cols]  # solver numbering
        vals = np.stack([(1 - tx) * (1 - tz), (1 - tx) * tz, tx * (1 - tz), tx * tz], 1).ravel()
        return sp.csr_matrix((vals, (rows, cols)), shape=(n, self.N))

    # ---------------------------------------------------------- factorization
    def matrix(self, m, freq) -> sp.csc_matrix:
        """The complex-symmetric system matrix A(m, ω) (CSC, [N, N] with N = NX·NZ).

        Rows and columns are in the natural numbering: node (i, j) of the extended grid is i·NZ + j.
        """
        mm = self._check_m(m)
        f = self._check_freq(freq, mm)
        A = self._assemble(mm, 2 * math.pi * f)[0]
        return A[self._label][:, self._label].tocsc()

    def _assemble(self, m: np.ndarray, omega: float):
        """A(m, ω) in the solver numbering, and the mass weight s_x s_z (natural numbering)."""
        lap, w = self._laplacian_data(omega)
        data = lap.copy()
        data[self._diag_slot] += omega ** 2 * w * self.pad(m).ravel()
        A = sp.csc_matrix((data, self._indices, self._indptr), shape=(self.N, self.N))
        return A, w

    def _lu_options(self) -> dict:
        # A is complex symmetric with a symmetric pattern: order A + Aᵀ by minimum degree and prefer
        # diagonal pivots (SymmetricMode, threshold 0.1), which keeps the ordering's low fill.  Small
        # panels and relaxed supernodes (4, 4) factor these 2-D grids 15-25 % faster than SuperLU's
        # defaults (measured on 84² and 260² grids; the fill is unchanged).
        # The unknowns are already numbered in that order (see "Ordering"), so SuperLU keeps it.
        if self.permc_spec == "MMD_AT_PLUS_A":
            return dict(permc_spec="NATURAL", diag_pivot_thresh=0.1, relax=4, panel_size=4,
                        options=dict(SymmetricMode=True))
        return dict(permc_spec=self.permc_spec)

    def factorize(self, m, freq) -> _Factor:
        """LU factors of A(m, 2πf), cached: repeated calls on the same model and frequency reuse them."""
        mm = self._check_m(m)
        f = self._check_freq(freq, mm)
        return self._factor(mm, f)

    def _factor(self, m: np.ndarray, f: float, copies: int = 0) -> _Factor:
        """The factorization of A(m, f), from the cache or made now.  ``copies`` (PARDISO only): start that
        many independent copies on the pool threads while this thread factors the first (for a gradient
        on ``copies + 1`` threads); they are waited for when first used (``_Factor.replica``)."""
        key = (f, hashlib.blake2b(np.ascontiguousarray(m).tobytes(), digest_size=16).hexdigest())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        while len(self._cache) >= self.cache_size:  # evict first: PARDISO reuses the freed handle's analysis
            self._cache.popitem(last=False)
        omega = 2 * math.pi * f
        A, w = self._assemble(m, omega)
        replicas = []
        if self.backend == "pardiso":
            if copies:  # the copies start first, on the pool threads, and run while this thread factors
                pool = _thread_pool(copies)
                replicas = [pool.submit(self._pattern().factor, A.data) for _ in range(copies)]
            lu = self._pattern().factor(A.data)
        else:
            with blas_threads(self.threads):
                lu = spla.splu(A, **self._lu_options())
        self.n_factorizations += 1
        fac = _Factor(lu, omega, f, w[self._natural], (self.NX, self.NZ), self.threads, self.backend)
        fac._replicas = replicas
        self._cache[key] = fac
        return fac

    def _pattern(self):
        """The PARDISO pattern of this grid and stencil (its ordering is computed by the first factorization)."""
        key = (self.NX, self.NZ, self.order, self.permc_spec)
        if key not in _PATTERNS:
            _PATTERNS[key] = mkl_pardiso.Pattern(self._indptr, self._indices, self.N)
        return _PATTERNS[key]

    def clear_cache(self):
        """Forget cached factorizations."""
        self._cache.clear()

    # ------------------------------------------------------------- internals
    def _source_rhs(self, pts: np.ndarray) -> np.ndarray:
        """Right-hand sides −s for point sources of unit strength: dense [N, n_src], Fortran order."""
        return self._rhs_from_interp(self._interp_matrix(pts))

    def _rhs_from_interp(self, P: sp.csr_matrix, c0: int = 0, c1: int | None = None) -> np.ndarray:
        """−Pᵀ/Δx² for rows c0:c1 of P, as a dense [N, c1 - c0] Fortran-ordered array (point sources
        from interpolation rows).  P's rows are read from its CSR arrays directly (no sparse slicing)."""
        c1 = P.shape[0] if c1 is None else c1
        lo, hi = P.indptr[c0], P.indptr[c1]
        rows = np.repeat(np.arange(c1 - c0), np.diff(P.indptr[c0:c1 + 1]))
        F = np.zeros((self.N, c1 - c0), dtype=np.complex128, order="F")
        np.add.at(F, (P.indices[lo:hi], rows), -P.data[lo:hi] / self.dx ** 2)
        return F

    def _fields(self, fac: _Factor, acq: Acquisition) -> np.ndarray:
        with blas_threads(self.threads):
            return fac.solve(self._source_rhs(acq.sources))  # [N, n_src]

    @staticmethod
    def _out(x, like_torch: bool):
        return torch.from_numpy(np.ascontiguousarray(x)) if like_torch else x

    def _prepare(self, m, freq, acq):
        mm = self._check_m(m)
        f = self._check_freq(freq, mm)
        if acq is not None:
            self.check_acquisition(acq)
        return mm, f, isinstance(m, torch.Tensor)

    # ------------------------------------------------------------------ public
    def wavefield(self, m, freq, source, extended: bool = False):
        """Complex wavefield of one unit point source at ``source = (x, z)`` km.

        Returns
        -------
        complex array [nx, nz] (or [NX, NZ] with ``extended=True``, including the PML)
        """
        mm, f, tt = self._prepare(m, freq, None)
        pts = _as_points("source", source)
        if pts.shape[0] != 1:
            raise ValueError(f"source: expected one (x, z) position, got {pts.shape[0]}")
        self._check_points("source", pts)
        fac = self._factor(mm, f)
        u = fac.solve(self._source_rhs(pts)[:, 0])[self._label].reshape(self.NX, self.NZ)
        if not extended:
            p = self.npml
            u = u[p:p + self.nx, p:p + self.nz]
        return self._out(np.array(u), tt)

    def wavefields(self, m, freq, acq: Acquisition):
        """Interior wavefields of all sources, complex [n_src, nx, nz]."""
        mm, f, tt = self._prepare(m, freq, acq)
        U = self._fields(self._factor(mm, f), acq)
        out = U[self._interior].T.reshape(acq.n_src, self.nx, self.nz)
        return self._out(out, tt)

    def forward(self, m, freq, acq: Acquisition):
        """Data at the receivers, complex [n_src, n_rec] (one factorization, multi-RHS solve)."""
        mm, f, tt = self._prepare(m, freq, acq)
        U = self._fields(self._factor(mm, f), acq)
        return self._out(np.asarray((self._interp_matrix(acq.receivers) @ U).T), tt)

    def _check_data(self, name: str, d, acq: Acquisition) -> np.ndarray:
        a = d.detach().cpu().numpy() if isinstance(d, torch.Tensor) else np.asarray(d)
        if a.dtype.kind not in "fciu":
            raise TypeError(f"{name}: expected a numeric array [n_src, n_rec], got dtype {a.dtype}")
        a = a.astype(np.complex128)
        if a.shape != (acq.n_src, acq.n_rec):
            raise ValueError(f"{name}: expected shape [n_src, n_rec] = [{acq.n_src}, {acq.n_rec}], got {list(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or inf")
        return a

    def _data_and_vjp(self, fac: _Factor, acq: Acquisition, weights,
                      U: np.ndarray | None = None, pml_copies: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Data d [n_src, n_rec] and the vector-Jacobian product g [nx, nz] in one pass over source blocks.

        g satisfies g·δm = Re Σ conj(dd)·(J δm).  For each block of sources (``_Factor.block_edges``):
        the wavefields (solved here, or taken from ``U`` [N, n_src] when given), their data, the adjoint
        weights ``dd = weights(d_block, c0, c1)``, the adjoint wavefields with the same factors, and
        their contraction with the wavefields.  Solving here holds one block of wavefields at a time,
        and the arrays stay small enough to be reused by the allocator.
        """
        Ps, Pr = self._interp_matrix(acq.sources), self._interp_matrix(acq.receivers)
        PrT = Pr.T.tocsr()
        d = np.empty((acq.n_src, acq.n_rec), dtype=np.complex128)

        def sources(f: _Factor, s0: int, s1: int) -> np.ndarray:
            """Data rows s0:s1 of d, and Σ_s conj(λ_s) ⊙ u_s over these sources."""
            acc = np.zeros(self.N, dtype=np.complex128)
            for b0, b1 in _Factor.block_edges(s1 - s0, f.backend):
                c0, c1 = s0 + b0, s0 + b1
                Ub = f.solve(self._rhs_from_interp(Ps, c0, c1)) if U is None else U[:, c0:c1]  # [N, k]
                d[c0:c1] = _apply_rows(Pr, Ub).T
                # conj(λ) with A^H λ = P_r^T dd: conj(λ) = A^{-T} P_r^T conj(dd) = A^{-1} P_r^T conj(dd)
                lam_bar = f.solve(PrT @ np.conj(weights(d[c0:c1], c0, c1)).T)
                acc += np.einsum("ns,ns->n", lam_bar, Ub)
            return acc

        groups = self._source_groups(acq.n_src) if U is None else 1
        if groups == 1:  # (more than one group only with PARDISO: _source_groups)
            # PARDISO runs without BLAS pools, and the rest is sparse or elementwise: pin only for SuperLU
            with blas_threads(self.threads if fac.backend == "superlu" else None):
                acc = sources(fac, 0, acq.n_src)
        else:  # PARDISO: groups 1.. on the pool threads, each with its own factorization (the GIL is released)
            edges = [(i * acq.n_src) // groups for i in range(groups + 1)]
            pool = _thread_pool(groups - 1)
            parts = [pool.submit(lambda i: sources(fac.replica(i), edges[i], edges[i + 1]), i) for i in range(1, groups)]
            acc = sources(fac, edges[0], edges[1])  # group 0 on this thread, meanwhile
            acc = acc + sum(part.result() for part in parts)
        g_s = -fac.omega ** 2 * np.real(fac.w * acc)
        if not pml_copies:  # the interior of the padded gradient only (edge pixels miss their PML copies)
            return d, g_s[self._interior].reshape(self.nx, self.nz)
        return d, np.bincount(self._pad_index_s, g_s, self.nx * self.nz).reshape(self.nx, self.nz)

    #: least work a thread of a gradient takes (``threads > 1``), in unknowns × sources: below that, handing
    #: work to another core cost more than it saved (measured at 84² with 5 sources, 35,000: 11 ms on two
    #: threads against 7 on one; with 50 sources, 350,000: 15 against 26)
    MIN_WORK_PER_THREAD = 50_000

    def _source_groups(self, n_src: int) -> int:
        """How many threads share the sources of one gradient: up to ``threads`` with PARDISO, each with at
        least ``MIN_WORK_PER_THREAD`` (unknowns × sources) and one source; else one."""
        if self.backend != "pardiso" or not self.threads or self.threads < 2:
            return 1
        return max(1, min(self.threads, n_src, (n_src * self.N) // self.MIN_WORK_PER_THREAD))

    def _jvp_core(self, fac: _Factor, acq: Acquisition, U: np.ndarray, dm: np.ndarray) -> np.ndarray:
        Pr = self._interp_matrix(acq.receivers)
        rhs = -fac.omega ** 2 * (fac.w * dm.ravel()[self._pad_index_s])[:, None] * U
        with blas_threads(self.threads):
            dU = fac.solve(rhs)
        return np.asarray((Pr @ dU).T)

    def misfit_gradient(self, m, freq, acq: Acquisition, d_obs, sigma_d, *, pml_copies: bool = True):
        """Complex-Gaussian negative log-likelihood and its adjoint-state gradient.

        ``misfit = Σ |d(m) − d_obs|² / σ_d²`` (circular complex noise with E|e|² = σ_d², so no 1/2).
        ``pml_copies=False`` keeps only the interior of the padded gradient, as the paper's solver does:
        the derivative at edge pixels then misses the PML cells that copy them (wrong there; for contrast).

        Returns
        -------
        misfit : float
        grad : real array [nx, nz], ∂misfit/∂m in (s²/km²)⁻¹
        data : complex array [n_src, n_rec], the predicted data d(m)
        """
        mm, f, tt = self._prepare(m, freq, acq)
        dobs = self._check_data("d_obs", d_obs, acq)
        sig = check_positive("sigma_d", sigma_d, square=True)
        fac = self._factor(mm, f, copies=self._source_groups(acq.n_src) - 1)
        d, g = self._data_and_vjp(fac, acq, lambda d_blk, c0, c1: 2.0 * (d_blk - dobs[c0:c1]) / sig ** 2,
                                  pml_copies=bool(pml_copies))
        misfit = float(np.sum(np.abs(d - dobs) ** 2) / sig ** 2)
        return misfit, self._out(g, tt), self._out(d, tt)

    def jvp(self, m, freq, acq: Acquisition, dm):
        """Jacobian-vector product J δm: complex [n_src, n_rec] (δm real [nx, nz])."""
        mm, f, tt = self._prepare(m, freq, acq)
        dmm = self._check_grid("dm", dm, "(a perturbation of squared slowness)")
        fac = self._factor(mm, f)
        return self._out(self._jvp_core(fac, acq, self._fields(fac, acq), dmm), tt)

    def vjp(self, m, freq, acq: Acquisition, dd):
        """Vector-Jacobian product: real g [nx, nz] with g·δm = Re Σ conj(dd)·(J δm)."""
        mm, f, tt = self._prepare(m, freq, acq)
        ddd = self._check_data("dd", dd, acq)
        fac = self._factor(mm, f, copies=self._source_groups(acq.n_src) - 1)
        return self._out(self._data_and_vjp(fac, acq, lambda d_blk, c0, c1: ddd[c0:c1])[1], tt)

    def jacobian(self, m, freq, acq: Acquisition, basis, method: str = "sensitivity", chunk_mb: float = 64.0):
        """Jacobian of the data with respect to the coefficients of a reduced basis.

        ``d(m + Σ_k c_k φ_k) ≈ d(m) + J c`` with ``J[s·n_rec + r, k]``.

        Parameters
        ----------
        basis : array [K, nx, nz]
            Real basis functions φ_k (squared slowness per unit coefficient).
        method : {"sensitivity", "reciprocal"}
            "sensitivity": n_src·K multi-RHS sensitivity solves (δu for each source and basis
            function).  "reciprocal": n_src + n_rec solves (source and receiver Green's
            functions, using A = Aᵀ) and a dense contraction; cheaper when K is large.
        chunk_mb : float
            Memory cap for each block of right-hand sides.

        Returns
        -------
        complex array [n_src·n_rec, K]
        """
        mm, f, tt = self._prepare(m, freq, acq)
        if method not in ("sensitivity", "reciprocal"):
            raise ValueError(f"method: must be 'sensitivity' or 'reciprocal', got {method!r}")
        B = _real_array("basis", basis, "[K, nx, nz]")
        if B.ndim != 3 or B.shape[1:] != (self.nx, self.nz) or B.shape[0] < 1:
            raise ValueError(f"basis: expected shape [K, nx, nz] = [K, {self.nx}, {self.nz}], got {list(B.shape)}")
        if not np.all(np.isfinite(B)):
            raise ValueError("basis: contains NaN or inf")
        K = B.shape[0]
        chunk_mb = check_positive("chunk_mb", chunk_mb)
        fac = self._factor(mm, f)
        U = self._fields(fac, acq)  # [N, ns]
        Pr = self._interp_matrix(acq.receivers)
        ns, nr = acq.n_src, acq.n_rec
        om2 = fac.omega ** 2
        ncol = max(1, int(chunk_mb * 2 ** 20 / (16 * self.N)))
        J = np.empty((ns, nr, K), dtype=np.complex128)
        with blas_threads(self.threads):
            if method == "sensitivity":
                Bext = (fac.w[:, None] * B.reshape(K, -1)[:, self._pad_index_s].T)  # [N, K] = w ⊙ Eφ_k
                pairs = [(s, k) for s in range(ns) for k in range(K)]
                for c0 in range(0, len(pairs), ncol):
                    blk = pairs[c0:c0 + ncol]
                    ss = np.array([s for s, _ in blk])
                    kk = np.array([k for _, k in blk])
                    rhs = -om2 * Bext[:, kk] * U[:, ss]
                    dU = fac.solve(rhs)
                    J[ss, :, kk] = np.asarray((Pr @ dU).T)
            else:
                G = fac.solve(Pr.T.toarray().astype(np.complex128))  # A^{-T} p_r = A^{-1} p_r (A = A^T)
                Phi = B.reshape(K, -1).T  # [nx*nz, K]
                s_blk = max(1, ncol // max(nr, 1))
                for s0 in range(0, ns, s_blk):
                    ss = np.arange(s0, min(ns, s0 + s_blk))
                    H = (fac.w[:, None, None] * U[:, ss][:, :, None] * G[:, None, :])  # [N, s, r]
                    Hr = self._pad_adjoint_matrix @ H.reshape(self.N, -1)  # E^T, column by column
                    J[ss] = (-om2 * (Hr.T @ Phi)).reshape(len(ss), nr, K)
        out = J.reshape(ns * nr, K)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("jacobian: non-finite entries (ill-conditioned system)")
        return self._out(out, tt)

    def torch_forward(self, m: torch.Tensor, freq, acq: Acquisition) -> torch.Tensor:
        """Differentiable data d(m): complex [n_src, n_rec] torch tensor (see :class:`HelmholtzData`)."""
        return HelmholtzData.apply(m, self, freq, acq)


class HelmholtzData(torch.autograd.Function):
    """torch.autograd.Function: m [nx, nz] (real) -> data [n_src, n_rec] (complex128).

    Backward uses the adjoint state with the factorization cached in the forward pass
    (torch's convention: for a real loss L the incoming gradient is 2 ∂L/∂conj(d), and the
    returned gradient is Re Jᴴ g).
    """

    @staticmethod
    def forward(ctx, m, solver: Helmholtz2D, freq, acq):
        mm, f, _ = solver._prepare(m, freq, acq)
        fac = solver._factor(mm, f)
        U = solver._fields(fac, acq)
        d = np.asarray((solver._interp_matrix(acq.receivers) @ U).T)
        ctx.solver, ctx.fac, ctx.U, ctx.acq = solver, fac, U, acq
        ctx.dtype = m.dtype
        return torch.from_numpy(d)

    @staticmethod
    def backward(ctx, grad_out):
        dd = grad_out.detach().cpu().numpy().astype(np.complex128)
        g = ctx.solver._data_and_vjp(ctx.fac, ctx.acq, lambda d_blk, c0, c1: dd[c0:c1], U=ctx.U)[1]
        return torch.from_numpy(g).to(ctx.dtype), None, None, None


def helmholtz_data(m: torch.Tensor, solver: Helmholtz2D, freq, acq: Acquisition) -> torch.Tensor:
    """Functional form of :class:`HelmholtzData`: differentiable complex data [n_src, n_rec]."""
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"m: expected a torch.Tensor, got {type(m).__name__}")
    if not isinstance(solver, Helmholtz2D):
        raise TypeError(f"solver: expected a Helmholtz2D, got {type(solver).__name__}")
    return HelmholtzData.apply(m, solver, freq, acq)

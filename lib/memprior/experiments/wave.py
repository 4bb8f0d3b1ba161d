"""Chapter 6: the Helmholtz solver's verification, data, gradients and a short deterministic FWI.

Every function builds the chapter's problem from its keyword parameters (defaults: the chapter's
settings), runs one experiment with :mod:`memprior.wave` and returns a frozen dataclass of numpy
arrays and numbers.

The chapter's problem
---------------------
An ``n × n`` grid of spacing ``dx`` km (default 64², ``dx = 2/64`` km, so the model is 2 km wide)
with a ``npml``-cell PML, a slow Gaussian lens (1.6 km/s at its centre in a 2 km/s background,
:func:`memprior.velocity.gaussian_lens`), ``n_src`` sources on the top row and ``n_rec`` receivers on
the bottom row (:meth:`memprior.wave.Acquisition.transmission`).  Arrays are ``[nx, nz]`` with x
across and depth z down; squared slowness ``m = 1/v²`` in s²/km², velocity in km/s, frequencies in
Hz.  Noise is circular complex Gaussian with ``E|e|² = σ_d²`` and ``σ_d = noise · max|d|``.

The chapter's computations
--------------------------
solver_properties      complex symmetry, reciprocity, unknowns, points per wavelength, LU fill
verification           error against the analytic Green's function over points per wavelength
gradient_check         adjoint-state gradient against central finite differences on pixels
sensitivity_kernels    real part of one datum's Jacobian row at several frequencies
short_fwi              frequency-continuation L-BFGS-B from a homogeneous start
misfit_test            where a misfit falls in its chi-square distribution under the noise model
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla
from scipy.optimize import minimize
from scipy.special import gammaincc

from .. import velocity
from .._checks import check_int, check_nonneg, check_positive, check_seed
from ..wave import Acquisition, Helmholtz2D, greens_function_error

__all__ = [
    "SolverProperties", "solver_properties", "Verification", "verification", "GradientCheck",
    "gradient_check", "Kernels", "sensitivity_kernels", "FWIResult", "short_fwi", "MisfitTest", "misfit_test",
    "CHAPTER_PIXELS",
]

#: The pixels of the chapter's finite-difference check on the 64² grid: the four corners, two edges
#: (where the adjoint of the PML padding matters), the lens centre and a pixel next to a source.
CHAPTER_PIXELS = ((0, 0), (0, 63), (63, 0), (63, 63), (0, 30), (40, 63), (32, 32), (32, 1))


# --------------------------------------------------------------------------------------- helpers
def _grid_args(n, dx, npml) -> tuple[int, float, int]:
    return check_int("n", n, low=3), check_positive("dx", dx), check_int("npml", npml, low=5)


def _lens(n: int, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """The chapter's true model: velocity [n, n] km/s and squared slowness [n, n] s²/km²."""
    v = velocity.gaussian_lens(n, n, dx).numpy()
    return v, 1.0 / v ** 2


def _problem(n, dx, npml, n_src, n_rec):
    """The chapter's lens problem: (solver, v_true [n, n], m_true [n, n], acquisition), inputs checked."""
    n, dx, npml = _grid_args(n, dx, npml)
    n_src, n_rec = check_int("n_src", n_src, low=1), check_int("n_rec", n_rec, low=1)
    v, m = _lens(n, dx)
    return (Helmholtz2D(n, n, dx, npml=npml, cache_size=4), v, m,
            Acquisition.transmission(n, n, dx, n_src=n_src, n_rec=n_rec))


def _freqs(name: str, values) -> np.ndarray:
    """A non-empty sequence of positive numbers (frequencies in Hz, points per wavelength) as an array."""
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of positive numbers, got {type(values).__name__}") from None
    if len(items) == 0:
        raise ValueError(f"{name}: need at least one value (> 0)")
    return np.asarray([check_positive(f"{name}[{k}]", v) for k, v in enumerate(items)], dtype=float)


def _noisy(d: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``d`` plus circular complex Gaussian noise with σ_d = noise · max|d| (real part drawn first)."""
    sig = noise * float(np.abs(d).max())
    return d + sig / math.sqrt(2) * (rng.standard_normal(d.shape) + 1j * rng.standard_normal(d.shape)), sig


def _seed(seed) -> int:
    return check_seed(seed, "seed")


# ------------------------------------------------------------------------------ solver properties
@dataclass(frozen=True)
class SolverProperties:
    """Properties of the chapter's system matrix ``A(m, 2πf)`` (see :func:`solver_properties`).

    Attributes
    ----------
    unknowns : int
        Nodes including the PML, ``(n + 2·npml)²``.
    ppw : float
        Grid points per wavelength at the slowest velocity of the lens.
    asymmetry : float
        ``max |A − Aᵀ|`` (0: complex symmetric).
    non_hermitian : float
        ``max |A − Aᴴ|`` (> 0 inside the PML).
    d_ab, d_ba : complex
        Datum at ``b`` from a unit source at ``a``, and at ``a`` from a source at ``b``.
    reciprocity : float
        ``|d_ab − d_ba| / |d_ab|``.
    nnz_ordered, nnz_default : int
        Nonzeros of L + U with the solver's minimum-degree ordering and with scipy's default
        ``splu`` (COLAMD ordering, partial pivoting).
    fill_ratio : float
        ``nnz_default / nnz_ordered``.
    freq : float
        Frequency in Hz.
    """

    unknowns: int
    ppw: float
    asymmetry: float
    non_hermitian: float
    d_ab: complex
    d_ba: complex
    reciprocity: float
    nnz_ordered: int
    nnz_default: int
    fill_ratio: float
    freq: float


def solver_properties(*, n: int = 64, dx: float = 2 / 64, npml: int = 10, freq: float = 4.0,
                      a=(0.41, 0.13), b=(1.52, 1.77)) -> SolverProperties:
    """Complex symmetry, reciprocity and LU fill of the chapter's matrix at the lens model.

    Parameters
    ----------
    n, dx, npml : int, float (km), int
        Interior grid ``n × n`` (>= 3), spacing (> 0) and PML thickness in cells (>= 5).
    freq : float
        Frequency in Hz (> 0).
    a, b : (float, float)
        Two points (x, z) in km inside the grid, for the reciprocity check.

    Returns
    -------
    SolverProperties
    """
    n, dx, npml = _grid_args(n, dx, npml)
    freq = check_positive("freq", freq)
    solver = Helmholtz2D(n, n, dx, npml=npml, backend="superlu")  # the fill of SuperLU's LU is what is compared
    _, m = _lens(n, dx)
    A = solver.matrix(m, freq)
    d_ab = complex(solver.forward(m, freq, Acquisition([a], [b]))[0, 0])
    d_ba = complex(solver.forward(m, freq, Acquisition([b], [a]))[0, 0])
    lu = solver.factorize(m, freq).lu
    lu_default = spla.splu(A)  # scipy's defaults: COLAMD ordering, partial pivoting
    nnz_ordered, nnz_default = lu.L.nnz + lu.U.nnz, lu_default.L.nnz + lu_default.U.nnz
    return SolverProperties(
        unknowns=int(solver.N), ppw=float(solver.points_per_wavelength(m, freq)),
        asymmetry=float(abs(A - A.T).max()), non_hermitian=float(abs(A - A.conj().T).max()),
        d_ab=d_ab, d_ba=d_ba, reciprocity=abs(d_ab - d_ba) / abs(d_ab),
        nnz_ordered=int(nnz_ordered), nnz_default=int(nnz_default),
        fill_ratio=nnz_default / nnz_ordered, freq=freq)


# ----------------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class Verification:
    """Relative L2 error against ``(i/4) H₀⁽¹⁾(kr)`` between 1 and 3 wavelengths from the source.

    Attributes
    ----------
    ppw2, err2 : arrays [k2]
        Points per wavelength (integers if given as integers) and relative error of the 5-point stencil (``order=2``).
    ppw4, err4 : arrays [k4]
        The same for the 9-point cross (``order=4``).
    slope2, slope4 : float
        Least-squares slopes of log(error) against log(ppw) (negative: −2 and −4 expected).
    line_ppw : float
        Points per wavelength of the line profile.
    line_r : array [k]
        Distances (km) from the source along the horizontal line through it, r > 0.
    line_u, line_g : complex arrays [k]
        Numerical (5-point) and analytic field along that line.
    paper_ppw : float
        Points per wavelength of the chapter's grid in the lens at 4 Hz.
    paper_err2, paper_err4 : float
        The two stencils' errors at ``paper_ppw``.
    """

    ppw2: np.ndarray
    err2: np.ndarray
    ppw4: np.ndarray
    err4: np.ndarray
    slope2: float
    slope4: float
    line_ppw: float
    line_r: np.ndarray
    line_u: np.ndarray
    line_g: np.ndarray
    paper_ppw: float
    paper_err2: float
    paper_err4: float

    def error(self, order: int, ppw: float) -> float:
        """The sweep's error of stencil ``order`` (2 or 4) at one of its ``ppw`` values."""
        pp, ee = (self.ppw2, self.err2) if order == 2 else (self.ppw4, self.err4) if order == 4 else (None, None)
        if pp is None:
            raise ValueError(f"order: must be 2 or 4, got {order!r}")
        hit = np.flatnonzero(np.isclose(pp, ppw))
        if hit.size == 0:
            raise ValueError(f"ppw: {ppw!r} is not in the order-{order} sweep {pp.tolist()}")
        return float(ee[hit[0]])


def _sweep(name: str, ppw) -> np.ndarray:
    p = _freqs(name, ppw)
    if np.any(p < 4):
        raise ValueError(f"{name}: points per wavelength must be >= 4, got {p.tolist()}")
    if len(p) < 2:
        raise ValueError(f"{name}: need at least two points per wavelength values to fit a slope")
    given = np.asarray(list(ppw))
    return given if given.dtype.kind in "iu" else p  # integers stay integers (for tables)


def verification(*, ppw2=(6, 8, 10, 16, 24, 32), ppw4=(5, 6, 8, 10, 12), line_ppw: float = 10.0,
                 paper_ppw: float | None = None, n: int = 64, dx: float = 2 / 64,
                 freq: float = 4.0) -> Verification:
    """Sweep :func:`memprior.wave.greens_function_error` over points per wavelength.

    Each error is that of a unit point source at the centre of a homogeneous 2 km/s medium with
    ``dx = 10`` m and a one-wavelength PML.

    Parameters
    ----------
    ppw2, ppw4 : sequences of float >= 4 (at least two each)
        Points per wavelength of the 5-point stencil and of the 9-point cross.
    line_ppw : float >= 4
        Points per wavelength of the line profile (5-point stencil).
    paper_ppw : float >= 4, optional
        Points per wavelength at which to quote both stencils; default: the chapter's lens on the
        ``n × n`` grid of spacing ``dx`` at ``freq`` Hz (12.8 for the defaults).
    n, dx, freq : int, float (km), float (Hz)
        The grid and frequency that set the default ``paper_ppw``.

    Returns
    -------
    Verification
    """
    p2 = _sweep("ppw2", ppw2)
    p4 = _sweep("ppw4", ppw4)
    line_ppw = check_positive("line_ppw", line_ppw)
    if paper_ppw is None:
        n, dx, _ = _grid_args(n, dx, 10)
        _, m = _lens(n, dx)
        paper_ppw = Helmholtz2D(n, n, dx).points_per_wavelength(m, check_positive("freq", freq))
    paper_ppw = check_positive("paper_ppw", paper_ppw)
    for name, p in (("line_ppw", line_ppw), ("paper_ppw", paper_ppw)):
        if p < 4:
            raise ValueError(f"{name}: points per wavelength must be >= 4, got {p}")
    _, (r, u, g) = greens_function_error(line_ppw, order=2, return_line=True)
    e2 = np.array([greens_function_error(p, order=2) for p in p2])
    e4 = np.array([greens_function_error(p, order=4) for p in p4])
    return Verification(
        ppw2=p2, err2=e2, ppw4=p4, err4=e4,
        slope2=float(np.polyfit(np.log(p2), np.log(e2), 1)[0]),
        slope4=float(np.polyfit(np.log(p4), np.log(e4), 1)[0]),
        line_ppw=line_ppw, line_r=r, line_u=u, line_g=g, paper_ppw=float(paper_ppw),
        paper_err2=greens_function_error(paper_ppw, order=2),
        paper_err4=greens_function_error(paper_ppw, order=4))


# --------------------------------------------------------------------------------- gradient check
@dataclass(frozen=True)
class GradientCheck:
    """The adjoint-state gradient at the homogeneous start against central finite differences.

    Attributes
    ----------
    m0 : array [n, n]
        Starting model (s²/km²), homogeneous 2 km/s.
    d_obs : complex array [n_src, n_rec]
        Noisy data of the lens at ``freq``.
    sigma_d : float
        Noise standard deviation per complex datum (``E|e|² = σ_d²``).
    misfit : float
        ``Φ(m0) = Σ|d(m0) − d_obs|² / σ_d²``.
    grad : array [n, n]
        ``∇_m Φ(m0)`` in (s²/km²)⁻¹.
    pixels : int array [k, 2]
        Checked pixels (i, j).
    adjoint, finite_difference : arrays [k]
        The gradient at those pixels, and ``(Φ(m0 + h e_ij) − Φ(m0 − h e_ij)) / 2h``.
    rel_error : array [k]
        ``|finite_difference − adjoint| / |adjoint|``.
    max_rel_error : float
    step : float
        ``h`` in s²/km².
    freq : float
        Frequency in Hz.
    """

    m0: np.ndarray
    d_obs: np.ndarray
    sigma_d: float
    misfit: float
    grad: np.ndarray
    pixels: np.ndarray
    adjoint: np.ndarray
    finite_difference: np.ndarray
    rel_error: np.ndarray
    max_rel_error: float
    step: float
    freq: float


def gradient_check(*, n: int = 64, dx: float = 2 / 64, npml: int = 10, n_src: int = 5, n_rec: int = 40,
                   freq: float = 4.0, noise: float = 0.01, seed: int = 1, pixels=CHAPTER_PIXELS,
                   step: float = 0.25e-5) -> GradientCheck:
    """Check :meth:`memprior.wave.Helmholtz2D.misfit_gradient` against central differences.

    The data are those of the lens with ``noise`` relative complex noise (seeded), the model the
    homogeneous 2 km/s start ``m0 = 0.25`` s²/km².

    Parameters
    ----------
    n, dx, npml : int, float (km), int
        Grid, spacing and PML cells.
    n_src, n_rec : int >= 1
        Sources on the top row and receivers on the bottom row.
    freq : float
        Frequency in Hz.
    noise : float >= 0
        σ_d as a fraction of ``max |d|``; must be > 0 (the misfit divides by σ_d²).
    seed : int >= 0
        Seed of the noise.
    pixels : sequence of (i, j)
        Pixels to check, 0 <= i, j < n.
    step : float > 0
        Finite-difference step ``h`` in s²/km².

    Returns
    -------
    GradientCheck
    """
    seed = check_seed(seed, "seed")
    solver, _, m_true, acq = _problem(n, dx, npml, n_src, n_rec)
    n = solver.nx
    freq, noise = check_positive("freq", freq), check_positive("noise", noise)
    step = check_positive("step", step)
    px = np.asarray(pixels)
    if px.ndim != 2 or px.shape[1] != 2 or px.shape[0] < 1 or px.dtype.kind not in "iu":
        raise ValueError(f"pixels: expected integer pairs (i, j) of shape [k, 2], got {px.tolist()!r}")
    if px.min() < 0 or px.max() >= n:
        raise ValueError(f"pixels: indices must be in [0, {n - 1}] for n = {n}, got {px.tolist()}")
    rng = np.random.default_rng(_seed(seed))
    d_obs, sigma_d = _noisy(solver.forward(m_true, freq, acq), noise, rng)
    m0 = np.full((n, n), 0.25)
    phi0, grad0, _ = solver.misfit_gradient(m0, freq, acq, d_obs, sigma_d)
    fd = np.empty(len(px))
    for k, (i, j) in enumerate(px):
        mp, mn = m0.copy(), m0.copy()
        mp[i, j] += step
        mn[i, j] -= step
        fd[k] = (solver.misfit_gradient(mp, freq, acq, d_obs, sigma_d)[0]
                 - solver.misfit_gradient(mn, freq, acq, d_obs, sigma_d)[0]) / (2 * step)
    adj = grad0[px[:, 0], px[:, 1]]
    rel = np.abs(fd - adj) / np.abs(adj)
    return GradientCheck(m0=m0, d_obs=d_obs, sigma_d=sigma_d, misfit=float(phi0), grad=grad0, pixels=px.copy(),
                         adjoint=adj, finite_difference=fd, rel_error=rel, max_rel_error=float(rel.max()),
                         step=step, freq=freq)


# --------------------------------------------------------------------------- sensitivity kernels
@dataclass(frozen=True)
class Kernels:
    """Sensitivity kernels of one datum in the homogeneous 2 km/s model.

    Attributes
    ----------
    freqs : array [k]
        Frequencies in Hz.
    kernels : array [k, n, n]
        ``Re ∂d/∂m(x)`` for the source at ``source`` and the receiver at ``receiver``.
    source, receiver : arrays [1, 2]
        Positions (x, z) in km: top centre and bottom centre.
    half_width : float
        Half-width (km) of the strip around the straight path used by ``central_fraction``.
    central_fraction : array [k]
        Share of the squared kernel along the mid-depth row that lies within ``half_width`` of the path.
    """

    freqs: np.ndarray
    kernels: np.ndarray
    source: np.ndarray
    receiver: np.ndarray
    half_width: float
    central_fraction: np.ndarray


def sensitivity_kernels(*, n: int = 64, dx: float = 2 / 64, npml: int = 10, freqs=(2.0, 4.0, 6.0),
                        source_x: float = 1.0, half_width: float = 0.25) -> Kernels:
    """Real part of the Jacobian row of one datum, ``solver.vjp(m0, f, one, 1)``, at each frequency.

    Parameters
    ----------
    n, dx, npml : int, float (km), int
        Grid, spacing and PML cells.
    freqs : sequence of float > 0
        Frequencies in Hz.
    source_x : float
        x (km) of the source (top row) and of the receiver (bottom row), inside the grid.
    half_width : float > 0
        Half-width (km) of the central strip for ``central_fraction``.

    Returns
    -------
    Kernels
    """
    n, dx, npml = _grid_args(n, dx, npml)
    fs = _freqs("freqs", freqs)
    source_x = check_nonneg("source_x", source_x)
    half_width = check_positive("half_width", half_width)
    solver = Helmholtz2D(n, n, dx, npml=npml)
    one = Acquisition([[source_x, 0.0]], [[source_x, (n - 1) * dx]])
    m0 = np.full((n, n), 0.25)
    K = np.stack([solver.vjp(m0, f, one, np.ones((1, 1))) for f in fs])
    rows = K[:, :, n // 2]
    near = np.abs(solver.x - source_x) <= half_width
    frac = (rows[:, near] ** 2).sum(axis=1) / (rows ** 2).sum(axis=1)
    return Kernels(freqs=fs, kernels=K, source=one.sources.copy(), receiver=one.receivers.copy(),
                   half_width=half_width, central_fraction=frac)


# ------------------------------------------------------------------------------------ short FWI
@dataclass(frozen=True)
class FWIResult:
    """A frequency-continuation L-BFGS-B inversion of the lens data (see :func:`short_fwi`).

    Attributes
    ----------
    freqs : array [s]
        Frequencies in Hz; stage k inverts ``freqs[:k + 1]`` together.
    d_obs : complex array [s, n_src, n_rec]
        Noisy data per frequency.
    sigma_d : array [s]
        Noise standard deviation per frequency.
    v_true, v_start, v_inv : arrays [n, n]
        True, starting and inverted velocity (km/s).
    history : array [nfev]
        Misfit (sum over the stage's frequencies) at every objective evaluation, line-search
        trials included.
    stage_end : int array [s]
        ``history[stage_end[k - 1]:stage_end[k]]`` are the evaluations of stage k.
    misfit : float
        Final misfit of the last stage (all frequencies).
    misfit_true : float
        Misfit of the true model against the same noisy data, ``Σ|e|²/σ_d²`` (the noise alone).
    expected : int
        ``E Σ|e|²/σ_d²`` at the true model: the number of complex data, ``s · n_src · n_rec``
        (:func:`misfit_test` gives the whole distribution).
    rel_error : float
        ``‖m_inv − m_true‖ / ‖m_true − m_start‖`` (1 at the start).
    v_min : float
        Slowest recovered velocity (km/s).
    nfev : int
        Objective (misfit and gradient) evaluations.
    seconds : float
        Wall-clock time of the optimization (s); the only field that is not reproducible.
    """

    freqs: np.ndarray
    d_obs: np.ndarray
    sigma_d: np.ndarray
    v_true: np.ndarray
    v_start: np.ndarray
    v_inv: np.ndarray
    history: np.ndarray
    stage_end: np.ndarray
    misfit: float
    misfit_true: float
    expected: int
    rel_error: float
    v_min: float
    nfev: int
    seconds: float

    def stages(self) -> list:
        """The misfit history of each stage: a list of ``s`` arrays, stage k first evaluated at ``freqs[:k + 1]``."""
        starts = np.concatenate([[0], self.stage_end[:-1]])
        return [self.history[a:b] for a, b in zip(starts, self.stage_end)]


def short_fwi(*, n: int = 64, dx: float = 2 / 64, npml: int = 10, n_src: int = 5, n_rec: int = 40,
              freqs=(2.0, 3.0, 4.0), maxiter: int = 10, noise: float = 0.01, seed: int = 2,
              v_start: float = 2.0, v_bounds=(1.4, 3.0)) -> FWIResult:
    """Deterministic FWI of the lens: L-BFGS-B with frequency continuation.

    Stage k minimizes ``Σ_{f ≤ freqs[k]} Σ|d_f(m) − d_obs,f|² / σ_f²`` over the pixels of ``m`` for at
    most ``maxiter`` iterations, starting where stage k − 1 stopped.  The unknowns are
    ``m / m_start − 1`` (order one) with box bounds from ``v_bounds``.  The same solver makes and
    inverts the data (an "inverse crime").

    Parameters
    ----------
    n, dx, npml : int, float (km), int
        Grid, spacing and PML cells.
    n_src, n_rec : int >= 1
        Sources on the top row and receivers on the bottom row.
    freqs : sequence of float > 0
        Frequencies in Hz, low to high.
    maxiter : int >= 1
        L-BFGS-B iterations per stage.
    noise : float > 0
        σ_d as a fraction of ``max |d|`` at each frequency.
    seed : int >= 0
        Seed of the noise (drawn frequency by frequency, real then imaginary part).
    v_start : float > 0
        Homogeneous starting velocity (km/s).
    v_bounds : (float, float)
        Lowest and highest velocity (km/s) allowed, 0 < low < v_start < high.

    Returns
    -------
    FWIResult
    """
    seed = check_seed(seed, "seed")
    solver, v_true, m_true, acq = _problem(n, dx, npml, n_src, n_rec)
    n = solver.nx
    fs = _freqs("freqs", freqs)
    maxiter = check_int("maxiter", maxiter, low=1)
    noise, v_start = check_positive("noise", noise), check_positive("v_start", v_start)
    if len(v_bounds) != 2:
        raise ValueError(f"v_bounds: expected (low, high) in km/s, got {v_bounds!r}")
    vlo, vhi = check_positive("v_bounds[0]", v_bounds[0]), check_positive("v_bounds[1]", v_bounds[1])
    if not vlo < v_start < vhi:
        raise ValueError(f"v_bounds: need low < v_start < high, got {v_bounds!r} with v_start = {v_start}")
    rng = np.random.default_rng(_seed(seed))
    clean = [solver.forward(m_true, f, acq) for f in fs]
    obs, sig = zip(*[_noisy(d, noise, rng) for d in clean])
    misfit_true = float(sum(np.sum(np.abs(d - c) ** 2) / s ** 2 for d, c, s in zip(obs, clean, sig)))
    m_start = 1.0 / v_start ** 2
    history: list[float] = []

    def objective(xvec, k):  # x = m / m_start - 1 keeps the unknowns of order one
        m = m_start * (1 + xvec.reshape(n, n))
        total, grad = 0.0, np.zeros((n, n))
        for f, d, s in zip(fs[:k + 1], obs[:k + 1], sig[:k + 1]):
            phi, g, _ = solver.misfit_gradient(m, f, acq, d, s)
            total, grad = total + phi, grad + g
        history.append(total)
        return total, m_start * grad.ravel()

    t0 = time.perf_counter()
    xvec = np.zeros(n * n)
    bounds = [(1 / vhi ** 2 / m_start - 1, 1 / vlo ** 2 / m_start - 1)] * (n * n)
    stage_end = []
    for k in range(len(fs)):
        res = minimize(objective, xvec, args=(k,), jac=True, method="L-BFGS-B", bounds=bounds,
                       options=dict(maxiter=maxiter))
        xvec = res.x
        stage_end.append(len(history))
    seconds = time.perf_counter() - t0
    m_inv = m_start * (1 + xvec.reshape(n, n))
    m0 = np.full((n, n), m_start)
    v_inv = 1 / np.sqrt(m_inv)
    return FWIResult(
        freqs=fs, d_obs=np.stack(obs), sigma_d=np.asarray(sig), v_true=v_true, v_start=1 / np.sqrt(m0),
        v_inv=v_inv, history=np.asarray(history), stage_end=np.asarray(stage_end),
        misfit=float(res.fun), misfit_true=misfit_true, expected=int(len(fs) * n_src * n_rec),
        rel_error=float(np.linalg.norm(m_inv - m_true) / np.linalg.norm(m_true - m0)),
        v_min=float(v_inv.min()), nfev=len(history), seconds=seconds)


# ------------------------------------------------------------------------ the misfit's distribution
@dataclass(frozen=True)
class MisfitTest:
    """Where a misfit ``Φ = Σ|r|²/σ_d²`` falls in its distribution under the noise model (see :func:`misfit_test`).

    At the true model ``r = e``, circular complex Gaussian noise with ``E|e|² = σ_d²``: each ``|e_k|²/σ_d²``
    is exponential with mean 1 (a χ² with 2 degrees of freedom, halved), so ``2Φ ~ χ²`` with ``2n`` degrees of
    freedom for ``n`` complex data, and ``Φ`` has mean ``n`` and standard deviation ``√n``.

    Attributes
    ----------
    misfit : float
        The misfit tested (dimensionless).
    n_data : int
        Complex data ``n``.
    dof : int
        Degrees of freedom of ``2Φ``: ``2n`` (a real and an imaginary part per datum).
    mean, std : float
        Mean ``n`` and standard deviation ``√n`` of ``Φ`` at the true model.
    z : float
        ``(misfit − n) / √n``.
    p_value : float
        Upper tail ``P(Φ ≥ misfit)`` under the noise model, in [0, 1]: small when the misfit is too large
        to be noise alone.
    """

    misfit: float
    n_data: int
    dof: int
    mean: float
    std: float
    z: float
    p_value: float


def misfit_test(misfit: float, n_data: int) -> MisfitTest:
    """Compare a misfit ``Σ|r|²/σ_d²`` of ``n_data`` complex data with its distribution at the true model.

    ``Φ`` is a sum of ``n`` independent unit exponentials, i.e. Gamma(``n``, 1), so the upper tail is the
    regularized incomplete gamma function ``Q(n, Φ)`` (equal to the χ² survival function of ``2Φ`` with
    ``2n`` degrees of freedom).

    Parameters
    ----------
    misfit : float
        ``Σ|r|²/σ_d²`` (no factor ½), >= 0.
    n_data : int
        Number of complex data, >= 1.

    Returns
    -------
    MisfitTest
    """
    misfit = check_nonneg("misfit", misfit)
    n = check_int("n_data", n_data, low=1)
    return MisfitTest(misfit=misfit, n_data=n, dof=2 * n, mean=float(n), std=math.sqrt(n),
                      z=(misfit - n) / math.sqrt(n), p_value=float(gammaincc(n, misfit)))

"""Chapter 3, "A stylized inverse problem": exact, linearized and lookup posteriors of the paper's problems.

The numerics (quadrature, linearized mixtures, lookup weights, ``sigma_crit``) live in
:mod:`memprior.posterior`; this module runs the chapter's experiments with them and returns frozen
dataclasses of numpy arrays and floats. Defaults are the chapter's settings: the 1-D cubic problem
``F(x) = x + 0.3 x^3`` with training points ``{-1.5, -0.4, 0.4, 1.2, 2.5}``, ``y = 0``, ``gamma = 0.3``,
and the 2-D pentagon problem of :func:`memprior.posterior.stylized_2d`. Everything here is
deterministic (quadrature and closed forms), so no function takes a seed.

Functions
---------
:func:`panel_1d`, :func:`panels_over_sigma`, :func:`panels_over_datum`
    Densities and weights of the 1-D problem at one bandwidth, over bandwidths, over data.
:func:`logdet_factor`, :func:`linearization_identities`
    The missing log-determinant's effect, and numerical checks of the corollary and the lemma.
:func:`linearization_errors`, :func:`error_curves`
    Distance of both linearized mixtures to the exact posterior over sigma.
:func:`small_sigma_rates`
    The sigma^2 laws of both linearized weights' errors as sigma -> 0 (a second-order expansion).
:func:`lookup_limit`
    Exact weights against sigma and their gap to the lookup weights.
:func:`panel_2d`, :func:`pentagon`
    The 2-D pentagon on a display grid.
:func:`stylized_sweep`, :func:`effective_components_curve`, :func:`components_sweep`
    exp(H) and mode counts over sigma for evenly spaced training sets (or the paper's index subsets of a
    100-point pool), with ``sigma_crit``.
:func:`count_modes`, :func:`plateau_estimate`, :func:`plateau`
    Mode counting, and the continuum prediction of the small-sigma plateau of exp(H).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import posterior
from .._checks import apply_forward, as_data, as_tensor, check_forward, check_int, check_positive
from ..mixture import GaussianMixturePrior

__all__ = [
    "Panel1D", "Panels1D", "panel_1d", "panels_over_sigma", "panels_over_datum",
    "LogdetFactor", "logdet_factor", "LinearizationIdentities", "linearization_identities",
    "LinearizationErrors", "linearization_errors", "ErrorCurves", "error_curves", "SmallSigmaRates",
    "small_sigma_rates",
    "LookupLimit", "lookup_limit",
    "Panel2D", "Pentagon", "panel_2d", "pentagon",
    "stylized_sweep", "ComponentsCurve", "effective_components_curve", "ComponentsSweep", "components_sweep",
    "count_modes", "plateau_estimate", "Plateau", "plateau",
]

_D64 = torch.float64


# ----------------------------------------------------------------------------- helpers
def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64) if isinstance(t, torch.Tensor) else np.asarray(t, np.float64)


def _sigmas(name: str, values) -> np.ndarray:
    s = as_tensor(name, values).reshape(-1)
    if s.numel() == 0:
        raise ValueError(f"{name}: need at least one bandwidth (each a finite number in (0, inf))")
    return np.asarray([check_positive(name, float(v)) for v in s])


def _problem(problem, d: int, what: str) -> posterior.Problem:
    if not isinstance(problem, posterior.Problem):
        raise TypeError(f"problem: expected a memprior.posterior.Problem, got {type(problem).__name__}")
    if problem.x_train.shape[1] != d:
        raise ValueError(f"problem: {what} needs a {d}-D problem (d = {d}), got d = {problem.x_train.shape[1]}")
    return problem


# ----------------------------------------------------------------------------- 1-D panels
@dataclass(frozen=True)
class Panel1D:
    """Everything one 1-D panel shows at one bandwidth (see :func:`panel_1d`).

    Attributes
    ----------
    x : ndarray [G]
        Grid nodes (dimensionless model units).
    prior, likelihood, exact, lin, lin0 : ndarray [G]
        Densities per unit x: the prior ``p_sigma``, the likelihood normalized in x, the exact posterior,
        the linearized mixture with (``lin``) and without (``lin0``) the log-determinant.
    w_exact, w_lin, w_lin0, w_lookup : ndarray [N]
        Component weights: exact (quadrature), linearized with / without log-det, lookup.
    x_train : ndarray [N]
    exp_h : float
        Effective components of the exact weights.
    tv_lin, tv_lin0 : float
        Total-variation distance of each linearized mixture to the exact posterior, in [0, 1].
    modes : int
        Local maxima of the exact posterior density (:func:`count_modes`).
    sigma, gamma : float
    y : ndarray [m]
    """

    x: np.ndarray
    prior: np.ndarray
    likelihood: np.ndarray
    exact: np.ndarray
    lin: np.ndarray
    lin0: np.ndarray
    w_exact: np.ndarray
    w_lin: np.ndarray
    w_lin0: np.ndarray
    w_lookup: np.ndarray
    x_train: np.ndarray
    exp_h: float
    tv_lin: float
    tv_lin0: float
    modes: int
    sigma: float
    gamma: float
    y: np.ndarray


def panel_1d(problem: posterior.Problem, sigma: float) -> Panel1D:
    """Densities and weights of a 1-D problem at bandwidth ``sigma`` (what the live app redraws per move).

    Parameters
    ----------
    problem : memprior.posterior.Problem
        A 1-D problem (``x_train`` of shape [N, 1]); quadrature on ``problem.grid`` [G].
    sigma : float
        Prior bandwidth, > 0.

    Returns
    -------
    Panel1D
    """
    sigma = check_positive("sigma", sigma, square=True)
    _problem(problem, 1, "panel_1d")
    F, x, y = problem.args()
    g, gamma = problem.grid, problem.gamma
    vol = posterior.cell_volumes(g)
    prior = GaussianMixturePrior(x, sigma).log_prob(g[:, None]).exp()
    loglik = -((y[None, :] - F(g[:, None])) ** 2).sum(1) / (2 * gamma ** 2)
    lik = (loglik - (loglik + vol.log()).logsumexp(0)).exp()
    exact = posterior.grid_posterior(F, x, y, sigma, gamma, g)
    lm = posterior.linearized_mixture(F, x, y, sigma, gamma, logdet=True)
    lm0 = posterior.linearized_mixture(F, x, y, sigma, gamma, logdet=False)
    lin, lin0 = posterior.grid_density(lm, g), posterior.grid_density(lm0, g)
    w = posterior.component_weights(F, x, y, sigma, gamma, g)
    return Panel1D(
        x=_np(g), prior=_np(prior), likelihood=_np(lik), exact=_np(exact), lin=_np(lin), lin0=_np(lin0),
        w_exact=_np(w), w_lin=_np(lm.weights), w_lin0=_np(lm0.weights),
        w_lookup=_np(posterior.lookup_weights(F, x, y, gamma)), x_train=_np(x[:, 0]),
        exp_h=posterior.effective_components(w), tv_lin=posterior.total_variation(exact, lin, g),
        tv_lin0=posterior.total_variation(exact, lin0, g), modes=count_modes(exact),
        sigma=sigma, gamma=float(gamma), y=_np(y),
    )


@dataclass(frozen=True)
class Panels1D:
    """A sequence of :class:`Panel1D` over one swept parameter, with the weights and distances stacked.

    Attributes
    ----------
    values : ndarray [K]
        The swept parameter (sigma for :func:`panels_over_sigma`, y for :func:`panels_over_datum`).
    panels : tuple of Panel1D, length K
    w_exact, w_lin, w_lin0 : ndarray [K, N]
    tv_lin, tv_lin0, exp_h : ndarray [K]
    modes : ndarray [K] of int
    mass_near_zero : ndarray [K]
        Exact posterior mass within ``|x| < 0.1`` (around the true model x = 0 of y = 0): the density
        times the grid spacing, summed over those nodes.
    """

    values: np.ndarray
    panels: tuple
    w_exact: np.ndarray
    w_lin: np.ndarray
    w_lin0: np.ndarray
    tv_lin: np.ndarray
    tv_lin0: np.ndarray
    exp_h: np.ndarray
    modes: np.ndarray
    mass_near_zero: np.ndarray


def _stack(values, panels) -> Panels1D:
    def near_zero(p):
        return float((p.exact[np.abs(p.x) < 0.1] * (p.x[1] - p.x[0])).sum())

    return Panels1D(
        values=np.asarray(values, dtype=float), panels=tuple(panels),
        w_exact=np.stack([p.w_exact for p in panels]), w_lin=np.stack([p.w_lin for p in panels]),
        w_lin0=np.stack([p.w_lin0 for p in panels]), tv_lin=np.array([p.tv_lin for p in panels]),
        tv_lin0=np.array([p.tv_lin0 for p in panels]), exp_h=np.array([p.exp_h for p in panels]),
        modes=np.array([p.modes for p in panels], dtype=int), mass_near_zero=np.array([near_zero(p) for p in panels]),
    )


def panels_over_sigma(sigmas=(0.5, 0.3, 0.05), *, y: float = 0.0, gamma: float = 0.3, n_grid: int = 500) -> Panels1D:
    """The paper's 1-D problem (:func:`memprior.posterior.stylized_1d`) at several bandwidths.

    Parameters
    ----------
    sigmas : sequence of float, length K
        Bandwidths, each > 0 (default: the paper's panels 0.5, 0.3, 0.05).
    y : float
        The datum.
    gamma : float
        Noise standard deviation, > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5], >= 3.

    Returns
    -------
    Panels1D
        ``values`` are the bandwidths, in the order given.
    """
    sig = _sigmas("sigmas", sigmas)
    pr = posterior.stylized_1d(y=y, gamma=gamma, n_grid=n_grid)
    return _stack(sig, [panel_1d(pr, float(s)) for s in sig])


def panels_over_datum(ys=tuple(np.round(np.linspace(-2.0, 2.0, 11), 2)), *, sigma: float = 0.3, gamma: float = 0.3,
                      n_grid: int = 500) -> Panels1D:
    """The paper's 1-D problem at one bandwidth for several data ``y``.

    Parameters
    ----------
    ys : sequence of float, length K
        Data (finite); default 11 values from -2 to 2.
    sigma, gamma : float
        Bandwidth and noise level, > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5].

    Returns
    -------
    Panels1D
        ``values`` are the data ``y``.
    """
    sigma = check_positive("sigma", sigma, square=True)
    yv = _np(as_tensor("ys", ys).reshape(-1))
    if yv.size == 0:
        raise ValueError("ys: need at least one datum (finite real numbers)")
    return _stack(yv, [panel_1d(posterior.stylized_1d(y=float(v), gamma=gamma, n_grid=n_grid), sigma) for v in yv])


# ----------------------------------------------------------------------------- the log-determinant
@dataclass(frozen=True)
class LogdetFactor:
    """How much dropping ``det(C_n)^(-1/2)`` shifts the weight of a steep component (see :func:`logdet_factor`).

    Attributes
    ----------
    x_train : ndarray [N]
    slopes : ndarray [N]
        ``|F'(x_n)|``.
    factor : float
        ``exp((log det C_steep - log det C_flat) / 2)``: the exact inflation of ``w_steep / w_flat``.
    ratio_change : float
        ``(w_steep / w_flat)`` without the log-det divided by the same ratio with it (equals ``factor``).
    sigma : float
    """

    x_train: np.ndarray
    slopes: np.ndarray
    factor: float
    ratio_change: float
    sigma: float


def logdet_factor(*, sigma: float = 0.5, steep: int = 3, flat: int = 2, y: float = 0.0,
                  gamma: float = 0.3) -> LogdetFactor:
    """The missing log-determinant's effect on the paper's 1-D problem at bandwidth ``sigma``.

    Parameters
    ----------
    sigma : float
        Bandwidth, > 0.
    steep, flat : int
        Indices of the two training points compared (default x = 1.2 and x = 0.4), in [0, 4].
    y : float
    gamma : float
        > 0.

    Returns
    -------
    LogdetFactor
    """
    sigma = check_positive("sigma", sigma, square=True)
    steep = check_int("steep", steep, low=0, high=4)
    flat = check_int("flat", flat, low=0, high=4)
    pr = posterior.stylized_1d(y=y, gamma=gamma)
    lm = posterior.linearized_mixture(*pr.args(), sigma, pr.gamma)
    lm0 = posterior.linearized_mixture(*pr.args(), sigma, pr.gamma, logdet=False)
    factor = math.exp(0.5 * float(lm.logdet_data_cov[steep] - lm.logdet_data_cov[flat]))
    ratio = float((lm0.weights[steep] / lm0.weights[flat]) / (lm.weights[steep] / lm.weights[flat]))
    return LogdetFactor(x_train=_np(pr.x_train[:, 0]), slopes=_np(lm.jacobians[:, 0, 0].abs()), factor=factor,
                        ratio_change=ratio, sigma=sigma)


@dataclass(frozen=True)
class LinearizationIdentities:
    """Numerical checks of the chapter's corollary and lemma (see :func:`linearization_identities`).

    Attributes
    ----------
    corollary_err : float
        ``max |w^lin - w^exact|`` for a linear F, over the bandwidths and both weightings (with and
        without the log-determinant); exact weights by quadrature.
    logdet_err : float
        Largest relative error of ``log det C_n`` by the determinant lemma against ``slogdet(C_n)``.
    library_logdet_err : float
        Same for the library's ``LinearizedMixture.logdet_data_cov``.
    quad_err : float
        Largest relative error of the library's ``r_n^T C_n^-1 r_n`` (Woodbury) against a direct solve.
    """

    corollary_err: float
    logdet_err: float
    library_logdet_err: float
    quad_err: float


def linearization_identities(*, sigmas=(0.5, 0.3, 0.05), sigma: float = 0.5,
                             gamma: float = 0.3) -> LinearizationIdentities:
    """Check the corollary (linear F: the linearized mixture is exact) and the determinant lemma / Woodbury.

    The corollary uses ``F(x) = 1.7 x - 0.4`` on the paper's 1-D training set, quadrature on 6001
    nodes over [-6, 6]. The lemma uses the pentagon map (d = m = 2) and a map with m = 1 < d = 2,
    ``F(x) = x_1^2 + sin x_2``, at bandwidth ``sigma``.

    Parameters
    ----------
    sigmas : sequence of float
        Bandwidths of the corollary check, each > 0.
    sigma, gamma : float
        Bandwidth and noise level of the lemma check, > 0.

    Returns
    -------
    LinearizationIdentities
    """
    sig = _sigmas("sigmas", sigmas)
    sigma = check_positive("sigma", sigma, square=True)
    gamma = check_positive("gamma", gamma, square=True)
    pr1 = posterior.stylized_1d(gamma=gamma)
    grid = torch.linspace(-6, 6, 6001, dtype=_D64)

    def f_lin(x):
        return 1.7 * x - 0.4

    cor = 0.0
    for s in sig:
        w_q = posterior.component_weights(f_lin, pr1.x_train, pr1.y, float(s), gamma, grid)
        for ld in (True, False):
            lm = posterior.linearized_mixture(f_lin, pr1.x_train, pr1.y, float(s), gamma, logdet=ld)
            cor = max(cor, float((lm.weights - w_q).abs().max()))
    pr2 = posterior.stylized_2d(gamma=gamma)
    errs = [0.0, 0.0, 0.0]
    def f_thin(x):  # m = 1 < d = 2
        return x[:, :1] ** 2 + torch.sin(x[:, 1:])

    for F, y in ((pr2.forward, pr2.y), (f_thin, torch.tensor([0.3], dtype=_D64))):
        lm = posterior.linearized_mixture(F, pr2.x_train, y, sigma, gamma)
        J = lm.jacobians
        m, d = J.shape[1], J.shape[2]
        C = gamma ** 2 * torch.eye(m, dtype=_D64) + sigma ** 2 * J @ J.mT
        direct = torch.linalg.slogdet(C).logabsdet
        lemma = 2 * m * math.log(gamma) + 2 * d * math.log(sigma) - torch.linalg.slogdet(lm.covs).logabsdet
        r = y - F(pr2.x_train)
        quad = (r[:, None, :] @ torch.linalg.solve(C, r[..., None]))[:, 0, 0]
        for k, (a, b) in enumerate(((lemma, direct), (lm.logdet_data_cov, direct), (lm.data_quad, quad))):
            errs[k] = max(errs[k], float(((a - b).abs() / b.abs()).max()))
    return LinearizationIdentities(corollary_err=cor, logdet_err=errs[0], library_logdet_err=errs[1], quad_err=errs[2])


# ----------------------------------------------------------------------------- linearization errors
@dataclass(frozen=True)
class LinearizationErrors:
    """Distance of both linearized mixtures to the exact posterior over sigma (see :func:`linearization_errors`).

    Attributes
    ----------
    sigma : ndarray [S]
    tv, tv_no_logdet : ndarray [S]
        Total variation between the exact posterior and the linearized mixture with / without the
        log-determinant, on the problem's grid, in [0, 1].
    weight_l1, weight_l1_no_logdet : ndarray [S]
        ``sum_n |w_n^lin - w_n^exact|``, in [0, 2].
    """

    sigma: np.ndarray
    tv: np.ndarray
    tv_no_logdet: np.ndarray
    weight_l1: np.ndarray
    weight_l1_no_logdet: np.ndarray


def linearization_errors(problem: posterior.Problem, sigmas) -> LinearizationErrors:
    """How far each linearized mixture is from the exact posterior, over sigma.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        1-D or 2-D (quadrature on its grid).
    sigmas : sequence of float, length S
        Bandwidths, each > 0.

    Returns
    -------
    LinearizationErrors
    """
    if not isinstance(problem, posterior.Problem):
        raise TypeError(f"problem: expected a memprior.posterior.Problem, got {type(problem).__name__}")
    sig = _sigmas("sigmas", sigmas)
    F, x, y = problem.args()
    out = {k: [] for k in ("tv", "tv_no_logdet", "weight_l1", "weight_l1_no_logdet")}
    for s in sig:
        exact = posterior.grid_posterior(F, x, y, float(s), problem.gamma, problem.grid)
        w = posterior.component_weights(F, x, y, float(s), problem.gamma, problem.grid)
        for suffix, ld in (("", True), ("_no_logdet", False)):
            lm = posterior.linearized_mixture(F, x, y, float(s), problem.gamma, logdet=ld)
            out["tv" + suffix].append(
                posterior.total_variation(exact, posterior.grid_density(lm, problem.grid), problem.grid))
            out["weight_l1" + suffix].append(float((lm.weights - w).abs().sum()))
    return LinearizationErrors(sigma=sig, **{k: np.asarray(v, dtype=float) for k, v in out.items()})


@dataclass(frozen=True)
class ErrorCurves:
    """The chapter's linearization errors in both problems (see :func:`error_curves`).

    Attributes
    ----------
    cubic : LinearizationErrors
        1-D cubic problem on a fine grid.
    pentagon : LinearizationErrors
        2-D pentagon problem.
    tv_slope : float
        Slope of a least-squares line through ``(log sigma, log tv)`` of the 1-D problem for
        ``sigma <= slope_below``: the empirical rate of the TV error.
    """

    cubic: LinearizationErrors
    pentagon: LinearizationErrors
    tv_slope: float


def error_curves(*, sigmas_1d=tuple(np.geomspace(0.02, 1.0, 14)), sigmas_2d=tuple(np.geomspace(0.05, 1.0, 9)),
                 n_grid_1d: int = 4001, n_grid_2d: int = 200, slope_below: float = 0.1) -> ErrorCurves:
    """Linearization errors of the 1-D cubic and the 2-D pentagon problems over sigma.

    Parameters
    ----------
    sigmas_1d, sigmas_2d : sequence of float
        Bandwidths, each > 0.
    n_grid_1d : int
        Grid nodes of the 1-D problem (fine, so the TV is resolved at small sigma), >= 3.
    n_grid_2d : int
        Nodes per axis of the 2-D grid, >= 3.
    slope_below : float
        The TV rate is fitted over ``sigma <= slope_below`` (at least two bandwidths), > 0.

    Returns
    -------
    ErrorCurves
    """
    slope_below = check_positive("slope_below", slope_below)
    cubic = linearization_errors(posterior.stylized_1d(n_grid=n_grid_1d), sigmas_1d)
    pent = linearization_errors(posterior.stylized_2d(n_grid=n_grid_2d), sigmas_2d)
    small = cubic.sigma <= slope_below
    if small.sum() < 2:
        raise ValueError(f"slope_below: must leave at least two bandwidths of sigmas_1d in (0, slope_below], "
                         f"got {small.sum()}")
    slope = float(np.polyfit(np.log(cubic.sigma[small]), np.log(cubic.tv[small]), 1)[0])
    return ErrorCurves(cubic=cubic, pentagon=pent, tv_slope=slope)


@dataclass(frozen=True)
class SmallSigmaRates:
    """How the linearized weights' errors vanish as sigma -> 0 (see :func:`small_sigma_rates`).

    With ``f_n = -|y - F(x_n)|^2 / 2 gamma^2`` the exact log-evidence is
    ``log Z_n = const + f_n + sigma^2 / 2 (|J_n^T r_n|^2 / gamma^4 - |J_n|_F^2 / gamma^2 + r_n . Lap F(x_n) / gamma^2)
    + O(sigma^4)``. The linearized log-weight with the log-determinant misses only the last (curvature)
    term; without it, it also misses ``-|J_n|_F^2 / gamma^2``.

    Attributes
    ----------
    x_train : ndarray [N, d]
    lookup : ndarray [N]
        Lookup weights (the sigma -> 0 limit of every weighting).
    shift, shift_no_logdet : ndarray [N]
        ``(log Z_n - log Z_n^lin) / sigma^2`` as sigma -> 0, up to a constant common to all n:
        ``r_n . Lap F(x_n) / 2 gamma^2`` and ``(r_n . Lap F(x_n) - |J_n|_F^2) / 2 gamma^2``.
    rate, rate_no_logdet : float
        ``c`` in ``sum_n |w_n^lin - w_n| = c sigma^2 + o(sigma^2)``: ``sum_n w_n |a_n - sum_m w_m a_m|`` with
        ``w`` the lookup weights and ``a`` the shift.
    y : ndarray [m]
    gamma : float
    """

    x_train: np.ndarray
    lookup: np.ndarray
    shift: np.ndarray
    shift_no_logdet: np.ndarray
    rate: float
    rate_no_logdet: float
    y: np.ndarray
    gamma: float


def small_sigma_rates(problem: posterior.Problem) -> SmallSigmaRates:
    """Leading-order (sigma^2) weight errors of both linearized mixtures, from a second-order expansion.

    ``Z_n = E[p(y | x_n + sigma eps)]`` and ``E[exp g(x + sigma eps)] = exp g(x) (1 + sigma^2/2 (Lap g + |grad g|^2))
    + O(sigma^4)`` give the exact log-evidence to order sigma^2 (see :class:`SmallSigmaRates`). The Jacobians
    come from :func:`memprior.posterior.jacobians`, the Laplacians ``Lap F_k`` from autograd Hessians.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        Any dimension; its forward map must be twice differentiable by autograd.

    Returns
    -------
    SmallSigmaRates
    """
    if not isinstance(problem, posterior.Problem):
        raise TypeError(f"problem: expected a memprior.posterior.Problem, got {type(problem).__name__}")
    F, x, y = problem.args()
    gamma = float(problem.gamma)
    r = y[None] - F(x)                                                    # [N, m]
    J = posterior.jacobians(F, x, r.shape[1])                             # [N, m, d]
    curv = torch.stack([torch.autograd.functional.hessian(lambda v, rn=rn: (rn * F(v[None])[0]).sum(), xn).trace()
                        for xn, rn in zip(x, r)])                         # r_n . Lap F(x_n), [N]
    a = curv / (2 * gamma ** 2)
    a0 = (curv - (J ** 2).sum((1, 2))) / (2 * gamma ** 2)
    w = posterior.lookup_weights(F, x, y, gamma)

    def rate(shift):
        return float((w * (shift - (w * shift).sum()).abs()).sum())

    return SmallSigmaRates(x_train=_np(x), lookup=_np(w), shift=_np(a), shift_no_logdet=_np(a0), rate=rate(a),
                           rate_no_logdet=rate(a0), y=_np(y), gamma=gamma)


# ----------------------------------------------------------------------------- the lookup limit
@dataclass(frozen=True)
class LookupLimit:
    """Exact weights against sigma and their convergence to the lookup weights (see :func:`lookup_limit`).

    Attributes
    ----------
    sigma : ndarray [S]
        Bandwidths, increasing.
    weights : ndarray [S, N]
        Exact component weights (quadrature on the problem's grid).
    lookup : ndarray [N]
        Lookup weights ``softmax(-|y - F(x_n)|^2 / 2 gamma^2)``.
    x_train : ndarray [N]
    gap_sigma : ndarray [K]
        Bandwidths of the gap check, in the order given.
    gap : ndarray [K]
        ``max_n |w_n(sigma) - w_n^lookup|`` on a grid that contains the training points.
    y, gamma : float
    """

    sigma: np.ndarray
    weights: np.ndarray
    lookup: np.ndarray
    x_train: np.ndarray
    gap_sigma: np.ndarray
    gap: np.ndarray
    y: float
    gamma: float


def lookup_limit(*, y: float = 0.45, gamma: float = 0.3, n_grid: int = 2001,
                 sigmas=tuple(np.geomspace(1e-3, 2.0, 40)),
                 gap_sigmas=(0.3, 0.1, 0.03, 1e-2, 1e-3, 1e-4)) -> LookupLimit:
    """Exact weights of the paper's 1-D problem with datum ``y`` as sigma shrinks to the lookup limit.

    Parameters
    ----------
    y : float
        The datum (0.45 avoids the symmetric case y = 0).
    gamma : float
        > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5], >= 3.
    sigmas : sequence of float, length S
        Bandwidths of the weight curves, each > 0 (sorted here).
    gap_sigmas : sequence of float, length K
        Bandwidths at which the gap to the lookup weights is measured, each > 0. The grid used there
        also contains the training points, so the gap tends to 0 exactly.

    Returns
    -------
    LookupLimit
    """
    sig = np.sort(_sigmas("sigmas", sigmas))
    gap_sig = _sigmas("gap_sigmas", gap_sigmas)
    pr = posterior.stylized_1d(y=y, gamma=gamma, n_grid=n_grid)
    args = pr.args()
    W = np.stack([_np(posterior.component_weights(*args, float(s), pr.gamma, pr.grid)) for s in sig])
    look = posterior.lookup_weights(*args, pr.gamma)
    grid = torch.unique(torch.cat([pr.grid, pr.x_train[:, 0]]))
    gap = [float((posterior.component_weights(*args, float(s), pr.gamma, grid) - look).abs().max()) for s in gap_sig]
    return LookupLimit(sigma=sig, weights=W, lookup=_np(look), x_train=_np(pr.x_train[:, 0]), gap_sigma=gap_sig,
                       gap=np.asarray(gap), y=float(pr.y[0]), gamma=float(pr.gamma))


# ----------------------------------------------------------------------------- the 2-D pentagon
@dataclass(frozen=True)
class Panel2D:
    """Densities of a 2-D problem on a display grid at one bandwidth (see :func:`panel_2d`).

    Attributes
    ----------
    x1 : ndarray [G1]
    x2 : ndarray [G2]
    prior, loglik, exact, lin, lin0 : ndarray [G2, G1]
        Rows are x2 (as plotly expects): the prior density, the log-likelihood ``-|y - F(x)|^2 / 2 gamma^2``,
        the exact posterior and both linearized mixtures (densities per unit area, normalized on the
        display grid).
    w_exact, w_lin, w_lin0 : ndarray [N]
        Component weights; the exact ones by quadrature on the problem's full grid.
    tv_lin, tv_lin0 : float
        Total variation to the exact posterior on the display grid.
    x_train : ndarray [N, 2]
    x_true : ndarray [2] or None
    sigma : float
    """

    x1: np.ndarray
    x2: np.ndarray
    prior: np.ndarray
    loglik: np.ndarray
    exact: np.ndarray
    lin: np.ndarray
    lin0: np.ndarray
    w_exact: np.ndarray
    w_lin: np.ndarray
    w_lin0: np.ndarray
    tv_lin: float
    tv_lin0: float
    x_train: np.ndarray
    x_true: np.ndarray | None
    sigma: float


def panel_2d(problem: posterior.Problem, sigma: float, n_display: int = 100) -> Panel2D:
    """Densities of a 2-D problem on a display grid of ``n_display`` nodes per axis taken from ``problem.grid``.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        A 2-D problem (``x_train`` [N, 2], ``grid`` a pair of axes).
    sigma : float
        Bandwidth, > 0.
    n_display : int
        Nodes per axis of the display grid, >= 10 (evenly picked from the full grid).

    Returns
    -------
    Panel2D
    """
    sigma = check_positive("sigma", sigma, square=True)
    n_display = check_int("n_display", n_display, low=10)
    _problem(problem, 2, "panel_2d")
    F, x, y = problem.args()
    axes = []
    for g in problem.grid:
        idx = np.unique(np.linspace(0, len(g) - 1, min(n_display, len(g))).round().astype(int))
        axes.append(g[idx])
    gd = tuple(axes)
    g1, g2 = gd
    exact = posterior.grid_posterior(F, x, y, sigma, problem.gamma, gd)
    lm = posterior.linearized_mixture(F, x, y, sigma, problem.gamma)
    lm0 = posterior.linearized_mixture(F, x, y, sigma, problem.gamma, logdet=False)
    lin, lin0 = posterior.grid_density(lm, gd), posterior.grid_density(lm0, gd)
    w = posterior.component_weights(F, x, y, sigma, problem.gamma, problem.grid)
    pts = posterior.grid_points(gd)
    prior = GaussianMixturePrior(x, sigma).log_prob(pts).exp().reshape(len(g1), len(g2))
    loglik = (-((y[None] - F(pts)) ** 2).sum(1) / (2 * problem.gamma ** 2)).reshape(len(g1), len(g2))
    return Panel2D(
        x1=_np(g1), x2=_np(g2), prior=_np(prior).T, loglik=_np(loglik).T, exact=_np(exact).T, lin=_np(lin).T,
        lin0=_np(lin0).T, w_exact=_np(w), w_lin=_np(lm.weights), w_lin0=_np(lm0.weights),
        tv_lin=posterior.total_variation(exact, lin, gd), tv_lin0=posterior.total_variation(exact, lin0, gd),
        x_train=_np(x), x_true=None if problem.x_true is None else _np(problem.x_true), sigma=sigma,
    )


@dataclass(frozen=True)
class Pentagon:
    """The 2-D pentagon at several bandwidths (see :func:`pentagon`).

    Attributes
    ----------
    sigma : ndarray [S]
    panels : tuple of Panel2D, length S
    w_exact : ndarray [S, N]
        Exact weights (quadrature on the full grid).
    exp_h : ndarray [S]
        Effective components of ``w_exact``.
    true_dist : float
        Distance from the true model to the training point ``x_0``.
    """

    sigma: np.ndarray
    panels: tuple
    w_exact: np.ndarray
    exp_h: np.ndarray
    true_dist: float


def pentagon(sigmas=(0.8, 0.5, 0.3, 0.15), *, gamma: float = 0.3, n_grid: int = 200, n_display: int = 72) -> Pentagon:
    """The paper's 2-D pentagon problem (:func:`memprior.posterior.stylized_2d`) at several bandwidths.

    Parameters
    ----------
    sigmas : sequence of float, length S
        Bandwidths, each > 0.
    gamma : float
        > 0.
    n_grid : int
        Quadrature nodes per axis, >= 3.
    n_display : int
        Display nodes per axis of each panel, >= 10.

    Returns
    -------
    Pentagon
    """
    sig = _sigmas("sigmas", sigmas)
    pr = posterior.stylized_2d(gamma=gamma, n_grid=n_grid)
    panels = tuple(panel_2d(pr, float(s), n_display) for s in sig)
    w = np.stack([p.w_exact for p in panels])
    return Pentagon(sigma=sig, panels=panels, w_exact=w,
                    exp_h=np.array([posterior.effective_components(torch.as_tensor(v)) for v in w]),
                    true_dist=float((pr.x_true - pr.x_train[0]).norm()))


# ----------------------------------------------------------------------------- effective components
def stylized_sweep(n_train: int, gamma: float = 0.3, n_grid: int = 2001, *, pool: int | None = None
                   ) -> posterior.Problem:
    """The effective-components problem: N points on [-3, 3], the cubic map, y = 0.

    Parameters
    ----------
    n_train : int
        N in [2, 100000].
    gamma : float
        Noise standard deviation, > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5], >= 3.
    pool : int, optional
        None (default): the training set is ``linspace(-3, 3, N)``, evenly spaced. An integer P >= N: the
        paper's construction, the points of a P-point pool ``linspace(-3, 3, P)`` at the indices
        ``linspace(0, P - 1, N)`` computed in float32 and truncated to integers, as the paper's code does
        (``torch.linspace(0, P - 1, N).long()``). The two coincide when ``N - 1`` divides ``P - 1``.

    Returns
    -------
    memprior.posterior.Problem
    """
    n_train = check_int("n_train", n_train, low=2, high=100_000)
    if pool is None:
        x = torch.linspace(-3.0, 3.0, n_train, dtype=_D64)
    else:
        pool = check_int("pool", pool, low=n_train, high=100_000)
        idx = torch.linspace(0, pool - 1, n_train, dtype=torch.float32).long()
        x = torch.linspace(-3.0, 3.0, pool, dtype=_D64)[idx]
    return posterior.stylized_1d(0.0, gamma, n_grid, x_train=x[:, None])


def count_modes(density, rel_height: float = 1e-3) -> int:
    """Number of local maxima of a 1-D density on a grid (its modes).

    A node counts as a mode when it is strictly larger than its left neighbour, at least as
    large as its right neighbour (plateaus count once), and at least ``rel_height`` times
    the global maximum (ignoring ripples in far tails).

    Parameters
    ----------
    density : array or Tensor [G]
        Non-negative values on a 1-D grid, G >= 3.
    rel_height : float
        In [0, 1).

    Returns
    -------
    int
    """
    p = as_tensor("density", density).to(_D64)
    if p.dim() != 1 or p.shape[0] < 3:
        raise ValueError(f"density: expected a 1-D tensor [G] with G >= 3, got shape {list(p.shape)}")
    if (p < 0).any():
        raise ValueError("density: entries must be in [0, inf)")
    if isinstance(rel_height, bool) or not isinstance(rel_height, (int, float)) or not 0 <= rel_height < 1:
        raise ValueError(f"rel_height: must be a number in [0, 1), got {rel_height!r}")
    pad = torch.cat([p.new_full((1,), -1.0), p, p.new_full((1,), -1.0)])
    left = pad[1:-1] > pad[:-2]
    right = pad[1:-1] >= pad[2:]
    high = p >= rel_height * p.max()
    return int((left & right & high).sum())


@dataclass(frozen=True)
class ComponentsCurve:
    """exp(H) and mode counts over sigma for one problem (see :func:`effective_components_curve`).

    Attributes
    ----------
    sigma : ndarray [S]
    exact, linearized, linearized_no_logdet : ndarray [S]
        exp(H) of the exact weights and of the linearized weights with / without the log-determinant.
    modes : ndarray [S] of int
        Modes of the exact posterior density on the problem's grid.
    lookup : float
        exp(H) of the lookup weights (the sigma -> 0 limit).
    """

    sigma: np.ndarray
    exact: np.ndarray
    linearized: np.ndarray
    linearized_no_logdet: np.ndarray
    modes: np.ndarray
    lookup: float


def effective_components_curve(problem: posterior.Problem, sigmas) -> ComponentsCurve:
    """exp(H) of the exact and both linearized weights, and the exact posterior's mode count, over sigma.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        A 1-D problem (quadrature on its grid).
    sigmas : sequence of float, length S
        Bandwidths, each > 0.

    Returns
    -------
    ComponentsCurve
    """
    _problem(problem, 1, "effective_components_curve")
    sig = _sigmas("sigmas", sigmas)
    F, x, y = problem.args()
    gam, grid = problem.gamma, problem.grid
    eff = posterior.effective_components
    ex, li, li0, mo = [], [], [], []
    for s in map(float, sig):
        ex.append(eff(posterior.component_weights(F, x, y, s, gam, grid)))
        li.append(eff(posterior.linearized_mixture(F, x, y, s, gam).weights))
        li0.append(eff(posterior.linearized_mixture(F, x, y, s, gam, logdet=False).weights))
        mo.append(count_modes(posterior.grid_posterior(F, x, y, s, gam, grid)))
    return ComponentsCurve(sigma=sig, exact=np.asarray(ex), linearized=np.asarray(li),
                           linearized_no_logdet=np.asarray(li0), modes=np.asarray(mo, dtype=int),
                           lookup=eff(posterior.lookup_weights(F, x, y, gam)))


@dataclass(frozen=True)
class ComponentsSweep:
    """exp(H) over sigma for several evenly spaced training sets (see :func:`components_sweep`).

    Attributes
    ----------
    ns : ndarray [K] of int
        Training-set sizes N.
    sigma : ndarray [S]
    exact, linearized, linearized_no_logdet : ndarray [K, S]
        exp(H) of the exact and linearized weights.
    modes : ndarray [K, S] of int
        Modes of the exact posterior density.
    lookup : ndarray [K]
        exp(H) of the lookup weights.
    sigma_crit : ndarray [K]
        :func:`memprior.posterior.sigma_crit` of each training set.
    plateau : ndarray [K]
        exp(H) of the exact weights at the smallest sigma (``exact[:, 0]``).
    crit_ratio : ndarray [K, 2]
        exp(H) of the exact weights at ``sigma_crit`` and at ``3 sigma_crit``, divided by the plateau.
    pool : int or None
        None for evenly spaced training sets, else the size of the pool they are index subsets of
        (:func:`stylized_sweep`).
    """

    ns: np.ndarray
    sigma: np.ndarray
    exact: np.ndarray
    linearized: np.ndarray
    linearized_no_logdet: np.ndarray
    modes: np.ndarray
    lookup: np.ndarray
    sigma_crit: np.ndarray
    plateau: np.ndarray
    crit_ratio: np.ndarray
    pool: int | None = None

    def curve(self, n: int) -> ComponentsCurve:
        """The :class:`ComponentsCurve` of training-set size ``n`` (one of ``ns``)."""
        hits = np.flatnonzero(self.ns == n)
        if hits.size == 0:
            raise ValueError(f"n: must be one of the swept sizes {self.ns.tolist()}, got {n!r}")
        k = int(hits[0])
        return ComponentsCurve(sigma=self.sigma, exact=self.exact[k], linearized=self.linearized[k],
                               linearized_no_logdet=self.linearized_no_logdet[k], modes=self.modes[k],
                               lookup=float(self.lookup[k]))

    def sigma_index(self, sigma: float) -> int:
        """Index of the swept bandwidth nearest to ``sigma``."""
        return int(np.argmin(np.abs(self.sigma - check_positive("sigma", sigma))))


def components_sweep(*, ns=(3, 5, 10, 20, 100), sigmas=tuple(np.geomspace(0.01, 5.0, 36)), gamma: float = 0.3,
                     n_grid: int = 2001, pool: int | None = None) -> ComponentsSweep:
    """The paper's effective-components sweep: exp(H) over sigma for N points on [-3, 3], y = 0.

    The training sets are evenly spaced (``pool=None``) or, as in the paper's code, index subsets of a
    ``pool``-point evenly spaced pool (:func:`stylized_sweep`).

    Parameters
    ----------
    ns : sequence of int, length K
        Training-set sizes, each in [2, 100000].
    sigmas : sequence of float, length S
        Bandwidths, each > 0 (the smallest should be first: it defines the plateau).
    gamma : float
        > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5], >= 3.
    pool : int, optional
        Pool size (>= max(ns)) of the paper's index subsets; None for evenly spaced sets.

    Returns
    -------
    ComponentsSweep
    """
    ns = [check_int("ns", n, low=2, high=100_000) for n in ns]
    if not ns:
        raise ValueError("ns: need at least one training-set size (integers in [2, 100000])")
    sig = _sigmas("sigmas", sigmas)
    curves, crit, ratio = [], [], []
    for n in ns:
        pr = stylized_sweep(n, gamma=gamma, n_grid=n_grid, pool=pool)
        c = effective_components_curve(pr, sig)
        sc = posterior.sigma_crit(pr.forward, pr.x_train, pr.gamma)
        at = [posterior.effective_components(posterior.component_weights(*pr.args(), s, pr.gamma, pr.grid))
              for s in (sc, 3 * sc)]
        curves.append(c)
        crit.append(sc)
        ratio.append(np.asarray(at) / c.exact[0])
    return ComponentsSweep(
        ns=np.asarray(ns, dtype=int), sigma=sig, exact=np.stack([c.exact for c in curves]),
        linearized=np.stack([c.linearized for c in curves]),
        linearized_no_logdet=np.stack([c.linearized_no_logdet for c in curves]),
        modes=np.stack([c.modes for c in curves]), lookup=np.array([c.lookup for c in curves]),
        sigma_crit=np.asarray(crit), plateau=np.array([c.exact[0] for c in curves]), crit_ratio=np.stack(ratio),
        pool=pool,
    )


# ----------------------------------------------------------------------------- the plateau
def plateau_estimate(forward, y, gamma: float, spacing: float, grid) -> float:
    """Continuum estimate of exp(H) of the lookup weights for a dense, evenly spaced 1-D training set.

    When training points sit every ``spacing`` along a line, the lookup weights sample the
    likelihood ``q(x) ∝ N(y; F(x), gamma^2)`` (normalized in x), and the entropy of the
    weights tends to ``h(q) - log(spacing)``, with ``h`` the differential entropy of ``q``.
    So ``exp(H) ≈ exp(h(q)) / spacing``.  For ``F(x) = a x`` this is
    ``sqrt(2 pi e) gamma / (|a| spacing)``.

    Parameters
    ----------
    forward : callable ``[B, 1] -> [B, m]``
    y : Tensor [m]
    gamma : float
        > 0.
    spacing : float
        Distance between neighbouring training points, > 0.
    grid : Tensor [G]
        Fine, strictly increasing 1-D grid on which ``q`` is integrated (it must resolve the likelihood).

    Returns
    -------
    float
    """
    gamma = check_positive("gamma", gamma, square=True)
    spacing = check_positive("spacing", spacing)
    check_forward(forward)
    vol = posterior.cell_volumes(grid)  # validates the grid
    g = as_tensor("grid", grid).to(_D64)
    yt = as_data(y, _D64)
    Fg = apply_forward(forward, g[:, None], yt.shape[0], what="the grid")
    logq = -((yt[None] - Fg) ** 2).sum(1) / (2 * gamma ** 2)
    logq = logq - torch.logsumexp(logq + vol.log(), dim=0)  # normalized density
    h = -float((logq.exp() * logq * vol).sum())
    return math.exp(h) / spacing


@dataclass(frozen=True)
class Plateau:
    """The small-sigma plateau of exp(H) for a dense training set, measured and predicted (see :func:`plateau`).

    Attributes
    ----------
    n_train : int
    spacing : float
        ``delta = 6 / (N - 1)``.
    inside : int
        Training points with ``|F(x_n) - y| < gamma``.
    measured : float
        exp(H) of the exact weights at the small bandwidth.
    continuum : float
        :func:`plateau_estimate` on a fine grid.
    linear_rule : float
        ``sqrt(2 pi e) gamma / (|F'(0)| delta)`` with ``F'(0) = 1``.
    ratio : float
        ``measured / inside``.
    sqrt_2pie_half : float
        ``sqrt(2 pi e) / 2``: the Gaussian ratio of effective count to points within one standard deviation.
    """

    n_train: int
    spacing: float
    inside: int
    measured: float
    continuum: float
    linear_rule: float
    ratio: float
    sqrt_2pie_half: float


def plateau(*, n_train: int = 100, gamma: float = 0.3, sigma: float = 0.01, n_grid: int = 2001,
            n_fine: int = 20001) -> Plateau:
    """Measure the plateau of exp(H) for ``n_train`` evenly spaced points and compare it with its predictions.

    Parameters
    ----------
    n_train : int
        N in [2, 100000].
    gamma : float
        > 0.
    sigma : float
        The small bandwidth at which the plateau is measured, > 0.
    n_grid : int
        Quadrature nodes on [-3.5, 3.5], >= 3.
    n_fine : int
        Nodes of the fine grid on [-3.5, 3.5] for the continuum estimate, >= 3.

    Returns
    -------
    Plateau
    """
    sigma = check_positive("sigma", sigma, square=True)
    n_fine = check_int("n_fine", n_fine, low=3)
    pr = stylized_sweep(n_train, gamma=gamma, n_grid=n_grid)
    delta = 6.0 / (pr.x_train.shape[0] - 1)
    inside = int((pr.forward(pr.x_train)[:, 0] - pr.y).abs().lt(pr.gamma).sum())
    measured = posterior.effective_components(posterior.component_weights(*pr.args(), sigma, pr.gamma, pr.grid))
    fine = torch.linspace(-3.5, 3.5, n_fine, dtype=_D64)
    cont = plateau_estimate(pr.forward, pr.y, pr.gamma, delta, fine)
    c = math.sqrt(2 * math.pi * math.e)
    return Plateau(n_train=int(pr.x_train.shape[0]), spacing=delta, inside=inside, measured=measured, continuum=cont,
                   linear_rule=c * pr.gamma / delta, ratio=measured / inside if inside else math.inf,
                   sqrt_2pie_half=c / 2)

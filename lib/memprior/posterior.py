"""Posteriors under memorized priors: lookup, exact (quadrature) and linearized mixtures.

Data model: ``y = F(x) + e`` with ``e ~ N(0, gamma^2 I_m)``.  The training set is
``x_train [N, d]``; ``forward`` maps a batch ``[B, d] -> [B, m]``; ``y`` is ``[m]``.

* :func:`lookup_weights`: the posterior under the empirical prior (sigma = 0) is
  ``sum_n w_n delta(x - x_n)`` with ``w_n = softmax(-||y - F(x_n)||^2 / (2 gamma^2))``.
* :func:`component_weights` / :func:`grid_posterior`: the exact posterior under the
  Gaussian-mixture prior ``p_sigma`` by quadrature on a 1-D or 2-D grid.
* :func:`component_weights_is`: the same weights by importance sampling (any d).
* :func:`linearized_mixture`: linearize ``F`` at every ``x_n``; each component becomes
  Gaussian and the posterior a Gaussian mixture.  Weights include the
  log-determinant of the data covariance (``logdet=True``); ``logdet=False``
  reproduces the weights of the paper's reference code, which omit it.
* :func:`effective_components` (exp of the weights' entropy) and :func:`sigma_crit`.
* :class:`Problem`, :func:`stylized_1d`, :func:`stylized_2d`: the paper's stylized problems.

Chapter 3's sweeps and derived statistics (effective-component curves, linearization errors,
mode counts, the plateau estimate) live in :mod:`memprior.experiments.stylized`.

All computations are batched and in log-space; float64 is supported throughout.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch

from ._checks import (apply_forward, as_data, as_points, as_tensor, as_train, check_forward, check_generator,
                      check_int, check_positive)
from .mixture import pairwise_sq_dists, relative_logits

__all__ = [
    "lookup_weights",
    "LinearizedMixture",
    "linearized_mixture",
    "jacobians",
    "component_weights",
    "component_log_evidence",
    "component_weights_is",
    "grid_posterior",
    "grid_points",
    "cell_volumes",
    "grid_density",
    "total_variation",
    "effective_components",
    "sigma_crit",
    "Problem",
    "cubic_forward",
    "pentagon_forward",
    "stylized_1d",
    "stylized_2d",
]

Forward = Callable[[torch.Tensor], torch.Tensor]
_LOG2PI = math.log(2.0 * math.pi)
_CHUNK_ELEMS = 4_000_000


# ----------------------------------------------------------------------------- validation
def _prepare(forward, x_train, y):
    check_forward(forward)
    x = as_train(x_train)
    yt = as_data(y, x.dtype)
    Fx = apply_forward(forward, x, yt.shape[0])
    return x, yt, Fx


# ----------------------------------------------------------------------------- lookup
def lookup_weights(forward: Forward, x_train, y, gamma: float) -> torch.Tensor:
    """Posterior weights under the empirical (memorized) prior.

    ``w_n = softmax_n(-||y - F(x_n)||^2 / (2 gamma^2))``: the data enter only through
    each stored example's misfit.

    Parameters
    ----------
    forward : callable
        Forward map ``[B, d] -> [B, m]``.
    x_train : Tensor [N, d]
        Training examples.
    y : Tensor [m]
        Observed data.
    gamma : float
        Noise standard deviation, > 0 (units of y).

    Returns
    -------
    Tensor [N]
        Non-negative weights summing to one.

    Raises
    ------
    ValueError, TypeError
        On bad shapes, an empty training set, NaN in ``y``, ``gamma <= 0`` or a forward
        map that returns the wrong shape.
    """
    gamma = check_positive("gamma", gamma, square=True)
    x, yt, Fx = _prepare(forward, x_train, y)
    return torch.softmax(relative_logits(yt[None, :], Fx, gamma ** 2)[0][0], dim=0)


# ----------------------------------------------------------------------------- Jacobians
def jacobians(forward: Forward, x_train, m: int | None = None) -> torch.Tensor:
    """Jacobians ``J_n = dF/dx (x_n)`` for every training example, batched with ``torch.func``.

    Uses ``vmap(jacfwd)`` when d <= m and ``vmap(jacrev)`` otherwise (fewer passes).
    ``forward`` must be written with torch operations that work on a batch of one.

    Parameters
    ----------
    forward : callable
        ``[B, d] -> [B, m]``.
    x_train : Tensor [N, d]
    m : int, optional
        Expected output size (checked).

    Returns
    -------
    Tensor [N, m, d]
    """
    check_forward(forward)
    x = as_train(x_train)
    if m is None:
        probe = forward(x[:1])
        if not isinstance(probe, torch.Tensor) or probe.dim() != 2:
            raise ValueError("forward: must map [B, d] -> [B, m] (a 2-D tensor)")
        m = int(probe.shape[1])
    m = check_int("m", m, low=1)
    d = x.shape[1]

    def single(v: torch.Tensor) -> torch.Tensor:
        return forward(v[None, :])[0]

    jac = torch.func.jacfwd(single) if d <= m else torch.func.jacrev(single)
    try:
        with warnings.catch_warnings():
            # torch's forward-mode AD loads jit-scripted decompositions on first use and warns
            # that torch.jit.script is deprecated; that is torch's internal business, not the caller's.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
            J = torch.func.vmap(jac)(x)
    except RuntimeError as exc:
        raise TypeError(
            "forward: could not be differentiated with torch.func.vmap(jacfwd/jacrev); write it with "
            f"torch operations that accept a batch [1, d], or pass jacobian=... ({exc})"
        ) from exc
    if J.shape != (x.shape[0], m, d):
        raise ValueError(f"forward: Jacobian has shape {list(J.shape)}, expected [N, m, d] = [{x.shape[0]}, {m}, {d}]")
    J = J.to(x.dtype)
    if not torch.isfinite(J).all():
        raise ValueError("forward: Jacobian contains NaN or inf at some training example")
    return J


# ----------------------------------------------------------------------------- linearized mixture
class LinearizedMixture:
    """Gaussian mixture ``sum_n w_n N(x; mu_n, Sigma_n)`` from linearizing F at each ``x_n``.

    Built by :func:`linearized_mixture`; not usually constructed directly.

    Attributes
    ----------
    means : Tensor [N, d]
        ``mu_n = x_n + gamma^-2 Sigma_n J_n^T r_n``.
    covs : Tensor [N, d, d]
        ``Sigma_n = (sigma^-2 I + gamma^-2 J_n^T J_n)^-1``.
    weights : Tensor [N]
        Normalized component weights.
    log_weights : Tensor [N]
        ``log weights`` (normalized).
    logdet_data_cov : Tensor [N]
        ``log det C_n`` with ``C_n = gamma^2 I_m + sigma^2 J_n J_n^T``.
    data_quad : Tensor [N]
        ``r_n^T C_n^-1 r_n``.
    jacobians : Tensor [N, m, d]
    residuals : Tensor [N, m]
        ``r_n = y - F(x_n)``.
    logdet : bool
        Whether the weights include ``-1/2 log det C_n``.
    """

    def __init__(self, means, chol_prec, log_weights, logdet_data_cov, data_quad, J, r, sigma, gamma, logdet):
        self.means = means
        self._L = chol_prec  # Cholesky factor of the precision P_n = Sigma_n^-1 = L L^T
        Linv = torch.linalg.solve_triangular(
            chol_prec, torch.eye(means.shape[1], dtype=means.dtype).expand_as(chol_prec), upper=False)
        self.covs = Linv.mT @ Linv  # Sigma = L^-T L^-1, symmetric positive semi-definite by construction
        self.log_weights = log_weights
        self.weights = log_weights.exp()
        self.logdet_data_cov = logdet_data_cov
        self.data_quad = data_quad
        self.jacobians = J
        self.residuals = r
        self.sigma = sigma
        self.gamma = gamma
        self.logdet = logdet
        self.n, self.dim = means.shape

    def __repr__(self) -> str:
        return (f"LinearizedMixture(n={self.n}, dim={self.dim}, sigma={self.sigma:g}, gamma={self.gamma:g}, "
                f"logdet={self.logdet})")

    def _x(self, x) -> torch.Tensor:
        return as_points("x", x, self.dim, self.means.dtype)

    def component_log_prob(self, x) -> torch.Tensor:
        """``log w_n + log N(x; mu_n, Sigma_n)`` for every component.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B, N]
        """
        x = self._x(x)
        B = x.shape[0]
        N, d = self.n, self.dim
        half_logdet_prec = torch.log(torch.diagonal(self._L, dim1=-2, dim2=-1)).sum(-1)  # [N]
        const = self.log_weights + half_logdet_prec - 0.5 * d * _LOG2PI
        step = max(1, _CHUNK_ELEMS // max(1, N * d * d))
        out = []
        for i in range(0, B, step):
            diff = x[i:i + step, None, :] - self.means[None]  # [b, N, d]
            z = torch.einsum("nji,bnj->bni", self._L, diff)  # L^T (x - mu)
            out.append(const[None] - 0.5 * (z ** 2).sum(-1))
        return torch.cat(out) if out else torch.empty(0, N, dtype=x.dtype)

    def log_prob(self, x) -> torch.Tensor:
        """Log-density of the mixture.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B]
        """
        return torch.logsumexp(self.component_log_prob(x), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples (component by weight, then its Gaussian).

        Parameters
        ----------
        n : int
            >= 0.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor [n, d]
        """
        check_generator(generator)
        n = check_int("n", n, low=0)
        if n == 0:
            return torch.empty(0, self.dim, dtype=self.means.dtype)
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, 1, generator=generator, dtype=self.means.dtype)
        # x = mu + L^-T z has covariance L^-T L^-1 = Sigma.
        dx = torch.linalg.solve_triangular(self._L[idx].mT, z, upper=True)[..., 0]
        return self.means[idx] + dx


def linearized_mixture(forward: Forward, x_train, y, sigma: float, gamma: float, logdet: bool = True,
                       jacobian: torch.Tensor | None = None) -> LinearizedMixture:
    """Linearized Gaussian-mixture posterior under the prior ``p_sigma``.

    With ``F(x) ~ F(x_n) + J_n (x - x_n)`` and ``r_n = y - F(x_n)``, component n of the
    posterior is Gaussian with covariance ``Sigma_n = (sigma^-2 I + gamma^-2 J_n^T J_n)^-1`` and
    mean ``mu_n = x_n + gamma^-2 Sigma_n J_n^T r_n``.  Its weight is the evidence of the
    linearized model,

    ``w_n ∝ det(C_n)^(-1/2) exp(-r_n^T C_n^-1 r_n / 2)``, ``C_n = gamma^2 I_m + sigma^2 J_n J_n^T``.

    The determinant and the quadratic form are computed in ``min(d, m)`` dimensions with
    the matrix-determinant lemma ``det C_n = gamma^(2m) sigma^(2d) det(Sigma_n^-1)`` and the
    Woodbury identity ``r^T C^-1 r = |r|^2/gamma^2 - g^T Sigma g / gamma^4`` (``g = J^T r``).

    Parameters
    ----------
    forward : callable
        ``[B, d] -> [B, m]``, differentiable with ``torch.func`` (unless ``jacobian`` is given).
    x_train : Tensor [N, d]
    y : Tensor [m]
    sigma : float
        Prior bandwidth, > 0.
    gamma : float
        Noise standard deviation, > 0.
    logdet : bool
        Include ``-1/2 log det C_n`` in the weights (correct).  ``False`` reproduces the
        paper's reference code, which omits it.
    jacobian : Tensor [N, m, d], optional
        Precomputed Jacobians (e.g. for a forward map that ``torch.func`` cannot trace).

    Returns
    -------
    LinearizedMixture
    """
    sigma = check_positive("sigma", sigma, square=True)
    gamma = check_positive("gamma", gamma, square=True)
    if not isinstance(logdet, bool):
        raise TypeError(f"logdet: expected True or False, got {type(logdet).__name__}")
    x, yt, Fx = _prepare(forward, x_train, y)
    N, d = x.shape
    m = yt.shape[0]
    if jacobian is None:
        J = jacobians(forward, x, m)
    else:
        J = as_tensor("jacobian", jacobian).to(x.dtype)
        if J.shape != (N, m, d):
            raise ValueError(f"jacobian: expected shape [N, m, d] = [{N}, {m}, {d}], got {list(J.shape)}")
    r = yt[None, :] - Fx  # [N, m]
    g = torch.einsum("nmd,nm->nd", J, r)  # J^T r
    eye_d = torch.eye(d, dtype=x.dtype)
    # Precision P = sigma^-2 I + gamma^-2 J^T J, always formed (needed for the covariances).
    P = eye_d / sigma ** 2 + torch.einsum("nmi,nmj->nij", J, J) / gamma ** 2
    L = torch.linalg.cholesky(P)
    Pinv_g = torch.cholesky_solve(g[..., None], L)[..., 0]  # Sigma g
    means = x + Pinv_g / gamma ** 2
    if d <= m:
        # determinant lemma and Woodbury, in d dimensions
        logdet_P = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        logdet_C = 2.0 * m * math.log(gamma) + 2.0 * d * math.log(sigma) + logdet_P
        quad = (r ** 2).sum(1) / gamma ** 2 - (g * Pinv_g).sum(1) / gamma ** 4
    else:
        # directly in m dimensions
        C = gamma ** 2 * torch.eye(m, dtype=x.dtype) + sigma ** 2 * torch.einsum("nid,njd->nij", J, J)
        Lc = torch.linalg.cholesky(C)
        logdet_C = 2.0 * torch.log(torch.diagonal(Lc, dim1=-2, dim2=-1)).sum(-1)
        u = torch.linalg.solve_triangular(Lc, r[..., None], upper=False)[..., 0]
        quad = (u ** 2).sum(1)
    quad = quad.clamp_min(0.0)  # Woodbury can round a zero residual slightly negative
    logits = -0.5 * quad
    if logdet:
        logits = logits - 0.5 * logdet_C
    log_w = torch.log_softmax(logits, dim=0)
    return LinearizedMixture(means, L, log_w, logdet_C, quad, J, r, sigma, gamma, logdet)


# ----------------------------------------------------------------------------- grids and quadrature
def _as_axis(name: str, g, dtype) -> torch.Tensor:
    t = as_tensor(name, g, finite=False)
    if t.dim() != 1 or t.shape[0] < 2:
        raise ValueError(f"{name}: expected a 1-D tensor of at least 2 increasing grid nodes, got shape {list(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or inf; grid nodes must be finite")
    if not (t[1:] > t[:-1]).all():
        raise ValueError(f"{name}: grid nodes must be strictly increasing")
    return t.to(dtype)


def _axes(grid, d: int, dtype) -> list[torch.Tensor]:
    if d == 1:
        if isinstance(grid, (tuple, list)):
            if len(grid) != 1:
                raise ValueError(f"grid: for d = 1 pass a 1-D tensor [G] (or a 1-tuple), got {len(grid)} axes")
            grid = grid[0]
        return [_as_axis("grid", grid, dtype)]
    if d == 2:
        if not isinstance(grid, (tuple, list)) or len(grid) != 2:
            raise ValueError("grid: for d = 2 pass a tuple (g1[G1], g2[G2]) of 1-D tensors")
        return [_as_axis("grid[0]", grid[0], dtype), _as_axis("grid[1]", grid[1], dtype)]
    raise ValueError(f"x_train: quadrature needs dimension d in {{1, 2}}, got d = {d}; "
                     "use component_weights_is for higher dimensions")


def _check_covers(axes: list[torch.Tensor], x: torch.Tensor) -> None:
    for k, ax in enumerate(axes):
        lo, hi = float(ax[0]), float(ax[-1])
        xmin, xmax = float(x[:, k].min()), float(x[:, k].max())
        if xmin < lo or xmax > hi:
            name = "grid" if len(axes) == 1 else f"grid[{k}]"
            raise ValueError(f"{name}: must cover the training points; its range [{lo:g}, {hi:g}] does not "
                             f"contain [{xmin:g}, {xmax:g}] (coordinate {k} of x_train)")


def _edges(ax: torch.Tensor) -> torch.Tensor:
    """Cell edges: midpoints between nodes, end cells extended by half a spacing."""
    mid = 0.5 * (ax[1:] + ax[:-1])
    first = ax[:1] - 0.5 * (ax[1:2] - ax[:1])
    last = ax[-1:] + 0.5 * (ax[-1:] - ax[-2:-1])
    return torch.cat([first, mid, last])


def _log_cell_mass(ax: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """``log P(x in cell_g)`` for ``x ~ N(c_n, sigma^2)`` along one axis: [N, G].

    ``P = Phi(z_{g+1}) - Phi(z_g)`` at the standardized cell edges ``z``, evaluated as a
    log-difference in the lower tail (``z_{g+1} <= 0``) or, by symmetry, in the upper
    tail, so that cells many standard deviations away keep their (tiny) log-mass.
    """
    z = (_edges(ax)[None, :] - centres[:, None]) / sigma  # [N, G + 1]
    lo = torch.special.log_ndtr(z)  # log Phi(z)
    up = torch.special.log_ndtr(-z)  # log (1 - Phi(z))
    upper = z[:, :-1] > 0  # the whole cell lies above the centre: use the upper tail
    big = torch.where(upper, up[:, :-1], lo[:, 1:])
    small = torch.where(upper, up[:, 1:], lo[:, :-1])
    delta = (small - big).clamp(max=0.0)
    return big + torch.log(-torch.expm1(delta))


def grid_points(grid) -> torch.Tensor:
    """Grid nodes as a batch of points.

    Parameters
    ----------
    grid : Tensor [G] or tuple (Tensor [G1], Tensor [G2])

    Returns
    -------
    Tensor [G, 1] or [G1 * G2, 2]
        In 2-D the first axis varies slowest (``indexing="ij"``), so
        ``values.reshape(G1, G2)`` recovers the grid layout.
    """
    def dtype_of(g):
        return g.dtype if isinstance(g, torch.Tensor) and g.is_floating_point() else torch.float64

    if isinstance(grid, (tuple, list)):
        if len(grid) == 1:
            return grid_points(grid[0])
        if len(grid) != 2:
            raise ValueError(f"grid: expected 1 or 2 axes, got {len(grid)}")
        g1 = _as_axis("grid[0]", grid[0], dtype_of(grid[0]))
        g2 = _as_axis("grid[1]", grid[1], g1.dtype)
        a, b = torch.meshgrid(g1, g2, indexing="ij")
        return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    return _as_axis("grid", grid, dtype_of(grid))[:, None]


def cell_volumes(grid) -> torch.Tensor:
    """Length (1-D) or area (2-D) of each grid cell; cells end halfway between nodes.

    Returns
    -------
    Tensor [G] or [G1, G2]
    """
    if isinstance(grid, (tuple, list)) and len(grid) not in (1, 2):
        raise ValueError(f"grid: expected a 1-D tensor [G] or a tuple of 1 or 2 axes, got {len(grid)} axes")
    if isinstance(grid, torch.Tensor) and grid.dim() != 1:
        raise ValueError(f"grid: expected a 1-D tensor of nodes [G] (or a tuple of axes), got shape {list(grid.shape)}")
    if isinstance(grid, (tuple, list)) and len(grid) == 2:
        h1 = torch.diff(_edges(_as_axis("grid[0]", grid[0], torch.float64)))
        h2 = torch.diff(_edges(_as_axis("grid[1]", grid[1], torch.float64)))
        return h1[:, None] * h2[None, :]
    if isinstance(grid, (tuple, list)):
        grid = grid[0]
    return torch.diff(_edges(_as_axis("grid", grid, torch.float64)))


def _grid_terms(forward, x_train, y, sigma, gamma, grid):
    """Shared set-up: validated inputs, log-likelihood on the grid, per-axis log cell masses."""
    sigma = check_positive("sigma", sigma, square=True)
    gamma = check_positive("gamma", gamma, square=True)
    x, yt, _ = _prepare(forward, x_train, y)
    d = x.shape[1]
    axes = _axes(grid, d, x.dtype)
    _check_covers(axes, x)
    if d == 1:
        pts = axes[0][:, None]
    else:
        a, b = torch.meshgrid(axes[0], axes[1], indexing="ij")
        pts = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    Fg = apply_forward(forward, pts, yt.shape[0], what="the grid")
    m = yt.shape[0]
    loglik = -((yt[None, :] - Fg) ** 2).sum(1) / (2.0 * gamma ** 2) - 0.5 * m * (_LOG2PI + 2.0 * math.log(gamma))
    shape = tuple(ax.shape[0] for ax in axes)
    loglik = loglik.reshape(shape)
    logmass = [_log_cell_mass(ax, x[:, k], sigma) for k, ax in enumerate(axes)]  # each [N, G_k]
    return x, axes, loglik, logmass


def _log_joint_cells(loglik, logmass, chunk_fn):
    """Iterate over chunks of components: yield (slice, log[p(y|x_g) P_n(cell_g)] of shape [n, *grid])."""
    N = logmass[0].shape[0]
    G = loglik.numel()
    step = max(1, _CHUNK_ELEMS // max(1, G))
    for i in range(0, N, step):
        if len(logmass) == 1:
            lj = loglik[None, :] + logmass[0][i:i + step]
        else:
            lj = loglik[None] + logmass[0][i:i + step, :, None] + logmass[1][i:i + step, None, :]
        chunk_fn(slice(i, i + step), lj)


def component_log_evidence(forward: Forward, x_train, y, sigma: float, gamma: float, grid) -> torch.Tensor:
    """``log Z_n``, ``Z_n = ∫ N(x; x_n, sigma^2 I) N(y; F(x), gamma^2 I) dx``, by quadrature.

    Product rule: the likelihood is taken constant on each grid cell (cells end halfway
    between nodes) and the Gaussian component is integrated exactly over each cell.  For
    ``sigma`` large against the spacing this is the midpoint rule; as ``sigma -> 0`` it tends
    to the likelihood at the node nearest ``x_n``, so the lookup limit is kept exactly when
    the training points lie on the grid.  Mass outside the grid is ignored.

    Parameters
    ----------
    forward, x_train, y, sigma, gamma
        As in :func:`component_weights`.
    grid : Tensor [G] (d = 1) or tuple (Tensor [G1], Tensor [G2]) (d = 2)

    Returns
    -------
    Tensor [N]
    """
    x, axes, loglik, logmass = _grid_terms(forward, x_train, y, sigma, gamma, grid)
    out = torch.empty(x.shape[0], dtype=x.dtype)

    def fn(sl, lj):
        out[sl] = torch.logsumexp(lj.reshape(lj.shape[0], -1), dim=1)

    _log_joint_cells(loglik, logmass, fn)
    return out


def component_weights(forward: Forward, x_train, y, sigma: float, gamma: float, grid) -> torch.Tensor:
    """Exact posterior component weights ``w_n = Z_n / sum_k Z_k`` by quadrature.

    The exact posterior under ``p_sigma`` is the mixture ``sum_n w_n p_n(x | y)`` with
    ``p_n(x | y) ∝ N(x; x_n, sigma^2 I) N(y; F(x), gamma^2 I)``.

    Parameters
    ----------
    forward : callable
        ``[B, d] -> [B, m]`` with d in {1, 2}.
    x_train : Tensor [N, d]
    y : Tensor [m]
    sigma : float
        Prior bandwidth, > 0.
    gamma : float
        Noise standard deviation, > 0.
    grid : Tensor [G] (d = 1) or tuple (Tensor [G1], Tensor [G2]) (d = 2)
        Strictly increasing nodes covering every training point.  Resolve the
        likelihood and the components: spacing below ``sigma`` and below the
        likelihood width.

    Returns
    -------
    Tensor [N]

    Raises
    ------
    ValueError, TypeError
        Bad parameters, shapes, a grid that does not cover the training points, or d > 2.
    """
    return torch.softmax(component_log_evidence(forward, x_train, y, sigma, gamma, grid), dim=0)


def grid_posterior(forward: Forward, x_train, y, sigma: float, gamma: float, grid) -> torch.Tensor:
    """Exact posterior density ``p(x | y) ∝ p_sigma(x) N(y; F(x), gamma^2 I)`` at the grid nodes.

    Evaluated in log-space at every node and normalized so that the density times the
    cell volumes sums to one.  Resolve the bandwidth (grid spacing below ``sigma``) for a
    faithful picture; the component weights themselves come from :func:`component_weights`,
    which stays accurate for any ``sigma``.

    Parameters
    ----------
    As in :func:`component_weights`.

    Returns
    -------
    Tensor [G] (d = 1) or [G1, G2] (d = 2)
        Non-negative, with ``(density * cell_volumes(grid)).sum() == 1``.
    """
    sigma = check_positive("sigma", sigma, square=True)
    gamma = check_positive("gamma", gamma, square=True)
    x, yt, _ = _prepare(forward, x_train, y)
    axes = _axes(grid, x.shape[1], x.dtype)
    _check_covers(axes, x)
    g = tuple(axes) if len(axes) == 2 else axes[0]
    pts = grid_points(g).to(x.dtype)
    Fg = apply_forward(forward, pts, yt.shape[0], what="the grid")
    loglik = -((yt[None, :] - Fg) ** 2).sum(1) / (2.0 * gamma ** 2)
    logprior = torch.logsumexp(-pairwise_sq_dists(pts, x) / (2.0 * sigma ** 2), dim=1)
    vol = cell_volumes(g).to(x.dtype)
    logp = (loglik + logprior).reshape(vol.shape) + vol.log()
    logp = logp - torch.logsumexp(logp.reshape(-1), dim=0)
    return logp.exp() / vol


def grid_density(mixture: LinearizedMixture, grid) -> torch.Tensor:
    """A linearized mixture's density at the grid nodes, renormalized on the grid.

    Parameters
    ----------
    mixture : LinearizedMixture
    grid : Tensor [G] or tuple (Tensor [G1], Tensor [G2])

    Returns
    -------
    Tensor [G] or [G1, G2]
        ``(density * cell_volumes(grid)).sum() == 1``, comparable with :func:`grid_posterior`.
    """
    if not isinstance(mixture, LinearizedMixture):
        raise TypeError(f"mixture: expected a LinearizedMixture, got {type(mixture).__name__}")
    axes = _axes(grid, mixture.dim, mixture.means.dtype)
    pts = grid_points(tuple(axes) if len(axes) == 2 else axes[0]).to(mixture.means.dtype)
    vol = cell_volumes(tuple(axes) if len(axes) == 2 else axes[0]).to(mixture.means.dtype)
    logp = mixture.log_prob(pts).reshape(vol.shape) + vol.log()
    logp = logp - torch.logsumexp(logp.reshape(-1), dim=0)
    return logp.exp() / vol


def total_variation(p, q, grid) -> float:
    """Total-variation distance ``1/2 ∫ |p - q|`` between two densities on the same grid.

    Parameters
    ----------
    p, q : Tensor [G] or [G1, G2]
        Densities on ``grid`` (for example from :func:`grid_posterior`, :func:`grid_density`).
    grid : Tensor [G] or tuple (Tensor [G1], Tensor [G2])

    Returns
    -------
    float in [0, 1] (for normalized inputs)
    """
    vol = cell_volumes(grid)
    p = as_tensor("p", p).to(torch.float64)
    q = as_tensor("q", q).to(torch.float64)
    if p.shape != vol.shape or q.shape != vol.shape:
        raise ValueError(f"p, q: expected the grid's shape {list(vol.shape)}, got {list(p.shape)} and {list(q.shape)}")
    return float(0.5 * ((p - q).abs() * vol).sum())


# ----------------------------------------------------------------------------- importance sampling
def component_weights_is(forward: Forward, x_train, y, sigma: float, gamma: float, n_samples: int = 256,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Exact component weights by importance sampling, in any dimension.

    For every n, ``Z_n = E_q[N(x; x_n, sigma^2 I) N(y; F(x), gamma^2 I) / q(x)]`` with the
    proposal ``q`` = component n of the linearized mixture (a Gaussian close to
    ``p_n(x | y)``, so the estimate is exact for linear F and accurate for mildly
    nonlinear F).  Computed in log-space.

    Parameters
    ----------
    forward, x_train, y, sigma, gamma
        As in :func:`linearized_mixture`.
    n_samples : int
        Samples per component, >= 1.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor [N]
    """
    check_generator(generator)
    n_samples = check_int("n_samples", n_samples, low=1)
    lm = linearized_mixture(forward, x_train, y, sigma, gamma, logdet=True)
    x, yt, _ = _prepare(forward, x_train, y)
    N, d = x.shape
    m = yt.shape[0]
    z = torch.randn(N, n_samples, d, 1, generator=generator, dtype=x.dtype)
    L = lm._L  # precision Cholesky, [N, d, d]
    dx = torch.linalg.solve_triangular(L.mT[:, None].expand(N, n_samples, d, d), z, upper=True)[..., 0]
    xs = lm.means[:, None, :] + dx  # [N, S, d]
    # log q: Gaussian with precision L L^T
    half_logdet_prec = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # [N]
    logq = half_logdet_prec[:, None] - 0.5 * d * _LOG2PI - 0.5 * (z[..., 0] ** 2).sum(-1)
    logprior = -((xs - x[:, None, :]) ** 2).sum(-1) / (2 * sigma ** 2) - 0.5 * d * (_LOG2PI + 2 * math.log(sigma))
    Fs = apply_forward(forward, xs.reshape(N * n_samples, d), m, what="importance samples").reshape(N, n_samples, m)
    loglik = -((yt - Fs) ** 2).sum(-1) / (2 * gamma ** 2)
    logZ = torch.logsumexp(logprior + loglik - logq, dim=1) - math.log(n_samples)
    return torch.softmax(logZ, dim=0)


# ----------------------------------------------------------------------------- summaries
def effective_components(weights) -> float:
    """Effective number of components ``exp(H)``, ``H = -sum_n w_n log w_n``.

    It counts components that carry weight, not modes of the density: overlapping
    components with equal weights give ``exp(H) = N`` even for a unimodal posterior.

    Parameters
    ----------
    weights : Tensor [N]
        Non-negative, not all zero (normalized here).

    Returns
    -------
    float in [1, N]
    """
    w = as_tensor("weights", weights)
    if w.dim() != 1 or w.shape[0] == 0:
        raise ValueError(f"weights: expected a non-empty 1-D tensor [N], got shape {list(w.shape)}")
    if (w < 0).any():
        raise ValueError("weights: entries must be in [0, inf) (non-negative)")
    s = w.sum()
    if not s > 0:
        raise ValueError("weights: must not all be zero (sum must be in (0, inf))")
    p = (w / s).to(torch.float64)
    H = -torch.special.xlogy(p, p).sum()
    return float(torch.exp(H).clamp(1.0, float(w.shape[0])))


def sigma_crit(forward: Forward, x_train, gamma: float) -> float:
    """Heuristic critical bandwidth ``sigma_crit = sqrt(delta * gamma / mean_n |F'(x_n)|)``.

    Below it, the small-sigma shift of a component, about ``sigma^2 |F'| / gamma``, stays
    below the spacing ``delta`` between training points, so each component stays pinned
    to its training example.  ``delta`` is the mean nearest-neighbour distance of the
    training set; ``|F'(x_n)|`` is the spectral norm of the Jacobian (the absolute
    derivative in 1-D).

    Parameters
    ----------
    forward : callable
        ``[B, d] -> [B, m]``.
    x_train : Tensor [N, d]
        At least 2 distinct points.
    gamma : float
        Noise standard deviation, > 0.

    Returns
    -------
    float
        ``inf`` if F has zero Jacobian at every training point.
    """
    gamma = check_positive("gamma", gamma, square=True)
    check_forward(forward)
    x = as_train(x_train)
    if x.shape[0] < 2:
        raise ValueError(f"x_train: sigma_crit needs N >= 2 training points (a spacing), got N = {x.shape[0]}")
    Fx = forward(x[:1])
    if not isinstance(Fx, torch.Tensor) or Fx.dim() != 2 or Fx.shape[0] != 1:
        raise ValueError(f"forward: must map [B, d] -> [B, m]; on shape [1, {x.shape[1]}] it returned "
                         f"{list(Fx.shape) if isinstance(Fx, torch.Tensor) else type(Fx).__name__}")
    J = jacobians(forward, x, int(Fx.shape[1]))
    D = pairwise_sq_dists(x, x)
    D.fill_diagonal_(math.inf)
    nn = D.min(1).values.sqrt()
    if not (nn > 0).all():
        raise ValueError("x_train: sigma_crit needs distinct training points (found duplicates)")
    delta = float(nn.mean())
    slope = float(torch.linalg.matrix_norm(J, ord=2).mean())
    if slope == 0.0:
        return math.inf
    return math.sqrt(delta * gamma / slope)


# ----------------------------------------------------------------------------- the paper's stylized problems
class Problem:
    """A small inverse problem: forward map, training set, data, noise level and a quadrature grid.

    Attributes
    ----------
    forward : callable ``[B, d] -> [B, m]``
    x_train : Tensor [N, d]
    y : Tensor [m]
    gamma : float
    grid : Tensor [G] (d = 1) or tuple (Tensor [G1], Tensor [G2]) (d = 2)
    x_true : Tensor [d] or None
    name : str
    """

    def __init__(self, forward, x_train, y, gamma, grid, x_true=None, name=""):
        self.forward = forward
        self.x_train = x_train
        self.y = y
        self.gamma = gamma
        self.grid = grid
        self.x_true = x_true
        self.name = name

    def __repr__(self) -> str:
        return f"Problem({self.name!r}, N={self.x_train.shape[0]}, d={self.x_train.shape[1]}, gamma={self.gamma:g})"

    def args(self):
        """``(forward, x_train, y)``: the first three arguments of this module's functions."""
        return self.forward, self.x_train, self.y


def cubic_forward(x: torch.Tensor) -> torch.Tensor:
    """The 1-D forward map of the paper's stylized problem, ``F(x) = x + 0.3 x^3``: [B, 1] -> [B, 1]."""
    return x + 0.3 * x ** 3


def pentagon_forward(x: torch.Tensor) -> torch.Tensor:
    """The 2-D forward map ``F(x) = [x1 + 0.3 x1 x2, x2 + 0.2 x1^2]``: [B, 2] -> [B, 2]."""
    return torch.stack([x[:, 0] + 0.3 * x[:, 0] * x[:, 1], x[:, 1] + 0.2 * x[:, 0] ** 2], dim=1)


def stylized_1d(y: float = 0.0, gamma: float = 0.3, n_grid: int = 500, x_train=None) -> Problem:
    """The paper's 1-D problem: F(x) = x + 0.3x^3, training points {-1.5, -0.4, 0.4, 1.2, 2.5},
    noise-free y = 0, gamma = 0.3, a grid of 500 nodes on [-3.5, 3.5].

    Parameters
    ----------
    y : float
        The datum (finite).
    gamma : float
        Noise standard deviation, > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5], >= 3.
    x_train : Tensor [N, 1], optional
        Replaces the paper's five training points (must lie in [-3.5, 3.5]).
    """
    gamma = check_positive("gamma", gamma, square=True)
    n_grid = check_int("n_grid", n_grid, low=3)
    if x_train is None:
        x_train = torch.tensor([[-1.5], [-0.4], [0.4], [1.2], [2.5]], dtype=torch.float64)
    yt = as_data(y, torch.float64)
    grid = torch.linspace(-3.5, 3.5, n_grid, dtype=torch.float64)
    return Problem(cubic_forward, as_train(x_train).to(torch.float64), yt, gamma, grid, name="cubic 1-D")


def stylized_2d(gamma: float = 0.3, n_grid: int = 200, radius: float = 2.0, scale_true: float = 0.7) -> Problem:
    """The paper's 2-D problem: five training points on a pentagon of radius 2,
    ``F(x) = [x1 + 0.3 x1 x2, x2 + 0.2 x1^2]``, true model ``0.7 x_0``, noise-free data,
    gamma = 0.3, a ``200 x 200`` grid over the training points' bounding box +- 0.8.
    """
    gamma = check_positive("gamma", gamma, square=True)
    radius = check_positive("radius", radius)
    n_grid = check_int("n_grid", n_grid, low=3)
    ang = 2.0 * math.pi * torch.arange(5, dtype=torch.float64) / 5
    x_train = radius * torch.stack([ang.cos(), ang.sin()], dim=1)
    x_true = float(scale_true) * x_train[0]
    y = pentagon_forward(x_true[None])[0]
    lo = x_train.min(0).values - 0.8
    hi = x_train.max(0).values + 0.8
    grid = (torch.linspace(float(lo[0]), float(hi[0]), n_grid, dtype=torch.float64),
            torch.linspace(float(lo[1]), float(hi[1]), n_grid, dtype=torch.float64))
    return Problem(pentagon_forward, x_train, y, gamma, grid, x_true=x_true, name="pentagon 2-D")

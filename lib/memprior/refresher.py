"""Numerical checks of the prerequisites the book uses (the refresher page, ``book/refresher.md``).

Each function states one identity or inequality, computes both of its sides by two independent routes on a
small seeded example, and returns a frozen dataclass with the two sides and their difference, so that a
student can run it, read the numbers, and change the sizes or the seed:

=============================  ====================================================================
:func:`gaussian_conditioning`  the posterior of a linear-Gaussian model: covariance (Schur) form
                               against precision form, and the evidence
:func:`woodbury`               the Woodbury identity and the matrix-determinant lemma, in the form
                               the linearized mixture of chapter 3 uses them
:func:`jensen`                 Jensen's inequality: the log-normal gap, and the gap between the
                               likelihood of the mean and the mean likelihood (the DPS gap)
:func:`tweedie`                Tweedie's formula: the posterior mean of a noised variable from the
                               score of its density, against quadrature
:func:`importance_sampling`    an unbiased importance estimate of a normalizing constant, and the
                               downward bias of its logarithm
:func:`complex_gaussian`       the circular complex Gaussian: its moments and its negative
                               log-likelihood against the real-stacked Gaussian
=============================  ====================================================================

Everything is float64 and reproducible from ``seed``.  The tests (``tests/test_course.py``) check the
agreement of every pair of sides, so each function doubles as a worked example of the identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._checks import check_int, check_positive

__all__ = [
    "Conditioning", "gaussian_conditioning", "Woodbury", "woodbury", "Jensen", "jensen", "Tweedie", "tweedie",
    "ImportanceSampling", "importance_sampling", "ComplexGaussian", "complex_gaussian",
]

_F64 = torch.float64


def _gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(check_int("seed", seed, low=0))


def _spd(n: int, g: torch.Generator) -> torch.Tensor:
    """A well-conditioned symmetric positive-definite matrix [n, n]."""
    a = torch.randn(n, n, dtype=_F64, generator=g)
    return a @ a.T / n + torch.eye(n, dtype=_F64)


# ----------------------------------------------------------------------------- Gaussian conditioning
@dataclass(frozen=True)
class Conditioning:
    """Posterior of ``x ~ N(mu, P)`` given ``y = A x + e``, ``e ~ N(0, gamma^2 I)``, by two routes.

    Attributes
    ----------
    mean_schur, mean_precision : Tensor [d]
        Posterior mean from the covariance (Schur-complement) form and from the precision form.
    cov_schur, cov_precision : Tensor [d, d]
        Posterior covariance from the two forms.
    max_abs_diff : float
        Largest absolute difference between the two forms (means and covariances together).
    log_evidence, log_evidence_ratio : float
        ``log N(y; A mu, A P A^T + gamma^2 I)``, and the same number from Bayes' rule at an arbitrary
        point, ``log p(x) + log p(y | x) - log p(x | y)``.
    """

    mean_schur: torch.Tensor
    mean_precision: torch.Tensor
    cov_schur: torch.Tensor
    cov_precision: torch.Tensor
    max_abs_diff: float
    log_evidence: float
    log_evidence_ratio: float


def _mvn_logpdf(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    return float(torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x))


def gaussian_conditioning(d: int = 4, m: int = 3, gamma: float = 0.5, seed: int = 0) -> Conditioning:
    """Condition a Gaussian prior on linear data, in covariance form and in precision form.

    Covariance form: ``mean = mu + P A^T S^{-1} (y - A mu)``, ``cov = P - P A^T S^{-1} A P`` with
    ``S = A P A^T + gamma^2 I`` (an ``m x m`` solve).  Precision form: ``cov = (P^{-1} + A^T A / gamma^2)^{-1}``,
    ``mean = cov (P^{-1} mu + A^T y / gamma^2)`` (a ``d x d`` solve).

    Parameters
    ----------
    d, m : int >= 1
        Dimensions of the model and of the data.
    gamma : float > 0
        Noise standard deviation.
    seed : int >= 0
        Seeds the random ``mu``, ``P``, ``A`` and ``y``.

    Returns
    -------
    Conditioning
    """
    d = check_int("d", d, low=1)
    m = check_int("m", m, low=1)
    gamma = check_positive("gamma", gamma)
    g = _gen(seed)
    mu = torch.randn(d, dtype=_F64, generator=g)
    P = _spd(d, g)
    A = torch.randn(m, d, dtype=_F64, generator=g)
    y = torch.randn(m, dtype=_F64, generator=g)
    S = A @ P @ A.T + gamma ** 2 * torch.eye(m, dtype=_F64)
    K = torch.linalg.solve(S, A @ P).T                     # P A^T S^{-1}
    mean_s = mu + K @ (y - A @ mu)
    cov_s = P - K @ A @ P
    prec = torch.linalg.inv(P) + A.T @ A / gamma ** 2
    cov_p = torch.linalg.inv(prec)
    mean_p = cov_p @ (torch.linalg.solve(P, mu) + A.T @ y / gamma ** 2)
    diff = max(float((mean_s - mean_p).abs().max()), float((cov_s - cov_p).abs().max()))
    log_ev = _mvn_logpdf(y, A @ mu, S)
    x0 = torch.zeros(d, dtype=_F64)                        # any point works: Bayes' rule holds at every x
    ratio = (_mvn_logpdf(x0, mu, P) + _mvn_logpdf(y, A @ x0, gamma ** 2 * torch.eye(m, dtype=_F64))
             - _mvn_logpdf(x0, mean_p, (cov_p + cov_p.T) / 2))
    return Conditioning(mean_s, mean_p, cov_s, cov_p, diff, log_ev, float(ratio))


# ----------------------------------------------------------------------------- Woodbury and determinants
@dataclass(frozen=True)
class Woodbury:
    """The data-space and model-space routes to the linearized mixture's weight terms.

    Attributes
    ----------
    logdet_data, logdet_model : float
        ``log det C`` with ``C = gamma^2 I_m + sigma^2 J J^T`` computed in data space (``m x m``), and by the
        matrix-determinant lemma in model space, ``2m log gamma + 2d log sigma + log det(Sigma^{-1})`` with
        ``Sigma^{-1} = I/sigma^2 + J^T J / gamma^2``.
    quad_data, quad_model : float
        ``r^T C^{-1} r`` in data space, and by the Woodbury identity,
        ``|r|^2/gamma^2 - (J^T r)^T Sigma (J^T r)/gamma^4``.
    inverse_error : float
        Largest absolute entry of ``C^{-1}`` (Woodbury form) minus ``C^{-1}`` (direct inverse).
    """

    logdet_data: float
    logdet_model: float
    quad_data: float
    quad_model: float
    inverse_error: float


def woodbury(d: int = 5, m: int = 3, sigma: float = 0.3, gamma: float = 0.2, seed: int = 0) -> Woodbury:
    """Check the matrix-determinant lemma and the Woodbury identity on a random Jacobian ``J [m, d]``.

    Parameters
    ----------
    d, m : int >= 1
        Model and data dimensions (either may be the larger).
    sigma, gamma : float > 0
        Prior bandwidth and noise standard deviation.
    seed : int >= 0

    Returns
    -------
    Woodbury
    """
    d = check_int("d", d, low=1)
    m = check_int("m", m, low=1)
    sigma = check_positive("sigma", sigma)
    gamma = check_positive("gamma", gamma)
    g = _gen(seed)
    J = torch.randn(m, d, dtype=_F64, generator=g)
    r = torch.randn(m, dtype=_F64, generator=g)
    C = gamma ** 2 * torch.eye(m, dtype=_F64) + sigma ** 2 * J @ J.T
    prec = torch.eye(d, dtype=_F64) / sigma ** 2 + J.T @ J / gamma ** 2          # Sigma^{-1}
    Sigma = torch.linalg.inv(prec)
    logdet_data = float(torch.linalg.slogdet(C)[1])
    logdet_model = 2 * m * math.log(gamma) + 2 * d * math.log(sigma) + float(torch.linalg.slogdet(prec)[1])
    quad_data = float(r @ torch.linalg.solve(C, r))
    Jr = J.T @ r
    quad_model = float(r @ r / gamma ** 2 - Jr @ Sigma @ Jr / gamma ** 4)
    C_inv_w = torch.eye(m, dtype=_F64) / gamma ** 2 - J @ Sigma @ J.T / gamma ** 4
    err = float((C_inv_w - torch.linalg.inv(C)).abs().max())
    return Woodbury(logdet_data, logdet_model, quad_data, quad_model, err)


# ----------------------------------------------------------------------------- Jensen
@dataclass(frozen=True)
class Jensen:
    """Two instances of Jensen's inequality, with their exact gaps.

    Attributes
    ----------
    mean_of_exp, exp_of_mean : float
        ``E[exp(X)] = exp(mu + s^2/2)`` and ``exp(E[X]) = exp(mu)`` for ``X ~ N(mu, s^2)``: the first is
        the larger (``exp`` is convex).
    mean_of_exp_mc, mean_of_exp_se : float
        A Monte Carlo estimate of ``E[exp(X)]`` and its standard error.
    mean_likelihood, likelihood_of_mean : float
        For ``x0`` equal to ``-a`` or ``+a`` with probability 1/2 each and a Gaussian likelihood
        ``N(y; x0, gamma^2)``: the mean likelihood ``E[p(y | x0)]`` (what a posterior sampler needs) and
        the likelihood at the mean ``p(y | E[x0])`` (what DPS evaluates).  With ``y = a`` their ratio is about
        ``2 exp(-a^2 / (2 gamma^2))``: the gap is exponentially large in ``a / gamma``.
    """

    mean_of_exp: float
    exp_of_mean: float
    mean_of_exp_mc: float
    mean_of_exp_se: float
    mean_likelihood: float
    likelihood_of_mean: float


def jensen(mu: float = 0.0, s: float = 0.5, a: float = 1.0, gamma: float = 0.3, n: int = 100_000,
           seed: int = 0) -> Jensen:
    """Jensen's inequality ``f(E[X]) <= E[f(X)]`` for convex ``f``, in the two forms the book uses.

    Parameters
    ----------
    mu : float
        Mean of the Gaussian ``X``.
    s : float > 0
        Its standard deviation.
    a : float > 0
        Half the distance between the two atoms of the two-point example.
    gamma : float > 0
        Noise standard deviation of its likelihood (the datum is ``y = a``).
    n : int >= 2
        Monte Carlo draws.
    seed : int >= 0

    Returns
    -------
    Jensen
    """
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu):
        raise ValueError(f"mu: must be a finite number, got {mu!r}")
    s = check_positive("s", s)
    a = check_positive("a", a)
    gamma = check_positive("gamma", gamma)
    n = check_int("n", n, low=2)
    g = _gen(seed)
    ex = torch.exp(mu + s * torch.randn(n, dtype=_F64, generator=g))

    def lik(x0: float) -> float:
        return math.exp(-(a - x0) ** 2 / (2 * gamma ** 2)) / math.sqrt(2 * math.pi * gamma ** 2)

    return Jensen(mean_of_exp=math.exp(mu + s ** 2 / 2), exp_of_mean=math.exp(mu),
                  mean_of_exp_mc=float(ex.mean()), mean_of_exp_se=float(ex.std() / math.sqrt(n)),
                  mean_likelihood=0.5 * (lik(-a) + lik(a)), likelihood_of_mean=lik(0.0))


# ----------------------------------------------------------------------------- Tweedie
@dataclass(frozen=True)
class Tweedie:
    """Posterior mean of ``x0`` given ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``, by two routes.

    Attributes
    ----------
    x_t : Tensor [n]
        The points where both sides are evaluated.
    tweedie_mean : Tensor [n]
        ``(x_t + (1 - abar) d/dx log p_t(x_t)) / sqrt(abar)``, with ``p_t`` the closed-form density of ``x_t``
        (a Gaussian mixture) and its derivative by autograd.
    quadrature_mean : Tensor [n]
        ``E[x0 | x_t]`` by quadrature of ``x0 p(x0) p(x_t | x0)`` on a fine grid.
    max_abs_diff : float
    """

    x_t: torch.Tensor
    tweedie_mean: torch.Tensor
    quadrature_mean: torch.Tensor
    max_abs_diff: float


def tweedie(abar: float = 0.5, n: int = 9, grid: int = 20001, seed: int = 0) -> Tweedie:
    """Check Tweedie's formula on a 1-D prior that is a mixture of three Gaussians of different widths.

    Parameters
    ----------
    abar : float in (0, 1)
        The noise level's ``alpha_bar``.
    n : int >= 1
        Number of evaluation points ``x_t`` (evenly spaced on [-2, 2]).
    grid : int >= 101
        Quadrature nodes on [-10, 10].
    seed : int >= 0
        Seeds the mixture's means, widths and weights.

    Returns
    -------
    Tweedie
    """
    abar = check_positive("abar", abar, upper=1.0)
    if abar >= 1.0:
        raise ValueError(f"abar: must be in (0, 1), got {abar}")
    n = check_int("n", n, low=1)
    grid = check_int("grid", grid, low=101)
    g = _gen(seed)
    means = 2 * torch.randn(3, dtype=_F64, generator=g)
    widths = 0.2 + torch.rand(3, dtype=_F64, generator=g)
    logw = torch.log_softmax(torch.randn(3, dtype=_F64, generator=g), 0)
    x_t = torch.linspace(-2, 2, n, dtype=_F64)

    # route 1: the noised density is again a mixture, N(sqrt(abar) mu_k, abar s_k^2 + 1 - abar)
    x = x_t.clone().requires_grad_(True)
    var_t = abar * widths ** 2 + (1 - abar)
    comp = -0.5 * (x[:, None] - math.sqrt(abar) * means) ** 2 / var_t - 0.5 * torch.log(2 * math.pi * var_t)
    log_pt = torch.logsumexp(logw + comp, 1)
    (score,) = torch.autograd.grad(log_pt.sum(), x)
    tw = (x_t + (1 - abar) * score) / math.sqrt(abar)

    # route 2: quadrature of the posterior p(x0 | x_t) on a grid
    x0 = torch.linspace(-10, 10, grid, dtype=_F64)
    log_prior = torch.logsumexp(logw - 0.5 * ((x0[:, None] - means) / widths) ** 2 - torch.log(widths), 1)
    log_lik = -0.5 * (x_t[:, None] - math.sqrt(abar) * x0) ** 2 / (1 - abar)
    post = torch.softmax(log_prior + log_lik, 1)
    quad = post @ x0
    return Tweedie(x_t, tw.detach(), quad, float((tw.detach() - quad).abs().max()))


# ----------------------------------------------------------------------------- importance sampling
@dataclass(frozen=True)
class ImportanceSampling:
    """Importance estimates of a normalizing constant ``Z``, repeated to show their bias and spread.

    Attributes
    ----------
    log_z : float
        The exact ``log Z``.
    z_hat : Tensor [repeats]
        Independent estimates ``Z_hat = mean_i target(x_i) / q(x_i)``, ``x_i ~ q``, each from ``n`` draws.
    mean_z_hat, se_mean_z_hat : float
        Their mean and its standard error: ``Z_hat`` is unbiased, so the mean is within a few standard
        errors of ``Z``.
    mean_log_z_hat, se_mean_log_z_hat : float
        The mean of ``log Z_hat`` and its standard error: biased low (Jensen), by about
        ``var(Z_hat) / (2 Z^2)``.
    delta_method_bias : float
        That approximation of the bias, ``-var(Z_hat) / (2 Z^2)``, with the variance estimated from
        ``z_hat``.
    ess_fraction : float
        The effective sample size of one estimate's weights, ``(sum w)^2 / sum w^2 / n``, averaged.
    """

    log_z: float
    z_hat: torch.Tensor
    mean_z_hat: float
    se_mean_z_hat: float
    mean_log_z_hat: float
    se_mean_log_z_hat: float
    delta_method_bias: float
    ess_fraction: float


def importance_sampling(n: int = 50, repeats: int = 2000, proposal_scale: float = 2.0,
                        seed: int = 0) -> ImportanceSampling:
    """Estimate ``Z`` of an unnormalized two-bump density by importance sampling from a wide Gaussian.

    The target is ``3 N(x; -1, 0.3^2) + 2 N(x; 1.5, 0.5^2)`` (so ``Z = 5``), the proposal ``N(0, s^2)``.

    Parameters
    ----------
    n : int >= 1
        Draws per estimate.
    repeats : int >= 2
        Independent estimates.
    proposal_scale : float > 0
        The proposal's standard deviation ``s``.
    seed : int >= 0

    Returns
    -------
    ImportanceSampling
    """
    n = check_int("n", n, low=1)
    repeats = check_int("repeats", repeats, low=2)
    s = check_positive("proposal_scale", proposal_scale)
    g = _gen(seed)
    x = s * torch.randn(repeats, n, dtype=_F64, generator=g)

    def log_normal(x, m, sd):
        return -0.5 * ((x - m) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))

    log_target = torch.logaddexp(math.log(3) + log_normal(x, -1.0, 0.3), math.log(2) + log_normal(x, 1.5, 0.5))
    log_w = log_target - log_normal(x, 0.0, s)
    log_zhat = torch.logsumexp(log_w, 1) - math.log(n)
    zhat = torch.exp(log_zhat)
    w = torch.exp(log_w - log_w.max(1, keepdim=True).values)
    ess = float(((w.sum(1) ** 2 / (w ** 2).sum(1)) / n).mean())
    r = math.sqrt(repeats)
    return ImportanceSampling(log_z=math.log(5.0), z_hat=zhat, mean_z_hat=float(zhat.mean()),
                              se_mean_z_hat=float(zhat.std() / r), mean_log_z_hat=float(log_zhat.mean()),
                              se_mean_log_z_hat=float(log_zhat.std() / r),
                              delta_method_bias=float(-zhat.var() / (2 * 25.0)), ess_fraction=ess)


# ----------------------------------------------------------------------------- complex Gaussians
@dataclass(frozen=True)
class ComplexGaussian:
    """Moments and likelihood of circular complex Gaussian noise with ``E|e|^2 = sigma^2``.

    Attributes
    ----------
    mean_abs2, var_real, var_imag, mean_real_imag, mean_e2 : float
        Monte Carlo ``E|e|^2`` (``sigma^2``), ``var(Re e)`` and ``var(Im e)`` (``sigma^2/2`` each),
        ``E[Re e Im e]`` (0) and the pseudo-variance ``|E[e^2]|`` (0: circularity).
    se_abs2 : float
        Standard error of ``mean_abs2``.
    nll_complex, nll_real_stacked : float
        ``sum |r|^2 / sigma^2`` (:func:`memprior.fwi.complex_nll`) and the negative log-density of the
        real-stacked residual ``[Re r, Im r]`` under ``N(0, (sigma^2/2) I)`` (``torch.distributions``),
        with the constant ``m log(pi sigma^2)`` removed: equal.
    """

    mean_abs2: float
    se_abs2: float
    var_real: float
    var_imag: float
    mean_real_imag: float
    mean_e2: float
    nll_complex: float
    nll_real_stacked: float


def complex_gaussian(sigma: float = 0.7, m: int = 6, n: int = 200_000, seed: int = 0) -> ComplexGaussian:
    """Draw circular complex Gaussian noise and check its moments and its likelihood.

    Parameters
    ----------
    sigma : float > 0
        ``sqrt(E|e|^2)`` per entry.
    m : int >= 1
        Entries of the residual whose likelihood is compared.
    n : int >= 2
        Monte Carlo draws for the moments.
    seed : int >= 0

    Returns
    -------
    ComplexGaussian
    """
    from .fwi import complex_nll, complex_noise

    sigma = check_positive("sigma", sigma)
    m = check_int("m", m, low=1)
    n = check_int("n", n, low=2)
    g = _gen(seed)
    e = complex_noise((n,), sigma, generator=g)
    a2 = e.abs() ** 2
    r = complex_noise((m,), sigma, generator=g)
    stacked = torch.cat([r.real, r.imag])
    normal = torch.distributions.Normal(torch.zeros(2 * m, dtype=_F64), sigma / math.sqrt(2.0))
    nll_real = float(-normal.log_prob(stacked).sum()) - m * math.log(math.pi * sigma ** 2)
    nll_c = float(complex_nll(r, torch.zeros(m, dtype=torch.complex128), sigma))
    return ComplexGaussian(mean_abs2=float(a2.mean()), se_abs2=float(a2.std() / math.sqrt(n)),
                           var_real=float(e.real.var()), var_imag=float(e.imag.var()),
                           mean_real_imag=float((e.real * e.imag).mean()), mean_e2=float((e ** 2).mean().abs()),
                           nll_complex=nll_c, nll_real_stacked=nll_real)

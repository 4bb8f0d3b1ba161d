"""Tests for memprior.posterior: identities, independent references, limits, bad input, extremes.

The chapter-3 sweeps and statistics (mode counts, exp(H) curves, linearization errors, the plateau
estimate) are tested in tests/test_experiments_stylized.py."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from memprior import posterior as P
from memprior.mixture import GaussianMixturePrior

torch.set_num_threads(1)
D64 = torch.float64

# The paper's 1-D stylized problem
X1 = torch.tensor([[-1.5], [-0.4], [0.4], [1.2], [2.5]], dtype=D64)
Y1 = torch.zeros(1, dtype=D64)
G1 = torch.linspace(-3.5, 3.5, 2001, dtype=D64)


def cubic(x):
    return x + 0.3 * x ** 3


def pentagon_forward(x):
    return torch.stack([x[:, 0] + 0.3 * x[:, 0] * x[:, 1], x[:, 1] + 0.2 * x[:, 0] ** 2], dim=1)


def linear(A, b):
    A = torch.as_tensor(A, dtype=D64)
    b = torch.as_tensor(b, dtype=D64)
    return lambda x: x @ A.T + b


def _linear_gauss_reference(A, b, x_train, y, sigma, gamma):
    """Closed-form posterior for linear F: weights N(y; A x_n + b, gamma^2 I + sigma^2 A A^T)."""
    A = torch.as_tensor(A, dtype=D64)
    m, d = A.shape
    C = gamma ** 2 * torch.eye(m, dtype=D64) + sigma ** 2 * A @ A.T
    logZ = torch.distributions.MultivariateNormal(x_train @ A.T + b, covariance_matrix=C).log_prob(y)
    Sigma = torch.linalg.inv(torch.eye(d, dtype=D64) / sigma ** 2 + A.T @ A / gamma ** 2)
    means = x_train + ((y - x_train @ A.T - b) @ A / gamma ** 2) @ Sigma.T
    return torch.softmax(logZ, 0), means, Sigma


# ----------------------------------------------------------------------------- lookup
def test_lookup_weights_closed_form():
    A = [[1.0, -2.0], [0.5, 0.3], [0.0, 1.0]]
    F = linear(A, [0.1, 0.0, -0.2])
    xt = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=D64)
    y = torch.tensor([0.3, -0.1, 0.4], dtype=D64)
    w = P.lookup_weights(F, xt, y, 0.5)
    misfit = ((y - F(xt)) ** 2).sum(1)
    ref = np.exp(-misfit.numpy() / 0.5)
    np.testing.assert_allclose(w.numpy(), ref / ref.sum(), rtol=1e-12)
    assert abs(float(w.sum()) - 1) < 1e-14


def test_lookup_limit_of_exact_and_linearized_weights():
    gamma = 0.3
    y = torch.tensor([0.45], dtype=D64)  # asymmetric data: the lookup weights are not 1/2-1/2
    look = P.lookup_weights(cubic, X1, y, gamma)
    # the grid contains the training points exactly -> quadrature keeps the limit exactly
    grid = torch.unique(torch.cat([G1, X1[:, 0]]))
    errs_exact, errs_lin = [], []
    for sigma in (0.1, 0.03, 0.01, 1e-3, 1e-4):
        errs_exact.append(float((P.component_weights(cubic, X1, y, sigma, gamma, grid) - look).abs().max()))
        errs_lin.append(float((P.linearized_mixture(cubic, X1, y, sigma, gamma).weights - look).abs().max()))
    assert errs_exact[-1] < 1e-6 and errs_lin[-1] < 1e-6
    assert errs_exact[0] > 1e-3  # the limit is approached, not trivially equal
    assert all(a >= b - 1e-12 for a, b in zip(errs_lin, errs_lin[1:]))


# ----------------------------------------------------------------------------- linearized mixture
@pytest.mark.parametrize("A", [
    [[1.0, -2.0], [0.5, 0.3], [0.0, 1.0]],  # m = 3 > d = 2: determinant lemma branch
    [[0.7, -1.3]],                           # m = 1 < d = 2: direct m x m branch
    [[2.0, 0.5], [-0.4, 1.0]],               # m = d
])
@pytest.mark.parametrize("logdet", [True, False])
def test_linear_forward_is_exact(A, logdet):
    m = len(A)
    b = torch.linspace(-0.2, 0.3, m, dtype=D64)
    F = linear(A, b)
    xt = torch.randn(7, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
    y = torch.linspace(0.4, -0.5, m, dtype=D64)
    sigma, gamma = 0.6, 0.25
    lm = P.linearized_mixture(F, xt, y, sigma, gamma, logdet=logdet)
    w_ref, mu_ref, S_ref = _linear_gauss_reference(A, b, xt, y, sigma, gamma)
    torch.testing.assert_close(lm.weights, w_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lm.means, mu_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lm.covs, S_ref.expand(7, 2, 2), rtol=1e-10, atol=1e-12)


def test_linear_forward_quadrature_agrees_1d_and_2d():
    F = linear([[1.7]], [0.2])
    xt = torch.tensor([[-1.0], [0.1], [0.9], [2.0]], dtype=D64)
    y = torch.tensor([0.5], dtype=D64)
    grid = torch.linspace(-5, 6, 4001, dtype=D64)
    for sigma in (0.5, 0.2):
        w_q = P.component_weights(F, xt, y, sigma, 0.3, grid)
        w_l = P.linearized_mixture(F, xt, y, sigma, 0.3).weights
        torch.testing.assert_close(w_q, w_l, rtol=0, atol=1e-6)
        dens = P.grid_posterior(F, xt, y, sigma, 0.3, grid)
        lin = P.linearized_mixture(F, xt, y, sigma, 0.3).log_prob(grid[:, None]).exp()
        torch.testing.assert_close(dens, lin, rtol=0, atol=1e-4)
    A = [[1.0, 0.4], [-0.3, 0.8]]
    F2 = linear(A, [0.0, 0.1])
    xt2 = torch.tensor([[-1.0, 0.5], [0.8, -0.2], [0.3, 1.1]], dtype=D64)
    y2 = torch.tensor([0.2, 0.4], dtype=D64)
    g2 = (torch.linspace(-4, 4, 321, dtype=D64), torch.linspace(-4, 4.5, 341, dtype=D64))
    w_q = P.component_weights(F2, xt2, y2, 0.4, 0.3, g2)
    w_ref, _, _ = _linear_gauss_reference(A, torch.tensor([0.0, 0.1], dtype=D64), xt2, y2, 0.4, 0.3)
    torch.testing.assert_close(w_q, w_ref, rtol=0, atol=1e-4)


def test_determinant_lemma_and_woodbury_identities():
    g = torch.Generator().manual_seed(2)
    for d, m in ((2, 5), (4, 1), (3, 3)):
        W = torch.randn(m, d, generator=g, dtype=D64)

        def F(x, W=W):
            return torch.tanh(x @ W.T) + 0.1 * (x ** 2) @ W.T

        xt = torch.randn(6, d, generator=g, dtype=D64)
        y = torch.randn(m, generator=g, dtype=D64)
        sigma, gamma = 0.7, 0.2
        lm = P.linearized_mixture(F, xt, y, sigma, gamma)
        J = lm.jacobians
        C = gamma ** 2 * torch.eye(m, dtype=D64) + sigma ** 2 * J @ J.mT
        # det C = gamma^(2m) sigma^(2d) det(Sigma^-1)
        torch.testing.assert_close(lm.logdet_data_cov, torch.linalg.slogdet(C).logabsdet, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(lm.logdet_data_cov,
                                   2 * m * math.log(gamma) + 2 * d * math.log(sigma) - torch.linalg.slogdet(lm.covs).logabsdet,
                                   rtol=1e-10, atol=1e-10)
        r = y - F(xt)
        quad = (r[:, None, :] @ torch.linalg.solve(C, r[..., None]))[:, 0, 0]
        torch.testing.assert_close(lm.data_quad, quad, rtol=1e-9, atol=1e-9)
        # Woodbury for the covariance and the push-through identity for the mean
        Sigma_w = sigma ** 2 * torch.eye(d, dtype=D64) - sigma ** 4 * J.mT @ torch.linalg.solve(C, J)
        torch.testing.assert_close(lm.covs, Sigma_w, rtol=1e-9, atol=1e-9)
        mu_w = xt + sigma ** 2 * (J.mT @ torch.linalg.solve(C, r[..., None]))[..., 0]
        torch.testing.assert_close(lm.means, mu_w, rtol=1e-9, atol=1e-9)


def test_logdet_omission_matters_for_varying_jacobians():
    lm1 = P.linearized_mixture(cubic, X1, Y1, 0.5, 0.3, logdet=True)
    lm0 = P.linearized_mixture(cubic, X1, Y1, 0.5, 0.3, logdet=False)
    # The two differ exactly by exp(-1/2 log det C_n), renormalized.
    ratio = torch.log_softmax(lm0.log_weights - 0.5 * lm1.logdet_data_cov, 0)
    torch.testing.assert_close(ratio, lm1.log_weights)
    assert float((lm1.weights - lm0.weights).abs().max()) > 0.03
    # small-sigma expansion of the missing term: 1/2 log det C_n - m log gamma ~ 1/2 (sigma/gamma)^2 |J_n|_F^2
    lm = P.linearized_mixture(cubic, X1, Y1, 1e-3, 0.3)
    approx = 0.5 * (1e-3 / 0.3) ** 2 * (lm.jacobians ** 2).sum((1, 2))
    torch.testing.assert_close(0.5 * lm.logdet_data_cov - math.log(0.3), approx, rtol=1e-3, atol=0)


def test_jacobians_match_finite_differences():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=D64)
    J = P.jacobians(pentagon_forward, x)
    h = 1e-6
    for k in range(2):
        e = torch.zeros(2, dtype=D64)
        e[k] = h
        fd = (pentagon_forward(x + e) - pentagon_forward(x - e)) / (2 * h)
        torch.testing.assert_close(J[:, :, k], fd, rtol=1e-7, atol=1e-8)


def test_linearized_mixture_density_and_sampling():
    lm = P.linearized_mixture(pentagon_forward, 2 * torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.2]], dtype=D64),
                              torch.tensor([0.3, 0.5], dtype=D64), 0.8, 0.5)
    # the density integrates to one
    a = torch.linspace(-7, 7, 401, dtype=D64)
    A, B = torch.meshgrid(a, a, indexing="ij")
    dens = lm.log_prob(torch.stack([A.reshape(-1), B.reshape(-1)], 1)).exp().reshape(401, 401)
    assert abs(float(torch.trapezoid(torch.trapezoid(dens, a, dim=1), a)) - 1) < 1e-6
    # sample moments equal the mixture's moments
    n = 200_000
    s = lm.sample(n, generator=torch.Generator().manual_seed(0))
    w = lm.weights
    mean = (w[:, None] * lm.means).sum(0)
    second = (w[:, None, None] * (lm.covs + lm.means[:, :, None] * lm.means[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    se = (torch.diagonal(cov) / n).sqrt()
    assert ((s.mean(0) - mean).abs() < 5 * se).all()
    torch.testing.assert_close(torch.cov(s.T), cov, rtol=0, atol=0.03)


# ----------------------------------------------------------------------------- exact posterior by quadrature
def test_quadrature_agrees_with_scipy_quad():
    sigma, gamma = 0.3, 0.3
    logZ = P.component_log_evidence(cubic, X1, Y1, sigma, gamma, torch.linspace(-6, 6, 6001, dtype=D64))
    for n, xn in enumerate(X1[:, 0].tolist()):
        def f(x):
            prior = math.exp(-(x - xn) ** 2 / (2 * sigma ** 2)) / math.sqrt(2 * math.pi * sigma ** 2)
            lik = math.exp(-(x + 0.3 * x ** 3) ** 2 / (2 * gamma ** 2)) / math.sqrt(2 * math.pi * gamma ** 2)
            return prior * lik
        ref, _ = integrate.quad(f, -6, 6, points=[xn, 0.0], limit=200, epsabs=1e-300, epsrel=1e-12)
        if ref > 1e-250:
            assert abs(float(logZ[n]) - math.log(ref)) < 1e-4, (n, float(logZ[n]), math.log(ref))


def test_grid_posterior_normalized_and_consistent_with_weights():
    sigma, gamma = 0.3, 0.3
    dens = P.grid_posterior(cubic, X1, Y1, sigma, gamma, G1)
    vol = P.cell_volumes(G1)
    assert abs(float((dens * vol).sum()) - 1) < 1e-12
    # it equals prior x likelihood, normalized (sigma resolved by the grid)
    prior = GaussianMixturePrior(X1, sigma)
    un = (prior.log_prob(G1[:, None]) - cubic(G1) ** 2 / (2 * gamma ** 2)).exp()
    ref = un / (un * vol).sum()
    torch.testing.assert_close(dens, ref, rtol=1e-9, atol=1e-12)
    # the posterior mass near each component equals the quadrature weights (components well separated at 0.05)
    s_small = 0.05
    dens = P.grid_posterior(cubic, X1, Y1, s_small, gamma, G1)
    w = P.component_weights(cubic, X1, Y1, s_small, gamma, G1)
    owner = (G1[:, None] - X1[:, 0][None]).abs().argmin(1)
    mass = torch.zeros(5, dtype=D64).index_add_(0, owner, dens * vol)
    torch.testing.assert_close(mass, w, rtol=0, atol=1e-3)
    # 2-D: normalized, shape [G1, G2]
    ang = 2 * math.pi * torch.arange(5, dtype=D64) / 5
    x2 = 2 * torch.stack([ang.cos(), ang.sin()], 1)
    y2 = pentagon_forward(0.7 * x2[:1])[0]
    g2 = (torch.linspace(-2.5, 2.8, 120, dtype=D64), torch.linspace(-2.8, 2.8, 130, dtype=D64))
    d2 = P.grid_posterior(pentagon_forward, x2, y2, 0.4, 0.3, g2)
    assert d2.shape == (120, 130)
    assert abs(float((d2 * P.cell_volumes(g2)).sum()) - 1) < 1e-12


def test_importance_sampling_weights_agree_with_quadrature():
    sigma, gamma = 0.3, 0.3
    w_q = P.component_weights(cubic, X1, Y1, sigma, gamma, torch.linspace(-4, 4, 4001, dtype=D64))
    w_is = P.component_weights_is(cubic, X1, Y1, sigma, gamma, n_samples=4000,
                                  generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w_is, w_q, rtol=0, atol=3e-3)


def test_linearized_approaches_exact_as_sigma_shrinks():
    grid = torch.linspace(-3.5, 3.5, 4001, dtype=D64)
    tv, werr = [], []
    for sigma in (0.5, 0.3, 0.15, 0.08, 0.04):
        exact = P.grid_posterior(cubic, X1, Y1, sigma, 0.3, grid)
        lm = P.linearized_mixture(cubic, X1, Y1, sigma, 0.3)
        tv.append(P.total_variation(exact, P.grid_density(lm, grid), grid))
        werr.append(float((lm.weights - P.component_weights(cubic, X1, Y1, sigma, 0.3, grid)).abs().sum()))
    assert all(a > b for a, b in zip(tv, tv[1:])), tv
    assert all(a > b for a, b in zip(werr, werr[1:])), werr
    assert tv[0] > 0.05 and tv[-1] < 0.01


def test_logdet_version_closer_to_exact_in_1d_problem():
    for sigma in (0.5, 0.3):
        w = P.component_weights(cubic, X1, Y1, sigma, 0.3, G1)
        e1 = float((P.linearized_mixture(cubic, X1, Y1, sigma, 0.3, logdet=True).weights - w).abs().sum())
        e0 = float((P.linearized_mixture(cubic, X1, Y1, sigma, 0.3, logdet=False).weights - w).abs().sum())
        assert e1 < e0


# ----------------------------------------------------------------------------- summaries
def test_effective_components():
    assert abs(P.effective_components(torch.ones(7)) - 7) < 1e-12
    assert P.effective_components(torch.tensor([0.0, 1.0, 0.0])) == 1.0
    w = torch.tensor([0.5, 0.25, 0.25], dtype=D64)
    H = -(w * w.log()).sum()
    assert abs(P.effective_components(w) - math.exp(float(H))) < 1e-12
    # unnormalized input is normalized
    assert abs(P.effective_components(3 * w) - P.effective_components(w)) < 1e-12


def test_sigma_crit_closed_form():
    xt = torch.linspace(-3, 3, 11, dtype=D64)[:, None]
    sc = P.sigma_crit(linear([[2.0]], [0.0]), xt, 0.3)
    assert abs(sc - math.sqrt(0.6 * 0.3 / 2.0)) < 1e-12
    # nonlinear: mean |F'| at the training points
    sc2 = P.sigma_crit(cubic, xt, 0.3)
    slope = float((1 + 0.9 * xt ** 2).mean())
    assert abs(sc2 - math.sqrt(0.6 * 0.3 / slope)) < 1e-12
    assert P.sigma_crit(lambda x: 0 * x, xt, 0.3) == math.inf


# ----------------------------------------------------------------------------- bad input
def _all_calls(forward=cubic, x=X1, y=Y1, sigma=0.3, gamma=0.3, grid=G1):
    return [
        lambda: P.lookup_weights(forward, x, y, gamma),
        lambda: P.linearized_mixture(forward, x, y, sigma, gamma),
        lambda: P.component_weights(forward, x, y, sigma, gamma, grid),
        lambda: P.grid_posterior(forward, x, y, sigma, gamma, grid),
    ]


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_sigma_and_gamma(bad):
    for call in _all_calls(sigma=bad)[1:]:
        with pytest.raises(ValueError, match=r"sigma: must be a finite number in \(0, inf\)"):
            call()
    for call in _all_calls(gamma=bad):
        with pytest.raises(ValueError, match=r"gamma: must be a finite number in \(0, inf\)"):
            call()
    with pytest.raises(ValueError, match="gamma"):
        P.sigma_crit(cubic, X1, bad)


def test_bad_training_set_and_shapes():
    for call in _all_calls(x=torch.zeros(0, 1, dtype=D64)):
        with pytest.raises(ValueError, match="x_train: the training set is empty"):
            call()
    for call in _all_calls(x=X1[:, 0]):
        with pytest.raises(ValueError, match=r"x_train: expected shape \[N, d\]"):
            call()
    # y of the wrong length: the forward map's output no longer matches -> named mismatch
    for call in _all_calls(y=torch.zeros(3, dtype=D64)):
        with pytest.raises(ValueError, match=r"m = len\(y\) = 3"):
            call()
    with pytest.raises(ValueError, match=r"y: expected shape \[m\]"):
        P.lookup_weights(cubic, X1, torch.zeros(2, 2), 0.3)


def test_nan_in_y():
    for call in _all_calls(y=torch.tensor([float("nan")], dtype=D64)):
        with pytest.raises(ValueError, match="y: contains NaN"):
            call()


def test_forward_wrong_shape_or_type():
    for bad in (lambda x: x[:, 0], lambda x: torch.cat([x, x], 1), lambda x: x[:1]):
        for call in _all_calls(forward=bad):
            with pytest.raises(ValueError, match=r"forward: must map \[B, d\] -> \[B, m\]"):
                call()
    for call in _all_calls(forward=lambda x: x.numpy()):
        with pytest.raises(TypeError, match="forward"):
            call()
    with pytest.raises(TypeError, match="forward: expected a callable"):
        P.lookup_weights("F", X1, Y1, 0.3)
    with pytest.raises(ValueError, match="forward: returned NaN"):
        P.lookup_weights(lambda x: x / 0.0, X1, Y1, 0.3)


def test_grid_must_cover_training_points():
    with pytest.raises(ValueError, match=r"grid: must cover the training points"):
        P.component_weights(cubic, X1, Y1, 0.3, 0.3, torch.linspace(-1, 1, 100, dtype=D64))
    with pytest.raises(ValueError, match=r"grid: must cover"):
        P.grid_posterior(cubic, X1, Y1, 0.3, 0.3, torch.linspace(-1.5, 2.4, 100, dtype=D64))
    ang = 2 * math.pi * torch.arange(5, dtype=D64) / 5
    x2 = 2 * torch.stack([ang.cos(), ang.sin()], 1)
    with pytest.raises(ValueError, match=r"grid\[1\]: must cover"):
        P.component_weights(pentagon_forward, x2, torch.zeros(2, dtype=D64), 0.3, 0.3,
                            (torch.linspace(-3, 3, 50, dtype=D64), torch.linspace(-1, 1, 50, dtype=D64)))
    with pytest.raises(ValueError, match="grid: grid nodes must be strictly increasing"):
        P.component_weights(cubic, X1, Y1, 0.3, 0.3, torch.linspace(3, -3, 100, dtype=D64))
    with pytest.raises(ValueError, match="grid: for d = 2"):
        P.component_weights(pentagon_forward, x2, torch.zeros(2, dtype=D64), 0.3, 0.3, G1)
    with pytest.raises(ValueError, match=r"d in \{1, 2\}"):
        P.component_weights(lambda x: x, torch.zeros(2, 3, dtype=D64), torch.zeros(3, dtype=D64), 0.3, 0.3, G1)


def test_bad_summary_inputs():
    with pytest.raises(ValueError, match="weights"):
        P.effective_components(torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="weights"):
        P.effective_components(torch.zeros(3))
    with pytest.raises(ValueError, match="weights"):
        P.effective_components(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="x_train: sigma_crit needs N >= 2"):
        P.sigma_crit(cubic, X1[:1], 0.3)
    with pytest.raises(TypeError, match="logdet"):
        P.linearized_mixture(cubic, X1, Y1, 0.3, 0.3, logdet="yes")
    with pytest.raises(ValueError, match="jacobian"):
        P.linearized_mixture(cubic, X1, Y1, 0.3, 0.3, jacobian=torch.zeros(5, 2, 1))


# ----------------------------------------------------------------------------- extremes
@pytest.mark.parametrize("n_train", [1, 10_000])
@pytest.mark.parametrize("sigma,gamma", [(1e-4, 1e-3), (1e-4, 0.3), (5.0, 1e-3)])
def test_extremes_finite(n_train, sigma, gamma):
    xt = torch.linspace(-3, 3, n_train, dtype=D64)[:, None] if n_train > 1 else torch.tensor([[0.7]], dtype=D64)
    y = torch.tensor([0.37], dtype=D64)
    grid = torch.linspace(-3.5, 3.5, 501, dtype=D64)
    w_look = P.lookup_weights(cubic, xt, y, gamma)
    lm = P.linearized_mixture(cubic, xt, y, sigma, gamma)
    lm0 = P.linearized_mixture(cubic, xt, y, sigma, gamma, logdet=False)
    w_q = P.component_weights(cubic, xt, y, sigma, gamma, grid)
    dens = P.grid_posterior(cubic, xt, y, sigma, gamma, grid)
    for t in (w_look, lm.weights, lm0.weights, lm.means, lm.covs, w_q, dens, lm.log_prob(grid[:5, None]),
              lm.sample(7, generator=torch.Generator().manual_seed(0))):
        assert torch.isfinite(t).all()
    for w in (w_look, lm.weights, w_q):
        assert abs(float(w.sum()) - 1) < 1e-9
        assert 1.0 <= P.effective_components(w) <= n_train
    assert (torch.diagonal(lm.covs, dim1=1, dim2=2) > 0).all()


def test_extremes_2d_pentagon():
    ang = 2 * math.pi * torch.arange(5, dtype=D64) / 5
    x2 = 2 * torch.stack([ang.cos(), ang.sin()], 1)
    y2 = pentagon_forward(0.7 * x2[:1])[0]
    g2 = (torch.linspace(-2.4, 2.8, 100, dtype=D64), torch.linspace(-2.7, 2.7, 100, dtype=D64))
    for sigma, gamma in ((1e-4, 1e-3), (5.0, 1e-3), (1e-4, 10.0)):
        w = P.component_weights(pentagon_forward, x2, y2, sigma, gamma, g2)
        lm = P.linearized_mixture(pentagon_forward, x2, y2, sigma, gamma)
        assert torch.isfinite(w).all() and torch.isfinite(lm.weights).all() and torch.isfinite(lm.covs).all()
        assert torch.isfinite(P.grid_posterior(pentagon_forward, x2, y2, sigma, gamma, g2)).all()


def test_stylized_problems_match_paper_settings():
    p1 = P.stylized_1d()
    assert p1.x_train[:, 0].tolist() == [-1.5, -0.4, 0.4, 1.2, 2.5] and p1.gamma == 0.3
    assert p1.grid.shape == (500,) and float(p1.grid[0]) == -3.5 and float(p1.grid[-1]) == 3.5
    p2 = P.stylized_2d()
    torch.testing.assert_close(p2.x_train.norm(dim=1), torch.full((5,), 2.0, dtype=D64))
    torch.testing.assert_close(p2.y, pentagon_forward(0.7 * p2.x_train[:1])[0])
    assert p2.grid[0].shape == (200,) and abs(float(p2.grid[0][0]) - (float(p2.x_train[:, 0].min()) - 0.8)) < 1e-12

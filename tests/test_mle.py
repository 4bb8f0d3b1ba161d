"""Tests for memprior.mle: bandwidth curves, bounds, optima, and the flexible ML fit."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from memprior import mle
from memprior.mixture import GaussianMixturePrior

torch.set_num_threads(1)
D64 = torch.float64


def _sample(n, seed):
    return mle.reference_density().sample(n, generator=torch.Generator().manual_seed(seed))


def _numpy_kde_ll(xt, xe, sigma):
    """Direct numpy/scipy evaluation of the mean log kernel density (1-D), in log-space."""
    logk = stats.norm.logpdf(xe[:, None], loc=xt[None, :], scale=sigma)
    return float(np.mean(special.logsumexp(logk, axis=1) - np.log(xt.size)))


# ----------------------------------------------------------------------------- reference density

def test_reference_density_is_the_stated_two_gaussian_mixture():
    ref = mle.reference_density()
    assert ref.x_train.shape == (2, 1) and ref.sigma == mle.REFERENCE_SIGMA
    x = np.linspace(-4, 4, 9)
    want = 0.5 * (stats.norm.pdf(x, -1.0, 0.5) + stats.norm.pdf(x, 1.5, 0.5))
    got = ref.log_prob(torch.tensor(x)[:, None]).exp().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    s = _sample(20000, 3).numpy().ravel()
    assert abs(s.mean() - 0.25) < 0.03 and abs(s.var() - (0.25 + 1.5625)) < 0.06


# ----------------------------------------------------------------------------- likelihoods

def test_log_likelihood_matches_numpy():
    xt, xe = _sample(15, 0), _sample(40, 1)
    for sigma in (0.01, 0.2, 3.0):
        got = mle.log_likelihood(xt, xe, sigma)
        want = _numpy_kde_ll(xt.numpy().ravel(), xe.numpy().ravel(), sigma)
        assert got == pytest.approx(want, rel=1e-10, abs=1e-10)


def test_heldout_likelihood_matches_cross_entropy_by_quadrature():
    # The mean held-out log-likelihood over a large fresh sample estimates
    # int p_true(x) log p_sigma(x) dx; compare with scipy quadrature.
    xt = _sample(12, 0)
    sigma = 0.35
    kde = GaussianMixturePrior(xt, sigma)
    ref = mle.reference_density()

    def integrand(x):
        t = torch.tensor([[x]], dtype=D64)
        return float(ref.log_prob(t).exp() * kde.log_prob(t))

    want, _ = integrate.quad(integrand, -8, 9, limit=200, points=[-1.0, 1.5])
    xe = _sample(200_000, 5)
    vals = kde.log_prob(xe)
    got = float(vals.mean())
    se = float(vals.std()) / math.sqrt(xe.shape[0])
    assert abs(got - want) < 4 * se
    assert mle.log_likelihood(xt, xe, sigma) == pytest.approx(got, rel=1e-12)


def test_loo_matches_brute_force():
    xt = _sample(9, 2)
    sigma = 0.3
    brute = np.mean([mle.log_likelihood(torch.cat([xt[:i], xt[i + 1:]]), xt[i:i + 1], sigma)
                     for i in range(9)])
    assert mle.loo_log_likelihood(xt, sigma) == pytest.approx(brute, rel=1e-12)


def test_training_likelihood_rises_as_bandwidth_shrinks_between_the_bounds():
    xt = _sample(25, 0)
    sig = np.geomspace(1e-4, 5.0, 80)
    cur = mle.bandwidth_curve(xt, sig, _sample(500, 1))
    # monotone: larger training likelihood for every smaller bandwidth (1-D, these data)
    assert np.all(np.diff(cur.train) < 0)
    assert cur.best("train") == sig[0]
    lower = np.array([mle.self_term_bound(25, 1, s) for s in sig])
    upper = np.array([mle.width_upper_bound(1, s) for s in sig])
    assert np.all(cur.train >= lower - 1e-12) and np.all(cur.train <= upper + 1e-12)
    # the lower bound is attained as sigma -> 0 (distinct examples)
    assert cur.train[0] - lower[0] < 1e-9
    assert cur.train[0] > 5.0 > cur.train[-1] + 6  # grows without bound, like -log(sigma)
    assert np.all(np.isfinite(cur.train)) and np.all(np.isfinite(cur.heldout)) and np.all(np.isfinite(cur.loo))


def test_heldout_optimum_is_interior_and_beats_grid():
    xt, xe = _sample(30, 0), _sample(2000, 1)
    sig = np.geomspace(1e-3, 10.0, 60)
    cur = mle.bandwidth_curve(xt, sig, xe)
    k = int(np.argmax(cur.heldout))
    assert 0 < k < sig.size - 1
    # it falls on both sides: far below the optimum at small sigma
    assert cur.heldout[0] < cur.heldout[k] - 10 and cur.heldout[-1] < cur.heldout[k] - 1
    s_star = mle.heldout_optimum(xt, xe)
    assert sig[k - 1] <= s_star <= sig[k + 1]
    assert mle.log_likelihood(xt, xe, s_star) >= cur.heldout.max() - 1e-12
    # finite-difference check of stationarity in log sigma
    h = 1e-3
    f = lambda t: mle.log_likelihood(xt, xe, math.exp(t))  # noqa: E731
    t0 = math.log(s_star)
    assert abs((f(t0 + h) - f(t0 - h)) / (2 * h)) < 1e-3
    # leave-one-out optimum is interior too and of the same order
    s_loo = mle.loo_optimum(xt)
    assert 1e-3 < s_loo < 10.0 and 0.3 < s_loo / s_star < 3.0


def test_heldout_optimum_shrinks_with_n():
    xe = _sample(1000, 9)
    pool = _sample(400, 4)
    opts = [mle.heldout_optimum(pool[:n], xe, n_grid=30) for n in (10, 60, 400)]
    assert opts[0] > opts[1] > opts[2]


def test_duplicates_and_single_point_extremes():
    # when every example has a duplicate, the LOO likelihood is unbounded too ...
    xt = torch.tensor([[0.0], [0.0], [1.0], [1.0]], dtype=D64)
    assert mle.loo_log_likelihood(xt, 1e-4) > mle.loo_log_likelihood(xt, 1e-2) > 0
    # ... while one isolated example sends it to -inf (finite in log-space)
    xt3 = torch.tensor([[0.0], [0.0], [1.0]], dtype=D64)
    v = mle.loo_log_likelihood(xt3, 1e-4)
    assert math.isfinite(v) and v < -1e6
    one = torch.tensor([[0.3, -0.2]], dtype=D64)
    cur = mle.bandwidth_curve(one, [1e-4, 1.0], one)
    assert cur.loo is None
    np.testing.assert_allclose(cur.train, [mle.width_upper_bound(2, 1e-4), mle.width_upper_bound(2, 1.0)])
    far = mle.log_likelihood(one, torch.tensor([[1e3, 1e3]], dtype=D64), 1e-4)
    assert math.isfinite(far) and far < -1e12


def test_large_n_is_finite():
    xt = _sample(10_000, 0)
    v = mle.log_likelihood(xt, _sample(50, 1), 1e-4)
    assert math.isfinite(v)


# ----------------------------------------------------------------------------- flexible model

def test_mixture_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(4, 2, generator=g, dtype=D64)
    logw = torch.log_softmax(torch.randn(4, generator=g, dtype=D64), 0)
    x = torch.randn(7, 2, generator=g, dtype=D64)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logw),
        torch.distributions.Independent(torch.distributions.Normal(means, 0.7), 1))
    torch.testing.assert_close(mle.mixture_log_prob(x, means, logw, 0.7), mix.log_prob(x), rtol=1e-12, atol=1e-12)


def test_flexible_mixture_collapses_onto_the_training_set():
    xt = torch.tensor([[-1.6], [-1.0], [-0.5], [0.9], [1.4], [2.0]], dtype=D64)
    xe = _sample(400, 1)
    fit = mle.fit_flexible_mixture(xt, steps=1500, x_test=xe, record_every=100, seed=0)
    h = fit.history
    assert h["step"][-1] == 1500 and len(h["sigma"]) == 16
    # the width shrinks by orders of magnitude and the training likelihood keeps rising
    assert fit.sigma < 0.01 * h["sigma"][0]
    assert h["train_ll"][-1] > h["train_ll"][0] + 4
    assert h["train_ll"][-1] == pytest.approx(float(fit.log_prob(xt).mean()), rel=1e-10)
    # every example has a mean on it, and each carries mass 1/N: the empirical measure
    assert h["max_gap"][-1] < fit.sigma
    np.testing.assert_allclose(fit.mass_per_example().numpy(), np.full(6, 1 / 6), atol=1e-3)
    assert float(fit.weights.sum()) == pytest.approx(1.0)
    # the training likelihood approaches its small-width asymptote -log N - log(sqrt(2 pi) s)
    assert h["train_ll"][-1] == pytest.approx(mle.self_term_bound(6, 1, fit.sigma), abs=1e-6)
    # held-out: peaks during training, then falls
    k = int(np.argmax(h["test_ll"]))
    assert 0 < k < len(h["test_ll"]) - 1 and h["test_ll"][-1] < h["test_ll"][k] - 1
    assert all(np.all(np.isfinite(v)) for v in h.values())


def test_flexible_mixture_is_seeded():
    xt = _sample(5, 3)
    a = mle.fit_flexible_mixture(xt, steps=30, seed=4)
    b = mle.fit_flexible_mixture(xt, steps=30, seed=4)
    c = mle.fit_flexible_mixture(xt, steps=30, seed=5)
    torch.testing.assert_close(a.means, b.means, rtol=0, atol=0)
    assert not torch.equal(a.means, c.means)


def test_flexible_mixture_uniform_weights_stay_uniform():
    xt = _sample(4, 0)
    fit = mle.fit_flexible_mixture(xt, n_components=8, steps=20, learn_weights=False)
    np.testing.assert_allclose(fit.weights.numpy(), np.full(8, 1 / 8))


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, match", [
    (lambda x: mle.log_likelihood(x, x, 0.0), "sigma"),
    (lambda x: mle.log_likelihood(x, x, -1.0), "sigma"),
    (lambda x: mle.log_likelihood(x, x, float("nan")), "sigma"),
    (lambda x: mle.log_likelihood(x[:, 0], x, 0.1), "x_train"),
    (lambda x: mle.log_likelihood(x[:0], x, 0.1), "x_train"),
    (lambda x: mle.log_likelihood(x, torch.zeros(3, 2, dtype=D64), 0.1), "x_eval"),
    (lambda x: mle.log_likelihood(x, torch.tensor([[float("nan")]]), 0.1), "x_eval"),
    (lambda x: mle.loo_log_likelihood(x[:1], 0.1), "x_train"),
    (lambda x: mle.bandwidth_curve(x, [], None), "sigmas"),
    (lambda x: mle.bandwidth_curve(x, [0.1, -0.2], None), "sigmas"),
    (lambda x: mle.bandwidth_curve(x, [0.1], torch.zeros(2, 3)), "x_test"),
    (lambda x: mle.heldout_optimum(x, x, bounds=(1.0, 0.1)), "bounds"),
    (lambda x: mle.heldout_optimum(x, x, bounds=(0.0, 0.1)), "bounds"),
    (lambda x: mle.heldout_optimum(x, x, n_grid=2), "n_grid"),
    (lambda x: mle.self_term_bound(0, 1, 0.1), "n"),
    (lambda x: mle.width_upper_bound(0, 0.1), "d"),
    (lambda x: mle.fit_flexible_mixture(x, n_components=0), "n_components"),
    (lambda x: mle.fit_flexible_mixture(x, steps=0), "steps"),
    (lambda x: mle.fit_flexible_mixture(x, lr=2.0), "lr"),
    (lambda x: mle.fit_flexible_mixture(x, lr=0.01, lr_final=0.1), "lr_final"),
    (lambda x: mle.fit_flexible_mixture(x, sigma_init=0.0), "sigma_init"),
    (lambda x: mle.fit_flexible_mixture(x, seed=-1), "seed"),
    (lambda x: mle.fit_flexible_mixture(x, record_every=0), "record_every"),
])
def test_bad_input_raises_value_error_naming_parameter(call, match):
    x = _sample(5, 0)
    with pytest.raises(ValueError, match=match):
        call(x)


@pytest.mark.parametrize("call, match", [
    (lambda x: mle.log_likelihood(x, x, "0.1"), "sigma"),
    (lambda x: mle.fit_flexible_mixture(x, n_components=2.5), "n_components"),
    (lambda x: mle.fit_flexible_mixture(x, learn_weights=1), "learn_weights"),
    (lambda x: mle.bandwidth_curve(x, ["a"], None), "sigmas"),
    (lambda x: mle.heldout_optimum(x, x, bounds=0.1), "bounds"),
    (lambda x: mle.reference_density(torch.int64), "dtype"),
])
def test_bad_types_raise_type_error_naming_parameter(call, match):
    x = _sample(5, 0)
    with pytest.raises(TypeError, match=match):
        call(x)


def test_curve_best_validates_which():
    cur = mle.bandwidth_curve(_sample(5, 0), [0.1, 1.0])
    with pytest.raises(ValueError, match="which"):
        cur.best("heldout")
    with pytest.raises(ValueError, match="which"):
        cur.best("median")


def test_mixture_log_prob_validates_and_handles_extremes():
    means = torch.tensor([[0.0], [1.0]], dtype=D64)
    logw = torch.log(torch.tensor([0.5, 0.5], dtype=D64))
    x = torch.tensor([[0.0], [1e3]], dtype=D64)
    out = mle.mixture_log_prob(x, means, logw, 1e-4)
    assert torch.isfinite(out).all() and out[1] < -1e12
    # a zero weight (log weight -inf) is allowed
    out0 = mle.mixture_log_prob(x, means, torch.tensor([0.0, -math.inf], dtype=D64), 0.5)
    torch.testing.assert_close(out0, torch.distributions.Normal(0.0, 0.5).log_prob(x[:, 0]).to(D64))
    # differentiable in a tensor width
    s = torch.tensor(0.7, dtype=D64, requires_grad=True)
    mle.mixture_log_prob(x[:1], means, logw, s).sum().backward()
    assert s.grad is not None and torch.isfinite(s.grad)
    with pytest.raises(ValueError, match="log_weights"):
        mle.mixture_log_prob(x, means, logw[:1], 0.5)
    with pytest.raises(ValueError, match="log_weights"):
        mle.mixture_log_prob(x, means, torch.tensor([0.0, float("nan")], dtype=D64), 0.5)
    with pytest.raises(ValueError, match="sigma"):
        mle.mixture_log_prob(x, means, logw, 0.0)
    with pytest.raises(ValueError, match="x"):
        mle.mixture_log_prob(torch.zeros(2, 3, dtype=D64), means, logw, 0.5)

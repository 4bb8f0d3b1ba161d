"""Chapter 1's experiments: independent re-derivations, the chapter's claims, seeds and bad input."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

from memprior import mle
from memprior.experiments import memorize as M

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bw():
    return M.bandwidth_study()


@pytest.fixture(scope="module")
def sweep():
    return M.sample_size_sweep()


@pytest.fixture(scope="module")
def flex():
    return M.flexible_study()


def kde_log_density(x_train, x_eval, sigma):
    """Log-density of the kernel density, in numpy, straight from the formula."""
    xt, xe = np.asarray(x_train).ravel(), np.asarray(x_eval).ravel()
    z = -0.5 * (xe[:, None] - xt[None, :]) ** 2 / sigma**2
    return logsumexp(z, axis=1) - math.log(xt.size) - 0.5 * math.log(2 * math.pi * sigma**2)


def true_density(x):
    c, s = np.array(mle.REFERENCE_CENTERS), mle.REFERENCE_SIGMA
    return 0.5 * stats.norm.pdf(np.asarray(x)[..., None], c, s).sum(-1)


# ----------------------------------------------------------------------------- data

def test_data_come_from_the_reference_density():
    data = M.sample_data()
    assert data.pool.shape == (400, 1) and data.x_test.shape == (2000, 1)
    c, s = mle.REFERENCE_CENTERS, mle.REFERENCE_SIGMA
    cdf = lambda x: 0.5 * (stats.norm.cdf(x, c[0], s) + stats.norm.cdf(x, c[1], s))  # noqa: E731
    assert stats.kstest(data.pool.ravel(), cdf).pvalue > 1e-3
    assert stats.kstest(data.x_test.ravel(), cdf).pvalue > 1e-3
    # ref_score estimates -H(p) = int p log p: compare with quadrature, within 4 Monte Carlo standard errors.
    neg_entropy = integrate.quad(lambda x: true_density(x) * np.log(true_density(x)), -6, 7, limit=200)[0]
    logp = np.log(true_density(data.x_test.ravel()))
    assert data.ref_score == pytest.approx(logp.mean(), abs=1e-12)
    assert abs(data.ref_score - neg_entropy) < 4 * logp.std() / math.sqrt(logp.size)


def test_seeds_reproduce_and_distinguish():
    a, b = M.sample_data(n_pool=50, n_test=30), M.sample_data(n_pool=50, n_test=30)
    assert np.array_equal(a.pool, b.pool) and np.array_equal(a.x_test, b.x_test) and a.ref_score == b.ref_score
    c = M.sample_data(n_pool=50, n_test=30, pool_seed=5, test_seed=6)
    assert not np.allclose(a.pool, c.pool) and not np.allclose(a.x_test, c.x_test)
    s1 = M.bandwidth_study(n=5, n_pool=50, n_test=100, n_sigmas=10)
    s2 = M.bandwidth_study(n=5, n_pool=50, n_test=100, n_sigmas=10)
    for f in ("x_train", "train", "heldout", "loo"):
        assert np.array_equal(getattr(s1, f), getattr(s2, f))
    assert s1.sigma_star == s2.sigma_star and s1.sigma_loo == s2.sigma_loo
    f1 = M.flexible_study(n=4, steps=40, record_every=10, n_test=50)
    f2 = M.flexible_study(n=4, steps=40, record_every=10, n_test=50)
    f3 = M.flexible_study(n=4, steps=40, record_every=10, n_test=50, seed=3)
    assert np.array_equal(f1.means, f2.means) and f1.sigma == f2.sigma
    assert not np.allclose(f1.means_history[0], f3.means_history[0])


# ----------------------------------------------------------------------------- bandwidth

def test_curves_agree_with_numpy(bw):
    assert np.array_equal(bw.x_train, bw.pool[:bw.n])
    assert np.allclose(bw.sigmas, np.geomspace(1e-3, 5.0, 80))
    xt = bw.x_train.ravel()
    for i in (0, 17, 40, 79):
        s = bw.sigmas[i]
        assert bw.train[i] == pytest.approx(kde_log_density(xt, xt, s).mean(), rel=1e-10, abs=1e-9)
        assert bw.heldout[i] == pytest.approx(kde_log_density(xt, bw.x_test, s).mean(), rel=1e-10)
        loo = [kde_log_density(np.delete(xt, j), xt[j:j + 1], s)[0] for j in range(xt.size)]  # brute force
        assert bw.loo[i] == pytest.approx(np.mean(loo), rel=1e-10, abs=1e-9)
    assert bw.test_at_star == pytest.approx(kde_log_density(xt, bw.x_test, bw.sigma_star).mean(), rel=1e-10)
    gaps = np.abs(xt[:, None] - xt[None, :])[np.triu_indices(xt.size, 1)]
    assert bw.min_gap == pytest.approx(gaps.min(), rel=1e-12)


def test_bounds_closed_form_and_squeeze(bw):
    n, s = bw.n, bw.sigmas
    assert np.allclose(bw.lower, -np.log(n) - 0.5 * np.log(2 * np.pi * s**2), rtol=0, atol=1e-12)
    assert np.allclose(bw.upper - bw.lower, np.log(n), rtol=0, atol=1e-12)
    assert np.all(bw.lower - 1e-12 <= bw.train) and np.all(bw.train <= bw.upper + 1e-12)
    # Part 2 of the proposition: the self-term gap is at most log(1 + (N-1) exp(-delta^2 / 2 sigma^2)).
    gap = bw.train - bw.lower
    assert np.all(gap <= np.log1p((n - 1) * np.exp(-bw.min_gap**2 / (2 * s**2))) + 1e-12)


def test_chapter_claims_on_the_bandwidth_curves(bw):
    assert np.all(np.diff(bw.train) < 0)              # training score rises as sigma shrinks
    assert bw.train[0] - bw.lower[0] < 0.05            # and runs along the lower bound at small sigma
    assert bw.train[0] > bw.ref_score + 4              # far above the truth's own score
    k = int(np.argmax(bw.heldout))
    assert 0 < k < bw.sigmas.size - 1                  # interior held-out optimum
    assert bw.heldout[0] < bw.heldout[k] - 1000        # which collapses at small sigma
    assert bw.test_at_star <= bw.ref_score + 0.05      # no model beats the truth (up to noise)
    assert 0.5 < bw.sigma_loo / bw.sigma_star < 2.0    # leave-one-out agrees with held-out


def test_optima_are_local_maxima(bw):
    xt = bw.x_train.ravel()
    for f, s in ((lambda v: kde_log_density(xt, bw.x_test, v).mean(), bw.sigma_star),
                 (lambda v: mle.loo_log_likelihood(bw.x_train, v), bw.sigma_loo)):
        for h in (1e-2, 1e-3):
            assert f(s) >= max(f(s * math.exp(h)), f(s * math.exp(-h))) - 1e-10
        # the derivative in log sigma vanishes (central difference)
        assert abs((f(s * math.exp(1e-4)) - f(s * math.exp(-1e-4))) / 2e-4) < 1e-3
    assert bw.sigma_star == pytest.approx(bw.curve.best("heldout"), rel=0.15)
    assert bw.sigma_loo == pytest.approx(bw.curve.best("loo"), rel=0.15)
    assert bw.test_at_star >= bw.heldout.max() - 1e-9


# ----------------------------------------------------------------------------- sample size

def test_sweep_agrees_with_independent_evaluation(sweep):
    data = M.sample_data()
    assert sweep.ref_score == data.ref_score
    assert sweep.train.shape == sweep.heldout.shape == (len(sweep.ns), 50)
    for i, n in enumerate(sweep.ns):
        j = 13 + 5 * i
        xt = data.pool[:n]
        assert sweep.train[i, j] == pytest.approx(kde_log_density(xt, xt, sweep.sigmas[j]).mean(), rel=1e-10)
        assert sweep.heldout[i, j] == pytest.approx(kde_log_density(xt, data.x_test, sweep.sigmas[j]).mean(),
                                                    rel=1e-10)
        at_star = kde_log_density(xt, data.x_test, sweep.sigma_star[i]).mean()
        assert sweep.excess[i] == pytest.approx(data.ref_score - at_star, abs=1e-10)
    assert sweep.curves[20].train is not None and sweep.optima[20] == sweep.sigma_star[2]
    # the same N and data give the same held-out optimum as the bandwidth study (finer search there)
    assert sweep.optima[20] == pytest.approx(M.bandwidth_study(n=20, n_sigmas=3).sigma_star, rel=1e-3)


def test_chapter_claims_on_the_sample_size(sweep):
    assert np.all(np.diff(sweep.sigma_star) < 0)                    # sigma* shrinks as N grows
    assert sweep.excess[-1] < sweep.excess[0] and sweep.excess.min() > -0.05
    assert np.all(np.argmax(sweep.train, axis=1) == 0)              # training still points to sigma -> 0
    slope = np.polyfit(np.log(sweep.ns), np.log(sweep.sigma_star), 1)[0]
    assert -0.6 < slope < -0.05                                     # of the order of N^(-1/5)


# ----------------------------------------------------------------------------- flexible model

def test_flexible_fit_agrees_with_numpy(flex):
    assert flex.n_components == 4 * flex.n == flex.means.shape[0]
    assert flex.weights.sum() == pytest.approx(1.0, abs=1e-12)
    xt, mu = flex.x_train.ravel(), flex.means.ravel()
    z = np.log(flex.weights)[None, :] - 0.5 * (xt[:, None] - mu[None, :]) ** 2 / flex.sigma**2
    ll = (logsumexp(z, axis=1) - 0.5 * math.log(2 * math.pi * flex.sigma**2)).mean()
    assert flex.train_ll[-1] == pytest.approx(ll, abs=1e-8)
    owner = np.argmin(np.abs(mu[:, None] - xt[None, :]), axis=1)
    mass = np.bincount(owner, weights=flex.weights, minlength=xt.size)
    assert flex.mass_error[-1] == pytest.approx(np.abs(mass - 1 / xt.size).max(), abs=1e-15)
    assert flex.max_gap[-1] == pytest.approx(np.abs(xt[:, None] - mu[None, :]).min(1).max(), abs=1e-15)
    assert flex.bound_end == pytest.approx(-math.log(flex.n) - 0.5 * math.log(2 * math.pi * flex.sigma**2))
    # slope_end against autograd: d ell_train / d log s at the learned width
    log_s = torch.tensor(math.log(flex.sigma), dtype=torch.float64, requires_grad=True)
    mle.mixture_log_prob(torch.as_tensor(flex.x_train), torch.as_tensor(flex.means),
                         torch.log(torch.as_tensor(flex.weights)), log_s.exp()).mean().backward()
    assert flex.slope_end == pytest.approx(float(log_s.grad), abs=1e-6)
    fit = flex.fit
    assert isinstance(fit, mle.FlexibleFit) and fit.sigma == flex.sigma
    assert np.array_equal(fit.history["test_ll"], flex.test_ll)
    assert flex.peak_step == flex.step[np.argmax(flex.test_ll)]
    assert flex.step[0] == 0 and flex.step[-1] == 2000 and np.all(np.diff(flex.step) == 20)


def test_chapter_claims_on_the_flexible_model(flex):
    assert flex.sigma_history[0] == pytest.approx(2.0)
    assert flex.sigma < 1e-3 * flex.sigma_history[0]             # three orders of magnitude
    assert flex.max_gap[-1] < flex.sigma                          # a mean sits on every example
    assert flex.mass_error[-1] < 1e-3                             # with weight 1/N per example
    assert abs(flex.train_ll[-1] - flex.bound_end) < 1e-6         # training score = lower bound
    assert np.all(np.diff(flex.train_ll[5:]) > 0)                 # keeps rising
    assert abs(flex.slope_end + 1.0) < 1e-3                       # d ell / d log s = -d
    k = flex.k_peak
    assert 0 < k < flex.step.size - 1 and flex.test_ll[-1] < flex.test_ll[k] - 100
    assert 0.5 < flex.sigma_history[k] / flex.kde_star < 3
    assert flex.kde_star == pytest.approx(mle.heldout_optimum(flex.x_train, M.sample_data().x_test))


def test_fewer_components_than_examples_do_not_collapse(flex):
    few = M.flexible_study(n_components=flex.n // 2, record_every=500)
    assert few.sigma > 100 * flex.sigma
    assert few.train_ll[-1] < flex.train_ll[-1] - 3
    assert few.train_ll[-1] < mle.width_upper_bound(1, few.sigma)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, exc, match", [
    (lambda: M.sample_data(n_pool=0), ValueError, "^n_pool"),
    (lambda: M.sample_data(n_test=0), ValueError, "^n_test"),
    (lambda: M.sample_data(pool_seed=-1), ValueError, "^pool_seed"),
    (lambda: M.sample_data(test_seed=1.5), TypeError, "^test_seed"),
    (lambda: M.bandwidth_study(n=1), ValueError, r"^n: .*\[2, 400\]"),
    (lambda: M.bandwidth_study(n=401), ValueError, r"^n: .*\[2, 400\]"),
    (lambda: M.bandwidth_study(n=2.0), TypeError, "^n:"),
    (lambda: M.bandwidth_study(sigma_min=0.0), ValueError, "^sigma_min"),
    (lambda: M.bandwidth_study(sigma_min=5.0, sigma_max=1.0), ValueError, "sigma_min < sigma_max"),
    (lambda: M.bandwidth_study(n_sigmas=2), ValueError, "^n_sigmas"),
    (lambda: M.sample_size_sweep(ns=()), TypeError, "^ns"),
    (lambda: M.sample_size_sweep(ns=5), TypeError, "^ns"),
    (lambda: M.sample_size_sweep(ns=(10, 5)), ValueError, "strictly increasing"),
    (lambda: M.sample_size_sweep(ns=(5, 1000)), ValueError, r"^ns\[\]: .*\[1, 400\]"),
    (lambda: M.sample_size_sweep(n_grid=2), ValueError, "^n_grid"),
    (lambda: M.flexible_study(sigma_init=-1.0), ValueError, "^sigma_init"),
    (lambda: M.flexible_study(steps=0), ValueError, "^steps"),
    (lambda: M.flexible_study(n_components=0), ValueError, "^n_components"),
    (lambda: M.flexible_study(seed=True), TypeError, "^seed"),
    (lambda: M.flexible_study(n=1), ValueError, "^n:"),
])
def test_bad_input_is_rejected_with_the_parameter_name(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_results_are_frozen(bw):
    with pytest.raises(AttributeError):
        bw.sigma_star = 1.0

"""Tests for memprior.experiments.lookup (chapter 2): lookup weights, their limits and the sigma -> 0 limit."""
import dataclasses

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import softmax

from memprior import posterior
from memprior.experiments import lookup

torch.set_num_threads(1)
D64 = torch.float64
XN = np.array([-1.5, -0.4, 0.4, 1.2, 2.5])
X5 = torch.tensor(XN[:, None], dtype=D64)


def cubic(x):
    return x + 0.3 * x ** 3


def gauss(z, s):
    return np.exp(-0.5 * (z / s) ** 2) / (np.sqrt(2 * np.pi) * s)


@pytest.fixture(scope="module")
def maps():
    return lookup.two_forward_maps()


@pytest.fixture(scope="module")
def sweep():
    return lookup.noise_sweep()


@pytest.fixture(scope="module")
def limit():
    return lookup.bandwidth_limit()


# ----------------------------------------------------------------------------- the lookup weights (section 1)
def test_lookup_weights_are_the_propositions_softmax():
    y, gamma = 1.0, 0.3
    w = posterior.lookup_weights(posterior.cubic_forward, X5, torch.tensor([y], dtype=D64), gamma)
    misfit = (y - cubic(XN)) ** 2 / (2 * gamma ** 2)
    np.testing.assert_allclose(w.numpy(), softmax(-misfit), rtol=1e-12, atol=1e-300)
    assert misfit.max() == pytest.approx(212.6953125, rel=1e-12)          # the chapter's largest misfit
    assert w.numpy()[2:4] == pytest.approx([0.7296649296, 0.2702693910], abs=1e-9)
    # a huge common misfit shift changes nothing (shift invariance, computed in log-space)
    far = posterior.lookup_weights(lambda x: posterior.cubic_forward(x) + 1e3, X5, torch.tensor([y + 1e3]), gamma)
    torch.testing.assert_close(far, w, rtol=1e-9, atol=1e-300)
    tiny = posterior.lookup_weights(posterior.cubic_forward, X5, torch.tensor([y], dtype=D64), 1e-3)
    assert torch.isfinite(tiny).all() and float(tiny.sum()) == pytest.approx(1.0, abs=1e-15)


# ----------------------------------------------------------------------------- two maps, one lookup
def test_bumped_forward_agrees_only_at_the_stored_models():
    F2 = lookup.bumped_forward()
    torch.testing.assert_close(F2(X5), posterior.cubic_forward(X5), rtol=0, atol=1e-15)
    # at x = 0: F(0) = 0 and the bump is a * prod(-x_n)
    assert float(F2(torch.zeros(1, 1, dtype=D64))) == pytest.approx(0.5 * np.prod(-XN), rel=1e-14)
    x = np.linspace(-3, 3, 13)
    ref = cubic(x) + 0.25 * np.exp(-x ** 2 / 2) * np.prod(x[:, None] - XN[None, :], axis=1)
    np.testing.assert_allclose(lookup.bumped_forward(amplitude=0.25)(torch.tensor(x[:, None]))[:, 0].numpy(), ref,
                               rtol=1e-13, atol=1e-13)


def test_two_maps_same_lookup_different_mixture_posteriors(maps):
    assert np.array_equal(maps.w1, maps.w2)          # identical lookup posteriors, to the last bit
    assert maps.train_dev < 1e-15
    assert maps.tv > 0.1                             # the sigma = 0.3 mixture posteriors differ
    assert maps.tv == pytest.approx(0.2239023, abs=1e-6)
    assert maps.f2_dev == pytest.approx(np.abs(maps.F2 - maps.F1).max())
    assert maps.f2_dev == pytest.approx(2.4965031, abs=1e-6)


def test_mixture_posteriors_match_a_numpy_quadrature(maps):
    x, s, g, y = maps.x, maps.sigma, maps.gamma, maps.y
    prior = gauss(x[:, None] - XN[None, :], s).mean(axis=1)
    F2 = lookup.bumped_forward()(torch.tensor(x[:, None]))[:, 0].numpy()
    refs = []
    for Fx in (cubic(x), F2):
        p = prior * gauss(y - Fx, g)
        refs.append(p / np.trapezoid(p, x))
    for post, ref in zip((maps.post1, maps.post2), refs):
        assert np.trapezoid(post, x) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(post, ref, rtol=1e-5, atol=1e-8 * ref.max())
    assert maps.tv == pytest.approx(0.5 * np.trapezoid(np.abs(refs[0] - refs[1]), x), abs=1e-4)


# ----------------------------------------------------------------------------- the noise level
def test_noise_sweep_limits_and_ties(sweep):
    assert sweep.exp_h.shape == (3, 121) and sweep.weights.shape == (3, 121, 5) and sweep.n == 5
    for k, y in enumerate(sweep.data):
        assert np.all(np.diff(sweep.exp_h[k]) >= -1e-12), y      # non-decreasing in gamma
        assert sweep.exp_h[k, -1] == pytest.approx(5, abs=1e-3), y  # uniform at large gamma
    assert sweep.exp_h[0, 0] == pytest.approx(2, abs=1e-9)        # y = 0: the tie of +-0.4 (F is odd)
    assert sweep.exp_h[1, 0] == pytest.approx(1, abs=1e-9) and sweep.exp_h[2, 0] == pytest.approx(1, abs=1e-9)
    np.testing.assert_allclose(sweep.weights[0, 0], [0, 0.5, 0.5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(sweep.weights[1, 0], [0, 0, 1, 0, 0], atol=1e-12)   # y = 1: best fit x = 0.4


def test_noise_sweep_matches_numpy_entropy(sweep):
    for k, y in enumerate(sweep.data):
        r = 0.5 * (y - cubic(XN)) ** 2
        W = softmax(-r[None, :] / sweep.gammas[:, None] ** 2, axis=1)
        np.testing.assert_allclose(sweep.weights[k], W, rtol=1e-10, atol=1e-300)
        H = -np.sum(W * np.log(np.maximum(W, 1e-300)), axis=1)
        np.testing.assert_allclose(sweep.exp_h[k], np.clip(np.exp(H), 1, 5), rtol=1e-10)


def test_entropy_derivative_is_minus_beta_variance():
    # part 3 of the proposition: dH/dbeta = -beta Var_w(r), by central finite differences in gamma
    y, gamma, h = 1.0, 0.3, 1e-5
    res = lookup.noise_sweep(data=(y,), gamma_min=(gamma ** -2 + h) ** -0.5, gamma_max=(gamma ** -2 - h) ** -0.5,
                             n_gammas=2)
    H = np.log(res.exp_h[0])
    fd = (H[0] - H[1]) / (2 * h)          # gamma_min <-> beta + h
    r = 0.5 * (y - cubic(XN)) ** 2
    beta = gamma ** -2
    p = softmax(-beta * r)
    assert fd == pytest.approx(-beta * (p @ r ** 2 - (p @ r) ** 2), rel=1e-6)


# ----------------------------------------------------------------------------- the bandwidth
def test_bandwidth_limit_reaches_the_lookup_at_rate_two(limit):
    assert limit.weights.shape == (11, 5) and limit.sigmas[0] == 0.3 and limit.sigmas[-1] == pytest.approx(1e-3)
    np.testing.assert_allclose(limit.weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(limit.err) < 0)            # monotone approach to the lookup weights
    assert limit.err[-1] < 1e-4                      # the sigma -> 0 limit is the lookup
    assert 1.8 < limit.rate < 2.2                    # at the rate O(sigma^2)
    np.testing.assert_allclose(limit.lookup, softmax(-(1.0 - cubic(XN)) ** 2 / (2 * 0.3 ** 2)), rtol=1e-12)
    assert limit.err[0] == pytest.approx(0.4315963, abs=1e-6)
    assert limit.weights[0, 2:4] == pytest.approx([0.5138668, 0.4802244], abs=1e-6)


def test_component_weights_match_adaptive_quadrature(limit):
    # Z_n(sigma) = int N(x; x_n, sigma^2) N(y; F(x), gamma^2) dx by scipy.integrate.quad
    for i in (0, 4):
        s = limit.sigmas[i]
        Z = [integrate.quad(lambda x, c=c: gauss(x - c, s) * gauss(1.0 - cubic(x), 0.3), c - 12 * s, c + 12 * s,
                            epsabs=0, epsrel=1e-12, limit=200)[0] for c in XN]
        np.testing.assert_allclose(limit.weights[i], np.array(Z) / np.sum(Z), rtol=2e-6, atol=1e-12)


def test_small_sigma_correction_is_the_second_order_term(limit):
    # Z_n = g(x_n) + sigma^2 g''(x_n) / 2 + O(sigma^4), g(x) = exp(-(y - F(x))^2 / (2 gamma^2))
    def g(x):
        return np.exp(-(1.0 - cubic(x)) ** 2 / (2 * 0.3 ** 2))

    h = 1e-4
    g2 = (g(XN + h) - 2 * g(XN) + g(XN - h)) / h ** 2
    s = limit.sigmas[-3]
    Z = g(XN) + 0.5 * s ** 2 * g2
    pred = Z / Z.sum() - limit.lookup
    np.testing.assert_allclose(limit.weights[-3] - limit.lookup, pred, rtol=1e-3, atol=1e-3 * np.abs(pred).max())


def test_smaller_problem_and_custom_training_set():
    res = lookup.bandwidth_limit(sigma_min=0.01, n_sigmas=5, n_grid=1401, n_fit=2, y=0.5,
                                 x_train=[[-1.0], [0.0], [1.0]])
    assert res.weights.shape == (5, 3) and 1.8 < res.rate < 2.2
    assert res.spacing == pytest.approx(0.005)
    sw = lookup.noise_sweep(data=(0.0,), x_train=[[-1.0], [1.0]], n_gammas=5)
    np.testing.assert_allclose(sw.exp_h, 2.0, atol=1e-12)    # symmetric pair around y = 0: always a tie


# ----------------------------------------------------------------------------- the results themselves
def test_results_are_frozen_readonly_and_deterministic(maps, sweep):
    with pytest.raises(dataclasses.FrozenInstanceError):
        maps.tv = 0.0
    with pytest.raises(ValueError, match="read-only"):
        sweep.exp_h[0, 0] = 3.0
    again = lookup.two_forward_maps()
    assert again.tv == maps.tv and np.array_equal(again.post2, maps.post2)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: lookup.two_forward_maps(gamma=0.0), ValueError, "gamma"),
    (lambda: lookup.two_forward_maps(sigma=-1.0), ValueError, "sigma"),
    (lambda: lookup.two_forward_maps(n_grid=2.5), TypeError, "n_grid"),
    (lambda: lookup.two_forward_maps(lo=-1.0, hi=1.0), ValueError, "cover"),
    (lambda: lookup.two_forward_maps(lo=1.0, hi=-1.0), ValueError, "lo < hi"),
    (lambda: lookup.two_forward_maps(y=[1.0, 2.0]), ValueError, "single datum"),
    (lambda: lookup.two_forward_maps(y=float("nan")), ValueError, "y"),
    (lambda: lookup.bumped_forward(amplitude=0.0), ValueError, "amplitude"),
    (lambda: lookup.noise_sweep(gamma_min=1.0, gamma_max=0.1), ValueError, "gamma_min < gamma_max"),
    (lambda: lookup.noise_sweep(data=()), ValueError, "data"),
    (lambda: lookup.noise_sweep(n_gammas=1), ValueError, "n_gammas"),
    (lambda: lookup.noise_sweep(x_train=torch.zeros(3, 2)), ValueError, "x_train"),
    (lambda: lookup.bandwidth_limit(n_grid=2001), ValueError, "spacing"),
    (lambda: lookup.bandwidth_limit(n_fit=12), ValueError, "n_fit"),
    (lambda: lookup.bandwidth_limit(sigma_min=0.5), ValueError, "sigma_min < sigma_max"),
])
def test_bad_input_raises_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()

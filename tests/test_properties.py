"""Property-based tests (Hypothesis) over the public API: shapes, dtypes and extremes.

Seeded: the ``memprior`` profile registered in ``conftest.py`` derandomizes every test (the same examples on
every run, no example database), so a failure reproduces exactly.  Each property either holds for every
generated input or the input is rejected with a ``ValueError`` / ``TypeError`` / ``FloatingPointError``
that names a parameter: never a NaN, never a silently wrong shape.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from memprior import diffusion, guidance, metrics, mixture, mle, posterior
from memprior._checks import SQUARE_MAX, SQUARE_MIN

F64 = torch.float64
# the library's own messages start with "name: " or "name[k]: " (a parameter, or several "p, q: ")
NAMED = re.compile(r"^[A-Za-z_][A-Za-z0-9_\[\]]*(, [A-Za-z_][A-Za-z0-9_]*)*( \(the step size\))?: ")

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
sizes = st.integers(1, 6)
dims = st.integers(1, 3)


@st.composite
def training_sets(draw, min_n=1, max_n=6, dtype=np.float64):
    n, d = draw(st.integers(min_n, max_n)), draw(dims)
    return torch.as_tensor(draw(hnp.arrays(dtype, (n, d), elements=st.floats(-10, 10, width=32))))


scales = st.one_of(st.floats(1e-150, 1e3), st.sampled_from([SQUARE_MIN * 1.01, 1e-100, 1e-8, 1.0, 1e3]))
anything = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(-2 ** 70, 2 ** 70), st.complex_numbers(max_magnitude=10), st.just(float("nan")),
                     st.just(-0.0), st.just(1e-300), st.just([1.0, 2.0]))


def _named(exc: BaseException) -> bool:
    return bool(NAMED.match(str(exc)))


# ------------------------------------------------------------------------------------ mixture prior
@given(x=training_sets(), sigma=scales, data=st.data())
def test_mixture_prior_shapes_and_finiteness(x, sigma, data):
    prior = mixture.GaussianMixturePrior(x, sigma)
    q = torch.as_tensor(data.draw(hnp.arrays(np.float64, (data.draw(sizes), x.shape[1]), elements=finite)))
    try:
        lp, w, den = prior.log_prob(q), prior.responsibilities(q), prior.denoise(q)
    except FloatingPointError as exc:  # a point ~1e154 bandwidths from every centre: named, never NaN
        assert str(exc).startswith("sigma: ") and sigma < 1e-140
        return
    assert lp.shape == (q.shape[0],) and w.shape == (q.shape[0], x.shape[0]) and den.shape == q.shape
    assert torch.isfinite(w).all() and torch.allclose(w.sum(1), torch.ones(q.shape[0], dtype=w.dtype))
    assert not torch.isnan(lp).any() and (lp < math.inf).all()
    # the denoiser is a convex combination of the training points
    lo, hi = x.min(0).values, x.max(0).values
    assert ((den >= lo - 1e-9 * (1 + lo.abs())) & (den <= hi + 1e-9 * (1 + hi.abs()))).all()


@given(x=training_sets(), sigma=anything)
def test_mixture_prior_rejects_or_accepts_every_sigma(x, sigma):
    try:
        prior = mixture.GaussianMixturePrior(x, sigma)
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("sigma: "), exc
        return
    assert SQUARE_MIN <= prior.sigma <= SQUARE_MAX
    assert torch.isfinite(prior.responsibilities(x)).all()


@given(dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32,
                              torch.int64, torch.uint8, torch.bool, torch.complex64, torch.complex128]))
def test_dtypes_are_promoted_or_rejected(dtype):
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).to(dtype)
    try:
        prior = mixture.GaussianMixturePrior(x, 0.5)
    except TypeError as exc:
        assert str(exc).startswith("x_train: ") and (dtype.is_complex or dtype == torch.bool)
        return
    assert prior.x_train.dtype in (torch.float32, torch.float64)
    assert torch.isfinite(prior.log_prob(prior.x_train)).all()


# ------------------------------------------------------------------------------------ lookup posterior
@given(x=training_sets(), gamma=scales, y=finite)
def test_lookup_weights_are_a_distribution(x, gamma, y):
    w = posterior.lookup_weights(lambda v: v.sum(1, keepdim=True), x, torch.tensor([y]), gamma)
    assert w.shape == (x.shape[0],) and torch.isfinite(w).all() and (w >= 0).all()
    assert float(w.sum()) == pytest.approx(1.0)


@given(x=training_sets(min_n=2), y=finite)
def test_lookup_weights_tend_to_the_best_fit_as_gamma_shrinks(x, y):
    F = lambda v: v[:, :1]  # noqa: E731
    mis = (x[:, 0] - y).abs()
    assume(float(torch.sort(mis).values[1] - mis.min()) > 1e-3)
    w = posterior.lookup_weights(F, x, torch.tensor([y]), SQUARE_MIN * 10)
    assert int(w.argmax()) == int(mis.argmin()) and float(w.max()) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ diffusion
@given(x=training_sets(max_n=4), n=st.integers(1, 4), T=st.integers(1, 6), seed=st.integers(0, 2 ** 63 - 1),
       step=st.sampled_from(["ddim", "ddpm"]))
def test_samplers_return_finite_points_of_the_right_shape(x, n, T, seed, step):
    sched = diffusion.Schedule.linear(T)
    den = diffusion.MemorizedDenoiser(x, sched)
    run = diffusion.ddim_sample if step == "ddim" else diffusion.ddpm_sample
    out = run(den, sched, n, torch.Generator().manual_seed(seed))
    assert out.shape == (n, x.shape[1]) and torch.isfinite(out).all()
    again = run(den, sched, n, torch.Generator().manual_seed(seed))
    assert torch.equal(out, again)


@given(x=training_sets(max_n=4), t_frac=st.floats(0, 1), data=st.data())
def test_memorized_denoiser_at_every_level(x, t_frac, data):
    sched = diffusion.Schedule.linear(20)
    t = int(round(t_frac * 19))
    den = diffusion.MemorizedDenoiser(x, sched)
    q = torch.as_tensor(data.draw(hnp.arrays(np.float64, (3, x.shape[1]), elements=finite)))
    w = den.weights(q, t)
    assert torch.isfinite(w).all() and torch.allclose(w.sum(1), torch.ones(3, dtype=F64))
    assert torch.isfinite(den.eps(q, t)).all() and torch.isfinite(den.log_marginal(q, t)).all()


@given(x=training_sets(max_n=4), shift=st.sampled_from([0.0, 1e4, -1e7, 1e9]))
def test_memorized_denoiser_is_translation_equivariant(x, shift):
    """Distances from differences: moving the data far from the origin does not change the answer."""
    sched = diffusion.Schedule.linear(10)
    q = x[:1] * sched.alpha_bar[4].sqrt() + 0.05
    a = diffusion.MemorizedDenoiser(x, sched).weights(q, 4)
    b = diffusion.MemorizedDenoiser(x + shift, sched).weights(q + sched.alpha_bar[4].sqrt() * shift, 4)
    assert torch.allclose(a, b, atol=1e-3)


@given(betas=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-0.5, 1.5)))
def test_schedules_accept_exactly_the_betas_in_the_open_unit_interval(betas):
    ok = bool(((betas > 0) & (betas < 1)).all())
    try:
        s = diffusion.Schedule(betas)
    except ValueError as exc:
        assert not ok and str(exc).startswith("betas: ")
        return
    assert ok and torch.isfinite(s.alpha_bar).all() and (s.alpha_bar > 0).all()
    assert (s.alpha_bar[1:] <= s.alpha_bar[:-1]).all()


# ------------------------------------------------------------------------------------ guided samplers
@given(x=training_sets(min_n=2, max_n=4), gamma=st.floats(0.05, 5.0), n=st.integers(1, 3),
       seed=st.integers(0, 2 ** 32))
def test_exact_posterior_samples_are_training_points(x, gamma, n, seed):
    sched = diffusion.Schedule.linear(8)
    F = lambda v: v.sum(1, keepdim=True)  # noqa: E731
    out, k = guidance.exact_posterior_sample(x, F, torch.zeros(1), gamma, sched, n,
                                             torch.Generator().manual_seed(seed), return_index=True)
    assert out.shape == (n, x.shape[1]) and torch.equal(out, x.to(F64)[k])


@given(ll=hnp.arrays(np.float64, st.integers(1, 5),
                     elements=st.one_of(st.floats(-1e3, 1e3), st.just(-math.inf), st.just(math.nan),
                                        st.just(math.inf))))
def test_log_likelihoods_are_validated_the_same_everywhere(ll):
    x = torch.arange(len(ll), dtype=F64)[:, None]
    sched = diffusion.Schedule.linear(5)
    outcomes = []
    for call in (lambda: guidance.posterior_terminal_sample(x, sched, ll, 2),
                 lambda: guidance.PosteriorDenoiser(x, sched, ll), lambda: guidance.ExactGuidance(ll)):
        try:
            call()
            outcomes.append("ok")
        except ValueError as exc:
            assert str(exc).startswith("log_lik: "), exc
            outcomes.append("rejected")
    bad = np.isnan(ll).any() or np.isposinf(ll).any() or np.isneginf(ll).all()
    assert outcomes == (["rejected"] * 3 if bad else ["ok"] * 3)


# ------------------------------------------------------------------------------------ metrics, mle
@given(x=training_sets(min_n=2), data=st.data())
def test_nearest_and_distances_agree(x, data):
    s = torch.as_tensor(data.draw(hnp.arrays(np.float64, (data.draw(sizes), x.shape[1]), elements=finite)))
    near = metrics.nearest(s, x)
    d = metrics.sorted_distances(s, x, x.shape[0])
    assert torch.allclose(near.distance, d[:, 0]) and (d[:, 1:] >= d[:, :-1]).all()
    assert torch.allclose(near.distance, (s - x.to(F64)[near.index]).norm(dim=1))


@given(x=training_sets(min_n=2), sigma=scales)
def test_leave_one_out_likelihood_is_a_number_or_minus_infinity(x, sigma):
    v = mle.loo_log_likelihood(x, sigma)
    assert not math.isnan(v) and v < math.inf


@given(k=st.integers(1, 5), shift=st.floats(-50, 50), sigma=scales)
def test_mixture_log_prob_needs_normalized_weights(k, shift, sigma):
    means = torch.arange(k, dtype=F64)[:, None]
    lw = torch.full((k,), -math.log(k), dtype=F64) + shift
    try:
        out = mle.mixture_log_prob(means, means, lw, sigma)
    except ValueError as exc:
        assert abs(shift) > 1e-6 and str(exc).startswith("log_weights: ")
        return
    assert abs(shift) <= 1e-6 and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------ grids
@given(nodes=hnp.arrays(np.float64, st.integers(0, 6), elements=st.floats(-10, 10)), axes=st.integers(1, 4))
def test_cell_volumes_sum_to_the_extended_grid(nodes, axes):
    g = torch.as_tensor(nodes)
    try:
        vol = posterior.cell_volumes(tuple([g] * axes))
    except ValueError as exc:
        assert str(exc).startswith("grid")
        assert axes > 2 or len(nodes) < 2 or not (np.diff(nodes) > 0).all()
        return
    span = float(g[-1] - g[0]) * len(g) / (len(g) - 1)
    assert vol.shape == (len(g),) * axes and float(vol.sum()) == pytest.approx(span ** axes)

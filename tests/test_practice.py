"""Tests for memprior.practice: truncated sampling, importance posterior, energy distance, checks."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from memprior import practice as P
from memprior.diffusion import MemorizedDenoiser, Schedule
from memprior.mixture import GaussianMixturePrior
from memprior.posterior import linearized_mixture

torch.set_num_threads(1)
LIN = Schedule.linear(200)
X3 = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def lin_forward(x):
    return (x[:, :1] + x[:, 1:2])


# ----------------------------------------------------------------------------- level_for_sigma
def test_level_for_sigma_brackets_target():
    for s in (0.02, 0.1, 0.5, 1.0, 2.0):
        t = P.level_for_sigma(LIN, s)
        assert LIN.sigma(t) >= s
        assert t == 0 or LIN.sigma(t - 1) < s


def test_level_for_sigma_extremes_and_errors():
    assert P.level_for_sigma(LIN, 1e-9) == 0
    top = LIN.sigma(LIN.n_steps - 1)
    assert P.level_for_sigma(LIN, top) == LIN.n_steps - 1
    with pytest.raises(ValueError, match="sigma_min"):
        P.level_for_sigma(LIN, 1.01 * top)
    with pytest.raises(ValueError, match="sigma_min"):
        P.level_for_sigma(LIN, 0.0)
    with pytest.raises(TypeError, match="schedule"):
        P.level_for_sigma("linear", 0.1)


def test_shifted_schedule_reproduces_alpha_bar():
    for t0 in (0, 1, 37, 199):
        s = P._shifted_schedule(LIN, t0)
        assert s.n_steps == LIN.n_steps - t0
        assert torch.allclose(s.alpha_bar, LIN.alpha_bar[t0:], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- truncated_sample
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_truncated_memorized_is_gaussian_mixture(sampler):
    """Noisy output of the closed-form denoiser stopped at sigma is p_sigma: var = var(x_n) + sigma^2."""
    den = MemorizedDenoiser(X3, LIN)
    n = 12000
    for s_min in (0.3, 1.0):
        t0 = P.level_for_sigma(LIN, s_min)
        sig = LIN.sigma(t0)
        z = P.truncated_sample(den, LIN, n, s_min, generator=gen(1), sampler=sampler)
        var_ref = X3.var(0, unbiased=False) + sig ** 2
        mean_ref = X3.mean(0)
        # Monte Carlo tolerances: 5 standard errors (variance of a sample variance ~ 2 var^2 / n + kurtosis)
        assert torch.all((z.mean(0) - mean_ref).abs() < 5 * (var_ref / n).sqrt())
        assert torch.all((z.var(0) - var_ref).abs() < 5 * var_ref * math.sqrt(3.0 / n))
        # and as a whole close to draws of p_sigma: energy distance of the order of two such draws
        ref = GaussianMixturePrior(X3, sig).sample(3000, generator=gen(2))
        ref2 = GaussianMixturePrior(X3, sig).sample(3000, generator=gen(3))
        assert P.energy_distance(z[:3000], ref) < 3 * P.energy_distance(ref2, ref) + 0.03


def test_truncated_denoised_small_sigma_lands_on_training_points_large_does_not():
    den = MemorizedDenoiser(X3, LIN)
    small = P.truncated_sample(den, LIN, 400, 0.02, generator=gen(4), output="denoised")
    d_small = torch.cdist(small, X3).min(1).values
    assert float(d_small.max()) < 1e-6
    big = P.truncated_sample(den, LIN, 400, 2.0, generator=gen(4), output="denoised")
    d_big = torch.cdist(big, X3).min(1).values
    # stopping at sigma = 2 leaves the posterior mean between training points for many samples
    assert float((d_big > 0.05).double().mean()) > 0.2


def test_truncated_noisy_spread_grows_with_sigma_min():
    den = MemorizedDenoiser(X3, LIN)
    d = [float(torch.cdist(P.truncated_sample(den, LIN, 2000, s, generator=gen(5)), X3).min(1).values.median())
         for s in (0.05, 0.3, 1.0)]
    assert d[0] < d[1] < d[2]
    # the median nearest distance of N(0, s^2 I) in 2-D is s sqrt(2 ln 2) when components are well apart
    assert abs(d[0] / (LIN.sigma(P.level_for_sigma(LIN, 0.05)) * math.sqrt(2 * math.log(2))) - 1) < 0.1


def test_truncated_sample_errors():
    den = MemorizedDenoiser(X3, LIN)
    with pytest.raises(ValueError, match="output"):
        P.truncated_sample(den, LIN, 4, 0.1, output="mean")
    with pytest.raises(ValueError, match="sampler"):
        P.truncated_sample(den, LIN, 4, 0.1, sampler="euler")
    with pytest.raises(ValueError, match="n"):
        P.truncated_sample(den, LIN, 0, 0.1)
    with pytest.raises(ValueError, match="sigma_min"):
        P.truncated_sample(den, LIN, 4, 100.0)


# ----------------------------------------------------------------------------- importance_posterior
def test_importance_posterior_matches_gaussian_conjugate():
    """Prior N(0, I) in 2-D, y = x1 + x2 + e: the posterior is Gaussian in closed form."""
    gamma, y = 0.5, torch.tensor([1.2], dtype=torch.float64)
    prior = torch.randn(40000, 2, generator=gen(6), dtype=torch.float64)
    res = P.importance_posterior(prior, lin_forward, y, gamma, 20000, generator=gen(7))
    exact = linearized_mixture(lin_forward, torch.zeros(1, 2, dtype=torch.float64), y, 1.0, gamma)
    mu, cov = exact.means[0], exact.covs[0]
    assert torch.allclose(res.samples.mean(0), mu, atol=0.04)
    assert torch.allclose(torch.cov(res.samples.T), cov, atol=0.05)
    assert 1.0 <= res.ess <= 40000
    assert abs(float(res.weights.sum()) - 1) < 1e-12


def test_importance_posterior_ess_extremes():
    prior = torch.randn(500, 2, generator=gen(8), dtype=torch.float64)
    y = torch.tensor([0.3], dtype=torch.float64)
    flat = P.importance_posterior(prior, lin_forward, y, 1e6, 10, generator=gen(9))
    assert abs(flat.ess - 500) < 1e-6
    sharp = P.importance_posterior(prior, lin_forward, y, 1e-6, 10, generator=gen(9))
    assert sharp.ess == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(sharp.samples).all() and len(torch.unique(sharp.samples, dim=0)) == 1


def test_importance_posterior_errors():
    prior = torch.randn(5, 2, dtype=torch.float64)
    y = torch.tensor([0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="gamma"):
        P.importance_posterior(prior, lin_forward, y, -1.0, 3)
    with pytest.raises(ValueError, match="n"):
        P.importance_posterior(prior, lin_forward, y, 1.0, 0)
    with pytest.raises(ValueError, match="prior_samples"):
        P.importance_posterior(torch.tensor([[float("nan"), 0.0]]), lin_forward, y, 1.0, 3)
    with pytest.raises(ValueError, match="prior_samples"):
        P.importance_posterior(torch.zeros(5), lin_forward, y, 1.0, 3)


# ----------------------------------------------------------------------------- energy_distance
def test_energy_distance_matches_scipy_in_1d():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=300), rng.normal(0.4, 1.3, size=250)
    ours = P.energy_distance(torch.tensor(u)[:, None], torch.tensor(v)[:, None])
    assert ours == pytest.approx(stats.energy_distance(u, v), rel=1e-9)


def test_energy_distance_identities():
    a = torch.randn(200, 3, generator=gen(10), dtype=torch.float64)
    b = torch.randn(150, 3, generator=gen(11), dtype=torch.float64) + 2.0
    assert P.energy_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert P.energy_distance(a, b) == pytest.approx(P.energy_distance(b, a), rel=1e-12)
    # two point masses at distance D: E = sqrt(2 D)
    p, q = torch.zeros(4, 3, dtype=torch.float64), torch.full((7, 3), 1.0, dtype=torch.float64)
    assert P.energy_distance(p, q) == pytest.approx(math.sqrt(2 * math.sqrt(3)), rel=1e-12)
    assert P.energy_distance(a, b) > P.energy_distance(a, b - 1.5) > 0


def test_energy_distance_errors():
    with pytest.raises(ValueError, match="b"):
        P.energy_distance(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="a"):
        P.energy_distance(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="a, b"):
        P.energy_distance(torch.zeros(0, 2), torch.zeros(3, 2))


# ----------------------------------------------------------------------------- posterior_check
def _problem(n_train=12, seed=12):
    x = torch.randn(n_train, 2, generator=gen(seed), dtype=torch.float64)
    y = torch.tensor([1.0], dtype=torch.float64)
    gamma = 0.3
    ref = linearized_mixture(lin_forward, torch.zeros(1, 2, dtype=torch.float64), y, 1.0, gamma)
    return x, y, gamma, ref.sample(1500, generator=gen(seed + 1))


def test_posterior_check_memorized_prior_is_lookup():
    x, y, gamma, ref = _problem()
    prior = x[torch.randint(len(x), (6000,), generator=gen(13))]   # samples of the empirical measure
    row = P.posterior_check(prior, x, lin_forward, y, gamma, ref, n=1000, generator=gen(14))
    assert row["tv lookup"] <= row["tv floor"] + 3 * row["tv se"]
    assert row["on training"] == 1.0
    assert row["on training (reference)"] < 0.5
    assert row["samples"].shape == (1000, 2)


def test_posterior_check_generalizing_prior_matches_reference():
    x, y, gamma, ref = _problem()
    fresh = torch.randn(20000, 2, generator=gen(15), dtype=torch.float64)   # the true prior
    good = P.posterior_check(fresh, x, lin_forward, y, gamma, ref, n=1500, generator=gen(16))
    prior_mem = x[torch.randint(len(x), (6000,), generator=gen(13))]
    bad = P.posterior_check(prior_mem, x, lin_forward, y, gamma, ref, n=1500, generator=gen(16))
    assert good["energy"] < 0.5 * bad["energy"]
    assert good["tv lookup"] > bad["tv lookup"] + 0.1
    p0 = good["on training (reference)"]
    assert abs(good["on training"] - p0) < 4 * math.sqrt(p0 * (1 - p0) * (1 / 1500 + 1 / 1500)) + 1e-9


def test_posterior_check_errors():
    x, y, gamma, ref = _problem()
    with pytest.raises(ValueError, match="reference"):
        P.posterior_check(x, x, lin_forward, y, gamma, ref[:, :1])
    with pytest.raises(ValueError, match="prior_samples"):
        P.posterior_check(torch.zeros(10, 3), x, lin_forward, y, gamma, ref)


# ----------------------------------------------------------------------------- figures and the live app
def _ref_sampler(yv, n, generator):
    yt = torch.tensor([yv], dtype=torch.float64)
    return linearized_mixture(lin_forward, torch.zeros(1, 2, dtype=torch.float64), yt, 1.0, 0.3).sample(
        n, generator=generator)


def _app_priors():
    x, _, _, _ = _problem()
    mem = x[torch.randint(len(x), (600,), generator=gen(20))]
    true = torch.randn(600, 2, generator=gen(21), dtype=torch.float64)
    return {"memorized": (x, mem), "true prior": (x, true)}


def test_datum_panels_follow_the_datum():
    from memprior.widgets.practice import datum_panels
    a = torch.tensor([1.0, 1.0], dtype=torch.float64)
    priors = _app_priors()
    for yv in (-1.0, 1.5):
        panels, dist = datum_panels(priors, a, yv, 0.3, _ref_sampler, n=300)
        assert len(panels) == 2 and len(dist) == 2
        post_true = panels[1][2]
        # the true prior's posterior satisfies the datum on average
        assert abs(float((post_true @ a).mean()) - yv * 2 / (2 + 0.09)) < 0.1
        assert dist[1] < dist[0]
    with pytest.raises(ValueError, match="a"):
        datum_panels(priors, torch.ones(3), 0.0, 0.3, _ref_sampler)
    with pytest.raises(ValueError, match="gamma"):
        datum_panels(priors, torch.ones(2), 0.0, 0.0, _ref_sampler)


def test_datum_app_update_moves_posterior_and_line():
    from memprior.widgets.practice import benchmark_settings, datum_app
    app = datum_app(_app_priors(), torch.tensor([1.0, 1.0]), 0.3, _ref_sampler, live=False)
    per = len(app.figure.data) // 2
    app.update(y=-2.0)
    m1 = float(np.mean(app.figure.data[per + 1].x) + np.mean(app.figure.data[per + 1].y))
    line1 = np.asarray(app.figure.data[per - 1].y).copy()
    app.update(y=2.0)
    m2 = float(np.mean(app.figure.data[per + 1].x) + np.mean(app.figure.data[per + 1].y))
    assert m2 - m1 > 3.0          # the posterior of the true prior followed the datum
    assert np.allclose(np.asarray(app.figure.data[per - 1].y) - line1, 4.0)   # the line x2 = y - x1 moved
    assert "y = 2" in app.figure.layout.title.text
    assert len(benchmark_settings(k=5)) == 5
    with pytest.raises(ValueError, match="priors"):
        datum_app({}, torch.ones(2), 0.3, _ref_sampler, live=False)
    with pytest.raises(ValueError, match="y_range"):
        datum_app(_app_priors(), torch.ones(2), 0.3, _ref_sampler, y_range=(1.0, 0.0), live=False)


def _xy(trace):
    return np.stack([np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)], 1)


def assert_points(trace, pts):
    """A scatter trace draws exactly these [n, 2] points (to float32 precision)."""
    np.testing.assert_allclose(_xy(trace), np.asarray(pts, dtype=float), rtol=1e-6, atol=1e-6)


def assert_on_line(trace, a, yv):
    """The drawn segment lies on a · x = y."""
    xy = _xy(trace)
    assert len(xy) >= 2 and np.ptp(xy[:, 0]) > 1.0
    np.testing.assert_allclose(xy @ np.asarray(a, dtype=float), yv, rtol=0, atol=1e-12)


def test_figures_draw_each_frames_samples_and_the_data_line():
    from memprior.plots import figure_bytes
    from memprior.plots import practice as pp
    x, y, gamma, ref = _problem()
    prior = torch.randn(200, 2, generator=gen(22), dtype=torch.float64)
    post = prior[:50]
    a = [0.5, 2.0]  # a[0] != 1 and a[0] != a[1]: a swapped or dropped coefficient moves the line
    # every frame shows its own samples (frame k: prior + k, posterior scaled by k + 1), then x_train, then the line
    frames = [(prior + k, post * (k + 1)) for k in range(3)]
    twin = pp.fig_training_slider(x, frames, ["1", "2", "3"], ["a", "b", "c"], line=(a, 1.0))
    assert len(twin.frames) == 3 and figure_bytes(twin) < 1_500_000
    for k, fr in enumerate(twin.frames):
        assert_points(fr.data[0], prior + k)
        assert_points(fr.data[1], post * (k + 1))
        assert_points(fr.data[2], x)
        assert_on_line(fr.data[3], a, 1.0)
    # the datum twin: one panel per prior on its own axes, the line a · x = y_j in frame j
    panels = [[(x, prior + j, post + j), (x, prior - j, post - j)] for j in range(2)]
    dt = pp.twin_datum(["p", "q"], panels, [0.0, 1.0], a, ["t0", "t1"])
    assert len(dt.frames) == 2
    for j, (fr, yv) in enumerate(zip(dt.frames, (0.0, 1.0))):
        half = len(fr.data) // 2
        for k, sign in enumerate((1, -1)):
            tr = fr.data[k * half:(k + 1) * half]
            assert_points(tr[0], prior + sign * j)
            assert_points(tr[1], post + sign * j)
            assert_on_line(tr[-1], a, yv)
    # every trace of the second panel is bound to the second axes
    assert {tr.xaxis for tr in dt.data[len(dt.data) // 2:]} == {"x2"}
    with pytest.raises(ValueError, match="y_values"):
        pp.twin_datum(["p"], [panels[0][:1]], [0.0, 1.0], a, ["t0"])
    rows = [{"prior": "a", "flagged": 0.5, "flagged se": 0.01, "null": 0.2, "tv lookup": 0.3, "tv se": 0.02,
             "energy": 0.4},
            {"prior": "b", "flagged": 0.9, "flagged se": 0.03, "null": 0.25, "tv lookup": 0.1, "tv se": 0.01,
             "energy": 0.7}]
    mf = pp.fig_mitigation(rows, reference_floor=0.05)
    assert len(mf.data) == 4
    # rows top to bottom; each score at its row, error bars of two standard errors
    for tr, key, se in zip(mf.data, ("flagged", "null", "tv lookup", "energy"), ("flagged se", None, "tv se", None)):
        assert list(tr.x) == [r[key] for r in rows] and list(tr.y) == [1, 0]
        if se is not None:
            assert list(tr.error_x.array) == [2 * r[se] for r in rows]
    assert list(mf.layout.yaxis.ticktext) == ["a", "b"] and list(mf.layout.yaxis.tickvals) == [1, 0]
    vf = pp.fig_variants({"a": (x, prior, post), "b": (x, prior + 1, post)}, line=(a, 1.0))
    assert len(vf.data) == 2 * 4
    assert_points(vf.data[4], prior + 1)
    assert_on_line(vf.data[3], a, 1.0)
    assert_on_line(vf.data[7], a, 1.0)
    lf = pp.fig_loss_gap([1, 2], [1.0, 0.5], [1.1, 0.9], best=2)
    assert [list(t.y) for t in lf.data] == [[1.0, 0.5], [1.1, 0.9]]


def test_datum_app_rejects_bad_live_flag():
    from memprior.widgets.practice import datum_app
    with pytest.raises(TypeError, match="live"):
        datum_app(_app_priors(), torch.tensor([1.0, 1.0]), 0.3, _ref_sampler, live="no")


def test_datum_posteriors_is_the_app_numerics():
    from memprior.widgets.practice import datum_panels
    assert datum_panels is P.datum_posteriors
    a = torch.tensor([1.0, 1.0], dtype=torch.float64)
    p1, d1 = P.datum_posteriors(_app_priors(), a, 0.5, 0.3, _ref_sampler, n=100, seed=3)
    p2, d2 = P.datum_posteriors(_app_priors(), a, 0.5, 0.3, _ref_sampler, n=100, seed=3)
    assert d1 == d2 and all(torch.equal(u[2], v[2]) for u, v in zip(p1, p2))
    with pytest.raises(ValueError, match="n"):
        P.datum_posteriors(_app_priors(), a, 0.5, 0.3, _ref_sampler, n=0)


def test_chapter_figures_from_experiment_results():
    from types import SimpleNamespace

    from memprior.metrics import memorization_report
    from memprior.plots import figure_bytes
    from memprior.plots import practice as pp
    x, _, _, _ = _problem()
    z = torch.randn(300, 2, generator=gen(23), dtype=torch.float64)
    fig = pp.fig_report(memorization_report(z, x, fresh=z.flip(0)))
    assert list(fig.layout.xaxis3.ticktext) == ["x₁", "x₂"]
    s = np.arange(3)
    rng = np.random.default_rng(0)
    snap = SimpleNamespace(steps=s + 1, flagged=s / 10, on_training=s / 20, energy=s / 5.0,
                           prior_samples=rng.normal(size=(3, 50, 2)), posterior_samples=rng.normal(size=(3, 20, 2)))
    tw = pp.fig_snapshots(snap, x, [1.0, 1.0], 1.5, null=0.15)
    assert len(tw.frames) == 3 and tw.layout.sliders[0].active == 2
    assert "prior flagged 0.20 (null 0.15)" in tw.frames[2].layout.title.text
    for k, fr in enumerate(tw.frames):  # snapshot k's samples, and the data line x1 + x2 = 1.5
        assert_points(fr.data[0], snap.prior_samples[k])
        assert_points(fr.data[1], snap.posterior_samples[k])
        assert_on_line(fr.data[-1], [1.0, 1.0], 1.5)
    sweep = SimpleNamespace(names=("p", "q"), short=("p", "q"), y_values=np.array([0.0, 1.5]), x_train=(x, x),
                            prior_samples=rng.normal(size=(2, 600, 2)),
                            posterior_samples=rng.normal(size=(2, 2, 30, 2)),
                            distance=np.array([[0.5, 0.1], [0.7, 0.2]]))
    dt = pp.twin_datum_sweep(sweep, [1.0, 1.0])
    assert len(dt.frames) == 2 and dt.layout.sliders[0].active == 1  # opens at the datum nearest 1.5
    assert "p 0.70, q 0.20" in dt.frames[1].layout.title.text
    for j, fr in enumerate(dt.frames):  # datum j: each prior's first 500 samples and its posterior at y_j
        half = len(fr.data) // 2
        for k in range(2):
            assert_points(fr.data[k * half], sweep.prior_samples[k][:500])
            assert_points(fr.data[k * half + 1], sweep.posterior_samples[j][k])
            assert_on_line(fr.data[(k + 1) * half - 1], [1.0, 1.0], sweep.y_values[j])
    assert figure_bytes(dt) < 1_500_000

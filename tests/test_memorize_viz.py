"""Tests for the chapter 1-2 figures (memprior.plots.memorize) and apps (memprior.widgets.memorize).

What a figure draws is checked against a numpy/scipy re-derivation: kernel densities and their mean log
values, the bounds -log N - ½log(2πσ²) and -½log(2πσ²), lookup weights softmax(-(y - F(x_n))²/2γ²)."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from scipy import special, stats

from memprior import mle, plots
from memprior import posterior as P
from memprior.plots import memorize as PM
from memprior.widgets import App, callback_latencies
from memprior.widgets import memorize as WM

torch.set_num_threads(1)
D64 = torch.float64
X5 = torch.tensor([[-1.5], [-0.4], [0.4], [1.2], [2.5]], dtype=D64)


@pytest.fixture(scope="module")
def data():
    plots.init()
    ref = mle.reference_density()
    pool = ref.sample(60, generator=torch.Generator().manual_seed(0))
    x_test = ref.sample(300, generator=torch.Generator().manual_seed(1))
    return pool, x_test


def _y(trace):
    return np.asarray(trace.y, dtype=float)


def kde(x_train, sigma, x):
    """Kernel density (1/N) Σ N(x; x_n, σ²) at ``x``, in numpy."""
    return stats.norm.pdf(np.asarray(x, float)[:, None], np.asarray(x_train, float).reshape(-1)[None, :], sigma).mean(1)


def mean_log_kde(x_train, sigma, x):
    """Mean log kernel density at the points ``x`` (log-space: logsumexp over the kernels)."""
    logk = stats.norm.logpdf(np.asarray(x, float).reshape(-1)[:, None], np.asarray(x_train, float).reshape(-1)[None, :],
                             sigma)
    return float(np.mean(special.logsumexp(logk, axis=1) - np.log(logk.shape[1])))


def true_density(x):
    """Chapter 1's data density: ½ N(−1, 0.5²) + ½ N(1.5, 0.5²)."""
    return 0.5 * (stats.norm.pdf(x, -1.0, 0.5) + stats.norm.pdf(x, 1.5, 0.5))


def lookup_weights(x_train, y, gamma):
    """softmax(−(y − F(x_n))² / 2γ²) for the cubic F(x) = x + 0.3x³."""
    xn = np.asarray(x_train, float).reshape(-1)
    logw = -(y - (xn + 0.3 * xn ** 3)) ** 2 / (2 * gamma ** 2)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def _exp_h(w):
    w = w[w > 0]
    return float(np.exp(-(w * np.log(w)).sum()))


def close32(actual, desired):
    """Slider frames store float32 (x and y): agreement to that precision, relative to the curve's scale
    (a float32 x moves a σ = 0.01 kernel by up to 1e-5 of its height)."""
    desired = np.asarray(desired, dtype=float)
    np.testing.assert_allclose(np.asarray(actual, dtype=float), desired, rtol=2e-6, atol=3e-5 * np.abs(desired).max())


def _finite_traces(fig):
    for tr in fig.data:
        for key in ("x", "y"):
            v = getattr(tr, key, None)
            if v is not None and len(v) and np.asarray(v).dtype.kind == "f":
                assert np.all(np.isfinite(np.asarray(v, dtype=float))), (tr.name, key)


def test_adaptive_grid_resolves_narrow_bumps():
    g = PM.adaptive_grid(-1, 1, [0.0, 0.5], 1e-3)
    assert np.all(np.diff(g) > 0) and g[0] == -1 and g[-1] == 1
    assert np.sum(np.abs(g) <= 4e-3) >= 9      # nodes within the narrow bump at 0
    assert PM.adaptive_grid(-1, 1, [0.0], 0.5).size == 300  # wide bumps: the uniform grid suffices
    with pytest.raises(ValueError, match="sigma"):
        PM.adaptive_grid(-1, 1, [0.0], 0.0)
    with pytest.raises(ValueError, match="lo, hi"):
        PM.adaptive_grid(1, -1, [0.0], 0.1)


def test_bandwidth_panel_density_integrates_to_one(data):
    pool, x_test = data
    cur = mle.bandwidth_curve(pool[:20], np.geomspace(1e-3, 5, 30), x_test)
    for s in (0.005, 0.3):
        pan = PM.bandwidth_panel(pool[:20], s, cur, lo=-6, hi=7)
        assert np.trapezoid(pan["kde"], pan["x"]) == pytest.approx(1.0, abs=2e-3)
        assert np.trapezoid(pan["truth"], pan["x"]) == pytest.approx(1.0, abs=1e-3)
        assert pan["train_at"] == pytest.approx(mle.log_likelihood(pool[:20], pool[:20], s))
    with pytest.raises(ValueError, match="x_train"):
        PM.bandwidth_panel(torch.zeros(3, 2, dtype=D64), 0.1, cur)
    with pytest.raises(TypeError, match="curve"):
        PM.bandwidth_panel(pool[:20], 0.1, None)


def test_twins_draw_numpy_densities_likelihoods_and_weights(data):
    pool, x_test = data
    xt = pool[:20].numpy()
    sig = np.geomspace(1e-3, 5, 30)
    cur = mle.bandwidth_curve(pool[:20], sig, x_test)
    f1 = PM.twin_bandwidth(pool[:20], cur, [0.01, 0.1, 1.0], active=1)
    assert len(f1.frames) == 3 and f1.layout.sliders[0].active == 1
    for frame, s in zip(f1.frames, (0.01, 0.1, 1.0)):
        x = np.asarray(frame.data[0].x, dtype=float)
        close32(_y(frame.data[0]), kde(xt, s, x))  # p_sigma on the plotting grid
        close32(_y(frame.data[1]), true_density(x))
        close32(np.asarray(frame.data[2].x, dtype=float), xt[:, 0])
        assert frame.data[5].y[0] == pytest.approx(mean_log_kde(xt, s, xt), rel=1e-6)  # train marker at sigma
        # the curves: training and held-out mean log-density at each of the 30 bandwidths
        close32(_y(frame.data[3]), [mean_log_kde(xt, v, xt) for v in sig])
        close32(_y(frame.data[4]), [mean_log_kde(xt, v, x_test.numpy()) for v in sig])
    # narrow kernels resolved: at sigma = 0.01 the density peaks near 1 / (N sqrt(2 pi) sigma) on the examples
    peak = float(_y(f1.frames[0].data[0]).max())
    assert 1 / (20 * np.sqrt(2 * np.pi) * 0.01) <= peak < 3 / (20 * np.sqrt(2 * np.pi) * 0.01)
    curves = {n: mle.bandwidth_curve(pool[:n], sig, x_test, loo=False) for n in (5, 20, 60)}
    optima = {n: mle.heldout_optimum(pool[:n], x_test, n_grid=10) for n in curves}
    f2 = PM.twin_sample_size(curves, optima)
    assert len(f2.frames) == 3
    for frame, n in zip(f2.frames, (5, 20, 60)):
        lower = -np.log(n) - 0.5 * np.log(2 * np.pi * sig ** 2)  # every example on its own kernel
        close32(_y(frame.data[0]), lower)
        close32(_y(frame.data[1]), [mean_log_kde(pool[:n].numpy(), v, pool[:n].numpy()) for v in sig])
        assert frame.data[3].x[0] == pytest.approx(optima[n], rel=1e-6)
    fit = mle.fit_flexible_mixture(pool[:4], steps=40, record_every=10, x_test=x_test)
    f3 = PM.twin_flexible(fit, every=2)
    assert len(f3.frames) == 3  # records 0, 20, 40 (every 2nd of 5, plus the last)
    f4 = PM.twin_lookup(P.cubic_forward, X5, np.linspace(-3.5, 3.5, 101), [(0.0, 0.3), (1.0, 0.3)], ["0", "1"])
    assert len(f4.frames) == 2
    for frame, y in zip(f4.frames, (0.0, 1.0)):
        close32(_y(frame.data[4]), lookup_weights(X5, y, 0.3))
        assert list(frame.data[1].y) == [y, y] and list(frame.data[0].y[:3]) == [y - 0.3, y - 0.3, y + 0.3]
    for f in (f1, f2, f3, f4):
        assert plots.figure_bytes(f) < 1_500_000
        _finite_traces(f)
    with pytest.raises(ValueError, match="optima"):
        PM.twin_sample_size(curves, {5: 0.3})
    with pytest.raises(ValueError, match="settings"):
        PM.twin_lookup(P.cubic_forward, X5, np.linspace(-1, 1, 5), [], [])


def test_static_figures(data):
    pool, x_test = data
    sig = np.geomspace(1e-3, 5, 30)
    cur = mle.bandwidth_curve(pool[:20], sig, x_test)
    f = PM.fig_likelihood_curves(cur, 20, reference=-1.4, sigma_star=0.4)
    assert len(f.data) == 6 and f.layout.xaxis.type == "log"
    byname = {t.name: t for t in f.data}
    xt = pool[:20].numpy()
    # the two bounds in closed form, and the curves as numpy mean log-densities
    np.testing.assert_allclose(_y(f.data[0]), -0.5 * np.log(2 * np.pi * sig ** 2), rtol=1e-12)  # any mixture
    np.testing.assert_allclose(_y(f.data[1]), -np.log(20) - 0.5 * np.log(2 * np.pi * sig ** 2), rtol=1e-12)
    np.testing.assert_allclose(_y(byname[PM.CURVES["train"]["name"]]), [mean_log_kde(xt, v, xt) for v in sig],
                               rtol=1e-10)
    np.testing.assert_allclose(_y(byname[PM.CURVES["loo"]["name"]]),
                               [np.mean([mean_log_kde(np.delete(xt, i), v, xt[i]) for i in range(20)]) for v in sig],
                               rtol=1e-9)
    np.testing.assert_allclose(_y(byname[PM.CURVES["heldout"]["name"]]),
                               [mean_log_kde(xt, v, x_test.numpy()) for v in sig], rtol=1e-10)
    assert list(byname[PM.CURVES["ref"]["name"]].y) == [-1.4, -1.4]
    f = PM.fig_optimum_vs_n([5, 50, 500], [0.5, 0.3, 0.2], [0.2, 0.05, 0.01])
    assert len(f.data) == 3
    # the dotted reference is the power law through the first point: 0.5 (N / 5)^slope, slope -1/5 by default
    slope = np.log(_y(f.data[1])[-1] / 0.5) / np.log(100)
    np.testing.assert_allclose(_y(f.data[1]), 0.5 * (np.array([5, 50, 500]) / 5) ** slope, rtol=1e-12)
    assert f"N<sup>{slope:g}</sup>" in f.data[1].name
    with pytest.raises(ValueError, match="excess"):
        PM.fig_optimum_vs_n([5, 50], [0.5, 0.3], [0.2])
    fit = mle.fit_flexible_mixture(pool[:4], steps=20, record_every=5, x_test=x_test)
    assert len(PM.fig_flexible_history(fit).data) == 4
    f = PM.fig_effective_components([0.1, 1.0], {"a": [1.0, 2.0]}, n=5)
    assert len(f.data) == 3
    with pytest.raises(ValueError, match="curves"):
        PM.fig_effective_components([0.1, 1.0], {"a": [1.0]}, n=5)
    W = np.full((2, 5), 0.2)
    f = PM.fig_lookup_limit([0.1, 0.01], W, np.full(5, 0.2), X5[:, 0].numpy(), [1e-2, 1e-4])
    assert len(f.data) == 12
    with pytest.raises(ValueError, match="inconsistent"):
        PM.fig_lookup_limit([0.1], W, np.full(5, 0.2), X5[:, 0].numpy(), [1e-2])


def test_lookup_panel_is_the_softmax_of_the_misfits():
    grid = np.linspace(-3, 3, 11)
    pan = PM.lookup_panel(P.cubic_forward, X5, 1.0, 0.3, grid)
    xn = X5[:, 0].numpy()
    np.testing.assert_allclose(pan["F"], grid + 0.3 * grid ** 3, rtol=1e-12)
    np.testing.assert_allclose(pan["F_train"], xn + 0.3 * xn ** 3, rtol=1e-12)
    np.testing.assert_allclose(pan["misfit"], (1.0 - (xn + 0.3 * xn ** 3)) ** 2 / (2 * 0.09), rtol=1e-12)
    np.testing.assert_allclose(pan["weights"], lookup_weights(X5, 1.0, 0.3), rtol=1e-12)
    assert pan["exp_h"] == pytest.approx(_exp_h(lookup_weights(X5, 1.0, 0.3)), rel=1e-12)
    # x = 0.4 (F = 0.52) and x = 1.2 (F = 1.72) are both 0.5-0.7 from y = 1: exp(H) between 1 and 2
    assert 1.0 < pan["exp_h"] < 2.2
    with pytest.raises(ValueError, match="gamma"):
        PM.lookup_panel(P.cubic_forward, X5, 1.0, 0.0, np.linspace(-3, 3, 11))
    np.testing.assert_allclose(PM.weight_marker_size([0.0, 1.0, 2.0]), [7.0, 25.0, 25.0])


@pytest.mark.parametrize("live", [False, True])
def test_bandwidth_app_updates_its_figure(data, live):
    pool, x_test = data
    app = WM.bandwidth_app(pool, x_test, ns=(5, 20, 60), n=20, sigma=0.3, live=live)
    assert isinstance(app, App) and isinstance(app.figure, go.FigureWidget if live else go.Figure)
    x0 = np.asarray(app.figure.data[0].x, dtype=float)
    np.testing.assert_allclose(_y(app.figure.data[0]), kde(pool[:20].numpy(), 0.3, x0), rtol=1e-9)
    app.update(N=60, sigma=0.01)
    x1 = np.asarray(app.figure.data[0].x, dtype=float)
    np.testing.assert_allclose(_y(app.figure.data[0]), kde(pool.numpy(), 0.01, x1), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(app.figure.data[2].x, dtype=float), pool[:, 0].numpy())  # the examples
    assert app.figure.data[5].x[0] == pytest.approx(0.01)
    assert app.figure.data[5].y[0] == pytest.approx(mean_log_kde(pool.numpy(), 0.01, pool.numpy()), rel=1e-10)
    # the held-out marker sits on the held-out curve (interpolated in log sigma) of N = 60
    curve_x, curve_y = np.asarray(app.figure.data[4].x, float), _y(app.figure.data[4])
    assert app.figure.data[6].y[0] == pytest.approx(np.interp(np.log(0.01), np.log(curve_x), curve_y), rel=1e-10)
    np.testing.assert_allclose(curve_y, [mean_log_kde(pool.numpy(), v, x_test.numpy()) for v in curve_x], rtol=1e-10)
    lat = callback_latencies(app, [dict(N=5, sigma=1.0), dict(N=20, sigma=0.05)])
    assert lat.shape == (2,) and np.all(lat > 0)
    _finite_traces(app.figure)
    if not live:
        with pytest.raises(TypeError, match="live"):
            app.widget  # noqa: B018


def test_lookup_app_updates_its_figure():
    app = WM.lookup_app(P.cubic_forward, X5, np.linspace(-3.5, 3.5, 51), y=1.0, gamma=0.3, live=False)
    np.testing.assert_allclose(_y(app.figure.data[4]), lookup_weights(X5, 1.0, 0.3), rtol=1e-9)
    app.update(y=-2.0, gamma=0.7)
    np.testing.assert_allclose(_y(app.figure.data[4]), lookup_weights(X5, -2.0, 0.7), rtol=1e-9)
    np.testing.assert_allclose(app.figure.data[3].marker.size,
                               7 + 18 * np.sqrt(lookup_weights(X5, -2.0, 0.7)), rtol=1e-9)
    app.update(y=0.0, gamma=1e-3)
    np.testing.assert_allclose(np.array(app.figure.data[4].y), [0, 0.5, 0.5, 0, 0], atol=1e-12)
    assert "exp(H) = 2.00" in app.figure.layout.title.text
    app.update(gamma=20.0)
    assert np.allclose(np.array(app.figure.data[4].y), 0.2, atol=0.02)


def test_apps_reject_bad_input(data):
    pool, x_test = data
    with pytest.raises(ValueError, match="ns"):
        WM.bandwidth_app(pool, x_test, ns=(5, 1000))
    with pytest.raises(ValueError, match="n:"):
        WM.bandwidth_app(pool, x_test, ns=(5, 20), n=7)
    with pytest.raises(ValueError, match="sigma"):
        WM.bandwidth_app(pool, x_test, ns=(5, 20), n=5, sigma=-1)
    with pytest.raises(TypeError, match="live"):
        WM.bandwidth_app(pool, x_test, ns=(5, 20), n=5, live="no")
    with pytest.raises(ValueError, match="gamma"):
        WM.lookup_app(P.cubic_forward, X5, np.linspace(-1, 1, 5), gamma=0.0)

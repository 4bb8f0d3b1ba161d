"""Tests for the chapter 1-2 figures (memprior.plots.memorize) and apps (memprior.widgets.memorize)."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

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


def test_twins_have_one_frame_per_step_and_stay_small(data):
    pool, x_test = data
    sig = np.geomspace(1e-3, 5, 30)
    cur = mle.bandwidth_curve(pool[:20], sig, x_test)
    f1 = PM.twin_bandwidth(pool[:20], cur, [0.01, 0.1, 1.0], active=1)
    assert len(f1.frames) == 3 and f1.layout.sliders[0].active == 1
    curves = {n: mle.bandwidth_curve(pool[:n], sig, x_test, loo=False) for n in (5, 20, 60)}
    optima = {n: mle.heldout_optimum(pool[:n], x_test, n_grid=10) for n in curves}
    f2 = PM.twin_sample_size(curves, optima)
    assert len(f2.frames) == 3
    fit = mle.fit_flexible_mixture(pool[:4], steps=40, record_every=10, x_test=x_test)
    f3 = PM.twin_flexible(fit, every=2)
    assert len(f3.frames) == 3  # records 0, 20, 40 (every 2nd of 5, plus the last)
    f4 = PM.twin_lookup(P.cubic_forward, X5, np.linspace(-3.5, 3.5, 101), [(0.0, 0.3), (1.0, 0.3)], ["0", "1"])
    assert len(f4.frames) == 2
    for f in (f1, f2, f3, f4):
        assert plots.figure_bytes(f) < 1_500_000
        _finite_traces(f)
    with pytest.raises(ValueError, match="optima"):
        PM.twin_sample_size(curves, {5: 0.3})
    with pytest.raises(ValueError, match="settings"):
        PM.twin_lookup(P.cubic_forward, X5, np.linspace(-1, 1, 5), [], [])


def test_static_figures(data):
    pool, x_test = data
    cur = mle.bandwidth_curve(pool[:20], np.geomspace(1e-3, 5, 30), x_test)
    f = PM.fig_likelihood_curves(cur, 20, reference=-1.4, sigma_star=0.4)
    assert len(f.data) == 6 and f.layout.xaxis.type == "log"
    f = PM.fig_optimum_vs_n([5, 50, 500], [0.5, 0.3, 0.2], [0.2, 0.05, 0.01])
    assert len(f.data) == 3
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


def test_lookup_panel_matches_library():
    pan = PM.lookup_panel(P.cubic_forward, X5, 1.0, 0.3, np.linspace(-3, 3, 11))
    w = P.lookup_weights(P.cubic_forward, X5, torch.tensor([1.0], dtype=D64), 0.3).numpy()
    np.testing.assert_allclose(pan["weights"], w)
    np.testing.assert_allclose(pan["misfit"], (1.0 - pan["F_train"]) ** 2 / (2 * 0.09))
    assert 1.0 <= pan["exp_h"] <= 5.0
    with pytest.raises(ValueError, match="gamma"):
        PM.lookup_panel(P.cubic_forward, X5, 1.0, 0.0, np.linspace(-3, 3, 11))
    np.testing.assert_allclose(PM.weight_marker_size([0.0, 1.0, 2.0]), [7.0, 25.0, 25.0])


@pytest.mark.parametrize("live", [False, True])
def test_bandwidth_app_updates_its_figure(data, live):
    pool, x_test = data
    app = WM.bandwidth_app(pool, x_test, ns=(5, 20, 60), n=20, sigma=0.3, live=live)
    assert isinstance(app, App) and isinstance(app.figure, go.FigureWidget if live else go.Figure)
    before = np.array(app.figure.data[0].y)
    app.update(N=60, sigma=0.01)
    after = np.array(app.figure.data[0].y)
    assert after.max() > 3 * before.max()                 # narrow kernels: spikes
    assert len(app.figure.data[2].x) == 60                # the training examples shown
    assert app.figure.data[5].x[0] == pytest.approx(0.01)
    assert app.figure.data[5].y[0] == pytest.approx(mle.log_likelihood(pool, pool, 0.01))
    lat = callback_latencies(app, [dict(N=5, sigma=1.0), dict(N=20, sigma=0.05)])
    assert lat.shape == (2,) and np.all(lat > 0)
    _finite_traces(app.figure)
    if not live:
        with pytest.raises(TypeError, match="live"):
            app.widget  # noqa: B018


def test_lookup_app_updates_its_figure():
    app = WM.lookup_app(P.cubic_forward, X5, np.linspace(-3.5, 3.5, 51), y=1.0, gamma=0.3, live=False)
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

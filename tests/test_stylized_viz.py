"""Tests for the chapter-3 figures and live app: data agree with the library, twins are well formed."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from memprior import plots
from memprior import posterior as P
from memprior.plots import stylized as S
from memprior.widgets import App, callback_latencies
from memprior.widgets import stylized as WS

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pr1():
    return P.stylized_1d()


def test_panel_1d_matches_library(pr1):
    pan = S.panel_1d(pr1, 0.3)
    vol = P.cell_volumes(pr1.grid).numpy()
    for key in ("prior", "likelihood", "exact", "lin", "lin0"):
        assert np.isfinite(pan[key]).all() and (pan[key] >= 0).all()
    for key in ("likelihood", "exact", "lin", "lin0"):
        assert abs((pan[key] * vol).sum() - 1) < 1e-9, key
    np.testing.assert_allclose(pan["w_exact"], P.component_weights(*pr1.args(), 0.3, 0.3, pr1.grid).numpy())
    np.testing.assert_allclose(pan["w_lin0"], P.linearized_mixture(*pr1.args(), 0.3, 0.3, logdet=False).weights.numpy())
    assert 1 <= pan["exp_h"] <= 5 and 0 <= pan["tv_lin"] <= 1
    with pytest.raises(ValueError, match="sigma"):
        S.panel_1d(pr1, -1.0)
    with pytest.raises(ValueError, match="problem"):
        S.panel_1d(P.stylized_2d(n_grid=30), 0.3)


def test_panel_2d_shapes_and_weights():
    pr2 = P.stylized_2d(n_grid=80)
    pan = S.panel_2d(pr2, 0.5, n_display=40)
    assert pan["exact"].shape == (40, 40) and pan["x1"].shape == (40,)
    np.testing.assert_allclose(pan["w_exact"].sum(), 1.0)
    assert pan["tv_lin"] <= pan["tv_lin0"] + 1e-12


def test_figures_are_light_and_well_formed(pr1):
    plots.init()
    f1 = S.fig_1d_panels(pr1, (0.5, 0.05))
    assert len(f1.data) == 2 * (6 + 3)
    tw = S.twin_sigma(pr1, [0.05, 0.3, 1.0])
    assert len(tw.frames) == 3 and len(tw.layout.sliders[0].steps) == 3
    # every frame carries the same traces as the figure, in the same order
    assert all(len(fr.data) == len(tw.data) for fr in tw.frames)
    assert [t.type for t in tw.frames[0].data] == [t.type for t in tw.data]
    # frames differ: the exact posterior changes with sigma
    assert not np.allclose(np.asarray(tw.frames[0].data[2].y), np.asarray(tw.frames[2].data[2].y))
    f2 = S.fig_2d_slider(P.stylized_2d(n_grid=60), sigmas=(0.5, 0.3), n_display=30, active=0)
    for f in (f1, tw, f2):
        assert plots.figure_bytes(f) < 1.5 * 2 ** 20
    curve = P.effective_components_curve(P.stylized_sweep(5, n_grid=401), [0.05, 1.0])
    fe = S.fig_effective_components({5: curve}, {5: 0.3})
    assert len(fe.data) == 3
    with pytest.raises(TypeError, match="problem_fn"):
        S.twin_y("not callable", [0.0], 0.3)


def test_live_app_updates_and_times():
    app = WS.stylized_app()
    assert isinstance(app, App) and isinstance(app.figure, go.FigureWidget)
    before = np.asarray(app.figure.data[2].y).copy()
    app.update(sigma=0.05)
    after = np.asarray(app.figure.data[2].y)
    assert not np.allclose(before, after)
    # the figure shows what the library computes for these settings
    pan = S.panel_1d(WS.training_problem(0, 0.0, 0.3), 0.05)
    np.testing.assert_allclose(after, pan["exact"], rtol=1e-6)
    app.update(n=100, y=1.0, gamma=0.1)
    assert len(app.figure.data[6].y) == 100
    lat = callback_latencies(app, WS.benchmark_settings(6))
    assert lat.shape == (6,) and np.isfinite(lat).all() and (lat > 0).all()
    off = WS.stylized_app(live=False)
    assert isinstance(off.figure, go.Figure) and not isinstance(off.figure, go.FigureWidget)
    off.update(sigma=0.5)
    np.testing.assert_allclose(np.asarray(off.figure.data[2].y), S.panel_1d(WS.training_problem(0, 0.0, 0.3), 0.5)["exact"],
                               rtol=1e-6)


def test_app_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        WS.stylized_app(sigma=0.0)
    with pytest.raises(ValueError, match="n"):
        WS.stylized_app(n=7)
    with pytest.raises(TypeError, match="live"):
        WS.stylized_app(live="yes")
    with pytest.raises(ValueError, match="n"):
        WS.training_problem(1, 0.0, 0.3)
    with pytest.raises(ValueError, match="n_moves"):
        WS.benchmark_settings(0)
    settings = WS.benchmark_settings(12, seed=3)
    assert settings == WS.benchmark_settings(12, seed=3)
    assert {s["n"] for s in settings} == set(WS.TRAINING_SETS.values())



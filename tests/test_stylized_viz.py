"""Tests for the chapter-3 figures and live app: data agree with the library, twins are well formed."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from memprior import plots
from memprior import posterior as P
from memprior.experiments import stylized as ex
from memprior.plots import stylized as S
from memprior.widgets import App, callback_latencies
from memprior.widgets import stylized as WS

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pr1():
    return P.stylized_1d()


def test_figures_are_light_and_well_formed(pr1):
    plots.init()
    f1 = S.fig_1d_panels(ex.panels_over_sigma((0.5, 0.05)))
    assert len(f1.data) == 2 * (6 + 3)
    # the figure shows the experiment's numbers
    np.testing.assert_allclose(np.asarray(f1.data[2].y), ex.panel_1d(pr1, 0.5).exact, rtol=1e-6, atol=1e-9)  # float32
    tw = S.twin_sigma(ex.panels_over_sigma([0.05, 0.3, 1.0]))
    assert len(tw.frames) == 3 and len(tw.layout.sliders[0].steps) == 3
    # every frame carries the same traces as the figure, in the same order
    assert all(len(fr.data) == len(tw.data) for fr in tw.frames)
    assert [t.type for t in tw.frames[0].data] == [t.type for t in tw.data]
    # frames differ: the exact posterior changes with sigma
    assert not np.allclose(np.asarray(tw.frames[0].data[2].y), np.asarray(tw.frames[2].data[2].y))
    f2 = S.fig_2d_slider(ex.pentagon((0.5, 0.3), n_grid=60, n_display=30), active=0)
    ty = S.twin_y(ex.panels_over_datum((-1.0, 0.0, 1.0), n_grid=201))
    assert [s.label for s in ty.layout.sliders[0].steps] == ["-1.00", "0.00", "1.00"]
    for f in (f1, tw, f2, ty):
        assert plots.figure_bytes(f) < 1.5 * 2 ** 20
    sw = ex.components_sweep(ns=(5,), sigmas=(0.05, 1.0), n_grid=401)
    fe = S.fig_effective_components(sw)
    assert len(fe.data) == 3
    assert len(S.fig_components_vs_modes(sw.curve(5), 5).data) == 3
    fl = S.fig_lookup_limit(ex.lookup_limit(sigmas=(0.01, 1.0), gap_sigmas=(0.1,), n_grid=201))
    assert len(fl.data) == 10
    curves = ex.linearization_errors(P.stylized_1d(n_grid=201), [0.1, 0.5])
    assert len(S.fig_linearization_errors({"1-D": curves}).data) == 4
    with pytest.raises(TypeError, match="panels"):
        S.twin_y("not panels")
    with pytest.raises(TypeError, match="sweep"):
        S.fig_effective_components({5: None})


def test_live_app_updates_and_times():
    app = WS.stylized_app()
    assert isinstance(app, App) and isinstance(app.figure, go.FigureWidget)
    before = np.asarray(app.figure.data[2].y).copy()
    app.update(sigma=0.05)
    after = np.asarray(app.figure.data[2].y)
    assert not np.allclose(before, after)
    # the figure shows what the library computes for these settings
    pan = ex.panel_1d(WS.training_problem(0, 0.0, 0.3), 0.05)
    np.testing.assert_allclose(after, pan.exact, rtol=1e-6)
    app.update(n=100, y=1.0, gamma=0.1)
    assert len(app.figure.data[6].y) == 100
    lat = callback_latencies(app, WS.benchmark_settings(6))
    assert lat.shape == (6,) and np.isfinite(lat).all() and (lat > 0).all()
    off = WS.stylized_app(live=False)
    assert isinstance(off.figure, go.Figure) and not isinstance(off.figure, go.FigureWidget)
    off.update(sigma=0.5)
    np.testing.assert_allclose(np.asarray(off.figure.data[2].y),
                               ex.panel_1d(WS.training_problem(0, 0.0, 0.3), 0.5).exact,
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




def test_chapter_figures_are_light():
    """The chapter's heaviest figures, at the chapter's settings, stay below the 1.5 MB budget."""
    plots.init()
    heavy = (S.fig_2d_slider(ex.pentagon((0.8, 0.5, 0.3, 0.15)), active=1),
             S.twin_sigma(ex.panels_over_sigma(np.geomspace(0.03, 1.0, 13))),
             S.twin_y(ex.panels_over_datum(np.round(np.linspace(-2.0, 2.0, 11), 2), sigma=0.3)))
    for f in heavy:
        assert plots.figure_bytes(f) < 1.5 * 2 ** 20

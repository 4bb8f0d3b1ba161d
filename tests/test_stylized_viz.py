"""Tests for the chapter-3 figures and live app: every curve and bar they draw agrees with a numpy
re-derivation of the posterior from first principles (quadrature of prior x likelihood, the
closed-form linearized mixture); twins are well formed."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from scipy import stats

from memprior import plots
from memprior import posterior as P
from memprior.experiments import stylized as ex
from memprior.plots import stylized as S
from memprior.widgets import App, callback_latencies
from memprior.widgets import stylized as WS

torch.set_num_threads(1)


PAPER_X = np.array([-1.5, -0.4, 0.4, 1.2, 2.5])


def _softmax(logw):
    w = np.exp(logw - logw.max())
    return w / w.sum()


def _exp_h(w):
    w = w[w > 0]
    return float(np.exp(-(w * np.log(w)).sum()))


def reference_1d(x_train, y, sigma, gamma, n_grid=500):
    """The 1-D cubic problem F(x) = x + 0.3x³ from first principles, in numpy.

    Exact posterior: N(x; x_n, σ²) exp(−(y − F(x))²/2γ²) averaged over n at ``n_grid`` nodes of
    [−3.5, 3.5], normalized by the trapezoid rule. Exact weights: the documented product rule of
    :func:`memprior.posterior.component_weights` (the likelihood at each node times the Gaussian's exact
    mass Φ(b) − Φ(a) on the node's cell, cells ending halfway between nodes).
    Linearized mixture: F(x) ≈ F(x_n) + F′(x_n)(x − x_n), so each component is Gaussian with variance
    σ²γ²/C_n and mean x_n + σ²F′_n(y − F_n)/C_n, C_n = γ² + σ²F′_n²,
    and its weight ∝ C_n^(−1/2) exp(−(y − F_n)²/2C_n) (without the C_n^(−1/2) for ``lin0``).
    Densities are renormalized on the grid, as the panels draw them.
    """
    x = np.linspace(-3.5, 3.5, n_grid)
    xn = np.asarray(x_train, dtype=float)
    fwd = x + 0.3 * x ** 3
    comp = stats.norm.pdf(x[:, None], xn[None, :], sigma)  # [G, N]
    lik = np.exp(-(y - fwd) ** 2 / (2 * gamma ** 2))
    prior = comp.mean(1)
    post = prior * lik
    h = x[1] - x[0]
    edges = np.concatenate([[x[0] - h / 2], (x[1:] + x[:-1]) / 2, [x[-1] + h / 2]])
    mass = lik @ np.diff(stats.norm.cdf((edges[:, None] - xn[None, :]) / sigma), axis=0)
    Fn, Jn = xn + 0.3 * xn ** 3, 1 + 0.9 * xn ** 2
    C = gamma ** 2 + sigma ** 2 * Jn ** 2
    mu, sd = xn + sigma ** 2 * Jn * (y - Fn) / C, sigma * gamma / np.sqrt(C)
    w_lin = _softmax(-(y - Fn) ** 2 / (2 * C) - 0.5 * np.log(C))
    w_lin0 = _softmax(-(y - Fn) ** 2 / (2 * C))
    out = dict(x=x, prior=prior, likelihood=lik / np.trapezoid(lik, x), exact=post / np.trapezoid(post, x),
               w_exact=mass / mass.sum(), w_lin=w_lin, w_lin0=w_lin0,
               w_lookup=_softmax(-(y - Fn) ** 2 / (2 * gamma ** 2)))
    for key, w in (("lin", w_lin), ("lin0", w_lin0)):
        dens = (w * stats.norm.pdf(x[:, None], mu, sd)).sum(1)
        out[key] = dens / np.trapezoid(dens, x)
    out["exp_h"] = _exp_h(out["w_exact"])
    return out


def _y(trace):
    return np.asarray(trace.y, dtype=float)


def assert_panel_traces(traces, ref, rtol=2e-5):
    """The 9 traces of one 1-D panel (5 densities, training points, 3 weight bars) against ``ref``."""
    for i, key in enumerate(("prior", "likelihood", "exact", "lin", "lin0")):
        np.testing.assert_allclose(np.asarray(traces[i].x, dtype=float), ref["x"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(_y(traces[i]), ref[key], rtol=rtol, atol=rtol * ref[key].max(), err_msg=key)
    for i, key in enumerate(("w_exact", "w_lin", "w_lin0")):
        np.testing.assert_allclose(_y(traces[6 + i]), ref[key], rtol=rtol, atol=1e-9, err_msg=key)


def test_1d_panels_draw_the_first_principles_posterior():
    plots.init()
    f1 = S.fig_1d_panels(ex.panels_over_sigma((0.5, 0.05)))
    assert len(f1.data) == 2 * 9
    for j, sigma in enumerate((0.5, 0.05)):
        ref = reference_1d(PAPER_X, 0.0, sigma, 0.3)
        assert_panel_traces(f1.data[9 * j:9 * (j + 1)], ref)
        np.testing.assert_allclose(np.asarray(f1.data[9 * j + 5].x, dtype=float), PAPER_X, rtol=1e-6)
    # at sigma = 0.05 the exact weights are near the lookup limit (the two points at ±0.4 share the mass);
    # at sigma = 0.5 they are not
    look = reference_1d(PAPER_X, 0.0, 0.05, 0.3)["w_lookup"]
    assert np.abs(_y(f1.data[15]) - look).max() < 1e-3 < np.abs(_y(f1.data[6]) - look).max()


def test_twins_draw_the_first_principles_posterior_in_every_frame():
    tw = S.twin_sigma(ex.panels_over_sigma([0.05, 0.3, 1.0]))
    assert [s.label for s in tw.layout.sliders[0].steps] == ["0.05", "0.3", "1"]
    for frame, sigma in zip(tw.frames, (0.05, 0.3, 1.0)):
        ref = reference_1d(PAPER_X, 0.0, sigma, 0.3)
        assert_panel_traces(frame.data, ref)
        assert f"exp(H) = {ref['exp_h']:.2f}" in frame.layout.title.text
    ty = S.twin_y(ex.panels_over_datum((-1.0, 0.0, 1.0), n_grid=201))
    assert [s.label for s in ty.layout.sliders[0].steps] == ["-1.00", "0.00", "1.00"]
    for frame, y in zip(ty.frames, (-1.0, 0.0, 1.0)):
        assert_panel_traces(frame.data, reference_1d(PAPER_X, y, 0.3, 0.3, n_grid=201))
    for f in (tw, ty):
        assert plots.figure_bytes(f) < 1.5 * 2 ** 20


def test_2d_slider_heatmaps_are_normalized_first_principles_densities():
    """Pentagon: prior, exact posterior and linearized mixture (with log-det) on the heatmap's own
    nodes, each divided by its maximum; F(x) = [x1 + 0.3 x1 x2, x2 + 0.2 x1²], y = F(0.7 x_0)."""
    f2 = S.fig_2d_slider(ex.pentagon((0.5, 0.3), n_grid=60, n_display=30), active=0)
    ang = 2 * np.pi * np.arange(5) / 5
    xn = 2 * np.stack([np.cos(ang), np.sin(ang)], 1)

    def F(x):
        return np.stack([x[..., 0] + 0.3 * x[..., 0] * x[..., 1], x[..., 1] + 0.2 * x[..., 0] ** 2], -1)

    y, gamma = F(0.7 * xn[0]), 0.3
    for frame, sigma in zip(f2.frames, (0.5, 0.3)):
        hm = [t for t in frame.data if t.type == "heatmap"]
        assert len(hm) == 4
        x1, x2 = np.asarray(hm[0].x, dtype=float), np.asarray(hm[0].y, dtype=float)
        pts = np.stack(np.meshgrid(x1, x2), -1)  # [G2, G1, 2]: heatmap rows are x2
        d2 = ((pts[:, :, None, :] - xn) ** 2).sum(-1)  # [G2, G1, N]
        prior = np.exp(-d2 / (2 * sigma ** 2)).mean(-1)
        post = prior * np.exp(-((y - F(pts)) ** 2).sum(-1) / (2 * gamma ** 2))
        lin = np.zeros_like(prior)
        logw = []
        for n in range(5):  # linearized component n: Gaussian in x, weight N(y; F(x_n), γ²I + σ²JJᵀ)
            a, b = xn[n]
            J = np.array([[1 + 0.3 * b, 0.3 * a], [0.4 * a, 1.0]])
            C = gamma ** 2 * np.eye(2) + sigma ** 2 * J @ J.T
            r = y - F(xn[n])
            cov = np.linalg.inv(np.eye(2) / sigma ** 2 + J.T @ J / gamma ** 2)
            mu = xn[n] + cov @ J.T @ r / gamma ** 2
            logw.append(-0.5 * r @ np.linalg.solve(C, r) - 0.5 * np.log(np.linalg.det(C)))
            lin += stats.multivariate_normal(mu, cov).pdf(pts) * np.exp(logw[-1])
        for t, ref in ((hm[0], prior), (hm[1], post), (hm[2], lin)):
            np.testing.assert_allclose(np.asarray(t.z, dtype=float), ref / ref.max(), rtol=0, atol=2e-6)
    assert plots.figure_bytes(f2) < 1.5 * 2 ** 20


def test_component_figures_match_first_principles_weights():
    # effective components of N = 5 evenly spaced points on [-3, 3], y = 0, gamma = 0.3
    sw = ex.components_sweep(ns=(5,), sigmas=(0.05, 1.0), n_grid=401)
    fe = S.fig_effective_components(sw)
    assert len(fe.data) == 3
    x5 = np.linspace(-3, 3, 5)
    refs = [reference_1d(x5, 0.0, s, 0.3, n_grid=401) for s in (0.05, 1.0)]
    np.testing.assert_allclose(_y(fe.data[0]), [r["exp_h"] for r in refs], rtol=1e-5)
    np.testing.assert_allclose(_y(fe.data[2]), _exp_h(refs[0]["w_lookup"]), rtol=1e-9)
    # sigma_crit marker: sigma^2 |F'| / gamma equal to the spacing, sqrt(1.5 * 0.3 / mean(1 + 0.9 x_n^2))
    assert fe.data[1].x[0] == pytest.approx(np.sqrt(1.5 * 0.3 / np.mean(1 + 0.9 * x5 ** 2)), rel=1e-9)
    fm = S.fig_components_vs_modes(sw.curve(5), 5)
    np.testing.assert_allclose(_y(fm.data[0]), [r["exp_h"] for r in refs], rtol=1e-5)
    np.testing.assert_allclose(_y(fm.data[1]), [_exp_h(r["w_lin"]) for r in refs], rtol=1e-5)
    # lookup limit: exact weight curves (datum 0.45) and the lookup weights they tend to
    fl = S.fig_lookup_limit(ex.lookup_limit(sigmas=(0.01, 1.0), gap_sigmas=(0.1,), n_grid=201))
    assert len(fl.data) == 10
    refs = [reference_1d(PAPER_X, 0.45, s, 0.3, n_grid=201) for s in (0.01, 1.0)]
    for n in range(5):
        np.testing.assert_allclose(_y(fl.data[2 * n]), [r["w_exact"][n] for r in refs], rtol=1e-5, atol=1e-9)
        assert fl.data[2 * n + 1].y[0] == pytest.approx(refs[0]["w_lookup"][n], rel=1e-9)
    # linearization errors: TV = ½∫|exact − lin| and Σ|w_lin − w_exact|, with and without log-det
    curves = ex.linearization_errors(P.stylized_1d(n_grid=201), [0.1, 0.5])
    fg = S.fig_linearization_errors({"1-D": curves})
    refs = [reference_1d(PAPER_X, 0.0, s, 0.3, n_grid=201) for s in (0.1, 0.5)]
    for i, key in enumerate(("lin", "lin0")):
        tv = [0.5 * np.trapezoid(np.abs(r["exact"] - r[key]), r["x"]) for r in refs]
        l1 = [np.abs(r["w_" + key] - r["w_exact"]).sum() for r in refs]
        np.testing.assert_allclose(_y(fg.data[2 * i]), tv, rtol=1e-5)
        np.testing.assert_allclose(_y(fg.data[2 * i + 1]), l1, rtol=1e-5)
    with pytest.raises(TypeError, match="panels"):
        S.twin_y("not panels")
    with pytest.raises(TypeError, match="sweep"):
        S.fig_effective_components({5: None})


def test_live_app_draws_the_first_principles_posterior_after_each_move():
    app = WS.stylized_app()
    assert isinstance(app, App) and isinstance(app.figure, go.FigureWidget)
    assert_panel_traces(app.figure.data, reference_1d(PAPER_X, 0.0, 0.3, 0.3))  # the initial state
    app.update(sigma=0.05)
    assert_panel_traces(app.figure.data, reference_1d(PAPER_X, 0.0, 0.05, 0.3))
    app.update(n=100, y=1.0, gamma=0.1)  # 100 evenly spaced points, another datum and noise level
    assert_panel_traces(app.figure.data, reference_1d(np.linspace(-3, 3, 100), 1.0, 0.05, 0.1))
    assert "γ = 0.1, y = 1.00" in app.figure.layout.title.text
    lat = callback_latencies(app, WS.benchmark_settings(6))
    assert lat.shape == (6,) and np.isfinite(lat).all() and (lat > 0).all()
    off = WS.stylized_app(live=False)
    assert isinstance(off.figure, go.Figure) and not isinstance(off.figure, go.FigureWidget)
    off.update(sigma=0.5)
    assert_panel_traces(off.figure.data, reference_1d(PAPER_X, 0.0, 0.5, 0.3))


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

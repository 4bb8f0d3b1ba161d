"""Figures for chapter 3, "A stylized inverse problem".

The numbers come from :mod:`memprior.posterior`; this module only arranges them.
:func:`panel_1d` gathers everything one 1-D panel shows (it is also what the live
widget recomputes on every slider move), and the ``fig_*`` builders draw the
paper's panels, the error and effective-component curves, and the kernel-free
slider twins of the live app.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import posterior as P
from .._checks import check_int, check_positive
from ..mixture import GaussianMixturePrior
from . import PALETTE, SEQUENTIAL, compact, figure, slider_figure, to_numpy

__all__ = [
    "panel_1d",
    "panel_2d",
    "fig_1d_panels",
    "fig_2d_slider",
    "fig_lookup_limit",
    "fig_linearization_errors",
    "fig_effective_components",
    "fig_components_vs_modes",
    "twin_sigma",
    "twin_y",
    "STYLE",
]

#: Colour and dash of each curve, shared by figures, twins and the live app.
STYLE = {
    "prior": dict(color="#888888", dash="dot", name="prior p<sub>σ</sub>"),
    "likelihood": dict(color=PALETTE[4], dash="dash", name="likelihood (normalized)"),
    "exact": dict(color=PALETTE[7], dash="solid", name="exact posterior"),
    "lin": dict(color=PALETTE[0], dash="solid", name="linearized, with log-det"),
    "lin0": dict(color=PALETTE[1], dash="dashdot", name="linearized, no log-det (paper code)"),
    "train": dict(color=PALETTE[2], name="training points"),
}
_XLAB = "model x (dimensionless)"
_DENS = "density (per unit x)"


def panel_1d(problem: P.Problem, sigma: float) -> dict:
    """Everything a 1-D panel shows at bandwidth ``sigma``, as numpy arrays.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        A 1-D problem (``x_train`` of shape [N, 1]).
    sigma : float
        Prior bandwidth, > 0.

    Returns
    -------
    dict
        ``x`` [G] grid; densities on the grid [G]: ``prior``, ``likelihood`` (normalized in x),
        ``exact``, ``lin``, ``lin0``; component weights [N]: ``w_exact``, ``w_lin``, ``w_lin0``,
        ``w_lookup``; ``x_train`` [N]; scalars ``exp_h`` (exact weights), ``tv_lin``, ``tv_lin0``.
    """
    sigma = check_positive("sigma", sigma)
    F, x, y = problem.args()
    if x.shape[1] != 1:
        raise ValueError(f"problem: panel_1d needs a 1-D problem (d = 1), got d = {x.shape[1]}")
    g = problem.grid
    vol = P.cell_volumes(g)
    prior = GaussianMixturePrior(x, sigma).log_prob(g[:, None]).exp()
    loglik = -((y[None, :] - F(g[:, None])) ** 2).sum(1) / (2 * problem.gamma ** 2)
    lik = (loglik - (loglik + vol.log()).logsumexp(0)).exp()
    exact = P.grid_posterior(F, x, y, sigma, problem.gamma, g)
    lm = P.linearized_mixture(F, x, y, sigma, problem.gamma, logdet=True)
    lm0 = P.linearized_mixture(F, x, y, sigma, problem.gamma, logdet=False)
    lin = P.grid_density(lm, g)
    lin0 = P.grid_density(lm0, g)
    w = P.component_weights(F, x, y, sigma, problem.gamma, g)
    return dict(
        x=to_numpy(g), prior=to_numpy(prior), likelihood=to_numpy(lik), exact=to_numpy(exact), lin=to_numpy(lin), lin0=to_numpy(lin0),
        w_exact=to_numpy(w), w_lin=to_numpy(lm.weights), w_lin0=to_numpy(lm0.weights),
        w_lookup=to_numpy(P.lookup_weights(F, x, y, problem.gamma)), x_train=to_numpy(x[:, 0]),
        exp_h=P.effective_components(w), tv_lin=P.total_variation(exact, lin, g),
        tv_lin0=P.total_variation(exact, lin0, g), sigma=sigma, gamma=problem.gamma, y=to_numpy(y),
    )


def _density_traces(pan: dict, xaxis: str = "x", yaxis: str = "y", legend: bool = True) -> list:
    tr = []
    for key in ("prior", "likelihood", "exact", "lin", "lin0"):
        st = STYLE[key]
        tr.append(go.Scatter(x=pan["x"], y=pan[key], mode="lines", name=st["name"], legendgroup=key,
                             showlegend=legend, xaxis=xaxis, yaxis=yaxis,
                             line=dict(color=st["color"], dash=st["dash"], width=2.2 if key == "exact" else 1.8),
                             hovertemplate="x = %{x:.2f}<br>%{y:.3f}<extra>" + st["name"] + "</extra>"))
    tr.append(go.Scatter(x=pan["x_train"], y=np.zeros_like(pan["x_train"]), mode="markers", name="training points",
                         legendgroup="train", showlegend=legend, xaxis=xaxis, yaxis=yaxis,
                         marker=dict(color=STYLE["train"]["color"], size=9, symbol="triangle-up",
                                     line=dict(color="white", width=1)),
                         hovertemplate="x<sub>n</sub> = %{x:.2f}<extra></extra>"))
    return tr


def _weight_traces(pan: dict, xaxis: str = "x2", yaxis: str = "y2", legend: bool = False) -> list:
    labels = [f"{v:.2f}" for v in pan["x_train"]]
    tr = []
    for key, wkey in (("exact", "w_exact"), ("lin", "w_lin"), ("lin0", "w_lin0")):
        st = STYLE[key]
        tr.append(go.Bar(x=labels, y=pan[wkey], name=st["name"], legendgroup=key, showlegend=legend,
                         marker_color=st["color"], xaxis=xaxis, yaxis=yaxis,
                         hovertemplate="x<sub>n</sub> = %{x}<br>w = %{y:.4f}<extra>" + st["name"] + "</extra>"))
    return tr


def fig_1d_panels(problem: P.Problem, sigmas: Sequence[float] = (0.5, 0.3, 0.05)) -> go.Figure:
    """The paper's 1-D panels: densities (top) and component weights (bottom), one column per sigma.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        1-D problem (the paper's: :func:`memprior.posterior.stylized_1d`).
    sigmas : sequence of float
        One column per bandwidth.
    """
    sigmas = [check_positive("sigmas", s) for s in sigmas]
    if not sigmas:
        raise ValueError("sigmas: need at least one bandwidth")
    k = len(sigmas)
    fig = make_subplots(rows=2, cols=k, row_heights=[0.66, 0.34], vertical_spacing=0.17, horizontal_spacing=0.05,
                        subplot_titles=[f"σ = {s:g}" for s in sigmas] + [""] * k)
    for j, s in enumerate(sigmas):
        pan = panel_1d(problem, s)
        for t in _density_traces(pan, legend=(j == 0)):
            fig.add_trace(compact(t), row=1, col=j + 1)
        for t in _weight_traces(pan, legend=False):
            fig.add_trace(compact(t), row=2, col=j + 1)
        fig.update_yaxes(type="log", range=[-4, 0.05], row=2, col=j + 1)
        fig.update_xaxes(type="category", row=2, col=j + 1)
        fig.update_xaxes(title_text=_XLAB, row=1, col=j + 1)
        fig.update_xaxes(title_text="training point x<sub>n</sub>", row=2, col=j + 1)
    fig.update_yaxes(title_text=_DENS, row=1, col=1)
    fig.update_yaxes(title_text="weight w<sub>n</sub>", row=2, col=1)
    fig.update_layout(template=figure().layout.template, height=660, barmode="group", bargap=0.25,
                      legend=dict(orientation="h", y=-0.16, x=0.5, xanchor="center", yanchor="top"),
                      margin=dict(l=60, r=20, t=60, b=40))
    return fig


def _heat_axes(problem: P.Problem, n_display: int):
    out = []
    for g in problem.grid:
        idx = np.unique(np.linspace(0, len(g) - 1, min(n_display, len(g))).round().astype(int))
        out.append(g[idx])
    return tuple(out)


def panel_2d(problem: P.Problem, sigma: float, n_display: int = 100) -> dict:
    """Densities of a 2-D problem on a display grid (``n_display`` nodes per axis taken from ``problem.grid``).

    The component weights come from quadrature on the full grid.

    Returns
    -------
    dict
        ``x1`` [G1], ``x2`` [G2]; [G2, G1] arrays (rows = x2, as plotly expects): ``prior_lik`` (prior times
        likelihood, unnormalized, for orientation), ``exact``, ``lin``, ``lin0``; weights ``w_exact``,
        ``w_lin``, ``w_lin0`` [N]; ``tv_lin``, ``tv_lin0`` on the display grid.
    """
    sigma = check_positive("sigma", sigma)
    n_display = check_int("n_display", n_display, low=10)
    F, x, y = problem.args()
    if x.shape[1] != 2:
        raise ValueError(f"problem: panel_2d needs a 2-D problem (d = 2), got d = {x.shape[1]}")
    g1, g2 = _heat_axes(problem, n_display)
    gd = (g1, g2)
    exact = P.grid_posterior(F, x, y, sigma, problem.gamma, gd)
    lm = P.linearized_mixture(F, x, y, sigma, problem.gamma)
    lm0 = P.linearized_mixture(F, x, y, sigma, problem.gamma, logdet=False)
    lin, lin0 = P.grid_density(lm, gd), P.grid_density(lm0, gd)
    w = P.component_weights(F, x, y, sigma, problem.gamma, problem.grid)
    pts = P.grid_points(gd)
    prior = GaussianMixturePrior(x, sigma).log_prob(pts).exp().reshape(len(g1), len(g2))
    loglik = (-((y[None] - F(pts)) ** 2).sum(1) / (2 * problem.gamma ** 2)).reshape(len(g1), len(g2))
    return dict(
        x1=to_numpy(g1), x2=to_numpy(g2), prior=to_numpy(prior).T, loglik=to_numpy(loglik).T,
        exact=to_numpy(exact).T, lin=to_numpy(lin).T, lin0=to_numpy(lin0).T,
        w_exact=to_numpy(w), w_lin=to_numpy(lm.weights), w_lin0=to_numpy(lm0.weights),
        tv_lin=P.total_variation(exact, lin, gd), tv_lin0=P.total_variation(exact, lin0, gd),
        x_train=to_numpy(x), x_true=None if problem.x_true is None else to_numpy(problem.x_true),
    )


def _traces_2d(pan: dict) -> list:
    tr = []
    for j, key in enumerate(("prior", "exact", "lin", "lin0")):  # panels (1,1), (1,2), (2,1), (2,2)
        ax = "" if j == 0 else str(j + 1)
        z = pan[key] / pan[key].max()
        tr.append(go.Heatmap(x=pan["x1"], y=pan["x2"], z=z.astype(np.float32), coloraxis="coloraxis",
                             xaxis="x" + ax, yaxis="y" + ax, hovertemplate="x₁ %{x:.2f}, x₂ %{y:.2f}<br>%{z:.3f}"
                             "<extra></extra>"))
    # likelihood contours (1, 2, 3 gamma-equivalents) on the first panel
    misfit = np.sqrt(np.maximum(-2.0 * pan["loglik"], 0.0))  # ||y - F(x)|| / gamma
    tr.append(go.Contour(x=pan["x1"], y=pan["x2"], z=misfit.astype(np.float32), xaxis="x", yaxis="y",
                         contours=dict(start=1.0, end=3.0, size=1.0, coloring="lines"), showscale=False,
                         colorscale=[[0, PALETTE[4]], [1, PALETTE[4]]], line=dict(width=1.6), hoverinfo="skip",
                         name="likelihood"))
    for j in range(4):
        ax = "" if j == 0 else str(j + 1)
        tr.append(go.Scatter(x=pan["x_train"][:, 0], y=pan["x_train"][:, 1], mode="markers", showlegend=False,
                             xaxis="x" + ax, yaxis="y" + ax, marker=dict(color="white", size=8, symbol="triangle-up",
                                                                          line=dict(color="black", width=1)),
                             hovertemplate="x<sub>n</sub><extra></extra>"))
    if pan.get("x_true") is not None:
        for j in range(4):
            ax = "" if j == 0 else str(j + 1)
            tr.append(go.Scatter(x=[float(pan["x_true"][0])], y=[float(pan["x_true"][1])], mode="markers",
                                 showlegend=False, xaxis="x" + ax, yaxis="y" + ax,
                                 marker=dict(color=PALETTE[1], size=13, symbol="star", line=dict(color="white", width=1)),
                                 hovertemplate="true model<extra></extra>"))
    return tr


def fig_2d_slider(problem: P.Problem, sigmas: Sequence[float] = (0.8, 0.5, 0.3, 0.15),
                  n_display: int = 72, active: int = 2) -> go.Figure:
    """The 2-D pentagon: prior and likelihood, exact posterior, and both linearized mixtures, with a sigma slider.

    Each heatmap is scaled to its own maximum.
    """
    sigmas = [check_positive("sigmas", s) for s in sigmas]
    frames, titles = [], []
    for s in sigmas:
        pan = panel_2d(problem, s, n_display)
        frames.append(_traces_2d(pan))
        titles.append(f"σ = {s:g}<br><span style='font-size:12px'>TV to exact: with log-det {pan['tv_lin']:.3f}, "
                      f"without {pan['tv_lin0']:.3f}</span>")
    base = make_subplots(rows=2, cols=2, horizontal_spacing=0.08, vertical_spacing=0.12,
                         subplot_titles=["prior p<sub>σ</sub>, misfit contours", "exact posterior",
                                         "linearized, with log-det", "linearized, no log-det (paper code)"])
    base.update_layout(template=figure().layout.template, height=760,
                       coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1,
                                      colorbar=dict(title=dict(text="density / max", side="right"), len=0.6)),
                       title=dict(x=0.02, xanchor="left", y=0.985, yanchor="top", font=dict(size=14)),
                       margin=dict(l=55, r=20, t=105, b=50))
    base.update_xaxes(title_text="x₁", row=2)
    base.update_yaxes(title_text="x₂", col=1)
    return slider_figure(frames, [f"{s:g}" for s in sigmas], slider_prefix="σ = ", base=base, active=active,
                         frame_titles=titles)


def fig_lookup_limit(problem: P.Problem, sigmas: Sequence[float]) -> go.Figure:
    """Exact component weights against sigma, with the lookup weights they tend to as sigma -> 0."""
    F, x, y = problem.args()
    sig = np.asarray(sorted(check_positive("sigmas", s) for s in sigmas))
    W = np.stack([to_numpy(P.component_weights(F, x, y, float(s), problem.gamma, problem.grid)) for s in sig])
    look = to_numpy(P.lookup_weights(F, x, y, problem.gamma))
    fig = figure(None, "bandwidth σ", "exact weight w<sub>n</sub>", height=380)
    for n in range(W.shape[1]):
        c = PALETTE[n % len(PALETTE)]
        lab = f"x<sub>n</sub> = {float(x[n, 0]):.2f}" if x.shape[1] == 1 else f"n = {n}"
        fig.add_trace(compact(go.Scatter(x=sig, y=W[:, n], mode="lines", name=lab, line=dict(color=c),
                                         legendgroup=str(n))))
        fig.add_trace(go.Scatter(x=[sig[0] * 0.7], y=[look[n]], mode="markers", legendgroup=str(n), showlegend=False,
                                 marker=dict(color=c, symbol="diamond", size=10, line=dict(color="black", width=1)),
                                 hovertemplate="lookup weight %{y:.3f}<extra></extra>"))
    fig.update_xaxes(type="log")
    fig.add_annotation(x=np.log10(sig[0] * 0.7), y=1.0, text="◆ lookup", showarrow=False, yshift=12)
    return fig


def fig_linearization_errors(curves: Mapping[str, dict]) -> go.Figure:
    """Total variation and weight error of both linearized mixtures against sigma (log-log).

    Parameters
    ----------
    curves : mapping label -> dict from :func:`memprior.posterior.linearization_errors`
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["posterior density: total variation", "component weights: Σ|Δw<sub>n</sub>|"])
    dashes = ["solid", "dot", "dash"]
    for i, (label, c) in enumerate(curves.items()):
        for key, st, nm in (("", STYLE["lin"], "with log-det"), ("_no_logdet", STYLE["lin0"], "no log-det")):
            for col, base in ((1, "tv"), (2, "weight_l1")):
                fig.add_trace(compact(go.Scatter(
                    x=c["sigma"], y=np.maximum(c[base + key], 1e-12), mode="lines+markers",
                    name=f"{label}, {nm}", legendgroup=f"{label}{key}", showlegend=(col == 1),
                    line=dict(color=st["color"], dash=dashes[i % 3]), marker=dict(size=5))), row=1, col=col)
    fig.update_xaxes(type="log", title_text="bandwidth σ")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="TV(exact, linearized)", row=1, col=1)
    fig.update_yaxes(title_text="Σ<sub>n</sub> |w<sub>n</sub><sup>lin</sup> − w<sub>n</sub>|", row=1, col=2)
    fig.update_layout(template=figure().layout.template, height=420,
                      legend=dict(orientation="h", y=-0.22, x=0.5, xanchor="center"))
    return fig


def fig_effective_components(curves: Mapping[int, dict], sigma_crits: Mapping[int, float]) -> go.Figure:
    """exp(H) of the exact weights against sigma for each N, with sigma_crit marked and the lookup plateau.

    Parameters
    ----------
    curves : mapping N -> dict from :func:`memprior.posterior.effective_components_curve`
    sigma_crits : mapping N -> float
    """
    fig = figure(None, "bandwidth σ", "effective components exp(H)", height=440)
    for i, (N, c) in enumerate(curves.items()):
        col = PALETTE[i % len(PALETTE)]
        fig.add_trace(compact(go.Scatter(x=c["sigma"], y=c["exact"], mode="lines", name=f"N = {N}",
                                         line=dict(color=col, width=2.2), legendgroup=str(N),
                                         hovertemplate="σ = %{x:.3f}<br>exp(H) = %{y:.2f}<extra>N = " + str(N)
                                         + "</extra>")))
        sc = float(sigma_crits[N])
        yc = float(np.interp(np.log(sc), np.log(c["sigma"]), c["exact"]))
        fig.add_trace(go.Scatter(x=[sc], y=[yc], mode="markers", legendgroup=str(N), showlegend=False,
                                 marker=dict(color=col, size=12, symbol="x", line=dict(color="black", width=1)),
                                 hovertemplate="σ<sub>crit</sub> = %{x:.3f}<extra>N = " + str(N) + "</extra>"))
        fig.add_trace(go.Scatter(x=[c["sigma"][0], c["sigma"][-1]], y=[c["lookup"]] * 2, mode="lines",
                                 legendgroup=str(N), showlegend=False, line=dict(color=col, dash="dot", width=1),
                                 hovertemplate="lookup exp(H) = %{y:.2f}<extra>N = " + str(N) + "</extra>"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    fig.add_annotation(text="× σ<sub>crit</sub>;  dotted: lookup plateau", xref="paper", yref="paper", x=0.02, y=0.98,
                       showarrow=False, xanchor="left", bgcolor="rgba(255,255,255,0.8)")
    return fig


def fig_components_vs_modes(curve: dict, n_train: int) -> go.Figure:
    """exp(H) (exact and linearized) against the number of modes of the exact posterior density."""
    fig = figure(f"N = {n_train}: components are not modes", "bandwidth σ", "count", height=400)
    fig.add_trace(compact(go.Scatter(x=curve["sigma"], y=curve["exact"], mode="lines", name="exp(H), exact weights",
                                     line=dict(color=STYLE["exact"]["color"], width=2.2))))
    fig.add_trace(compact(go.Scatter(x=curve["sigma"], y=curve["linearized"], mode="lines",
                                     name="exp(H), linearized", line=dict(color=STYLE["lin"]["color"], dash="dash"))))
    fig.add_trace(compact(go.Scatter(x=curve["sigma"], y=curve["modes"], mode="lines+markers",
                                     name="modes of the exact posterior", line=dict(color=PALETTE[2], shape="hv"),
                                     marker=dict(size=4))))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def _twin_frame(pan: dict) -> list:
    return _density_traces(pan, legend=True) + _weight_traces(pan, legend=False)


def _twin_base(pan: dict, y_max: float) -> go.Figure:
    base = make_subplots(rows=2, cols=1, row_heights=[0.66, 0.34], vertical_spacing=0.16)
    base.update_layout(template=figure().layout.template, height=680, barmode="group",
                       legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0.5, xanchor="center"),
                       title=dict(y=0.98, yanchor="top", x=0.02, xanchor="left", font=dict(size=14)),
                       margin=dict(l=60, r=20, t=125, b=40))
    base.update_xaxes(title_text=_XLAB, range=[float(pan["x"][0]), float(pan["x"][-1])], row=1, col=1)
    base.update_yaxes(title_text=_DENS, range=[0, y_max], row=1, col=1)
    base.update_xaxes(title_text="training point x<sub>n</sub>", type="category", row=2, col=1)
    base.update_yaxes(title_text="weight w<sub>n</sub>", type="log", range=[-4, 0.05], row=2, col=1)
    return base


def _title(pan: dict, lead: str) -> str:
    return (f"{lead}<br><span style='font-size:12px'>exp(H) = {pan['exp_h']:.2f};  TV to exact: "
            f"with log-det {pan['tv_lin']:.3f}, without {pan['tv_lin0']:.3f}</span>")


def twin_sigma(problem: P.Problem, sigmas: Sequence[float], active: int | None = None) -> go.Figure:
    """Kernel-free twin of the live app: a slider over sigma (densities on top, weights below)."""
    sigmas = [check_positive("sigmas", s) for s in sigmas]
    pans = [panel_1d(problem, s) for s in sigmas]
    y_max = 1.05 * max(max(p["exact"].max(), p["lin"].max(), p["lin0"].max()) for p in pans)
    y_max = min(y_max, 6.0)
    active = len(sigmas) // 2 if active is None else active
    return slider_figure([_twin_frame(p) for p in pans], [f"{s:.3g}" for s in sigmas], slider_prefix="σ = ",
                         base=_twin_base(pans[0], y_max), active=active,
                         frame_titles=[_title(p, f"σ = {p['sigma']:.3g}") for p in pans])


def twin_y(problem_fn, ys: Sequence[float], sigma: float, active: int | None = None) -> go.Figure:
    """Kernel-free twin: a slider over the datum y at fixed sigma.

    Parameters
    ----------
    problem_fn : callable y -> Problem
        For example ``lambda y: memprior.posterior.stylized_1d(y=y)``.
    ys : sequence of float
    sigma : float
    """
    if not callable(problem_fn):
        raise TypeError("problem_fn: expected a callable y -> Problem")
    pans = [panel_1d(problem_fn(float(v)), sigma) for v in ys]
    y_max = min(1.05 * max(max(p["exact"].max(), p["lin"].max(), p["lin0"].max()) for p in pans), 6.0)
    active = len(pans) // 2 if active is None else active
    return slider_figure([_twin_frame(p) for p in pans], [f"{float(v):.2f}" for v in ys], slider_prefix="y = ",
                         base=_twin_base(pans[0], y_max), active=active,
                         frame_titles=[_title(p, f"y = {float(v):.2f}, σ = {sigma:g}") for p, v in zip(pans, ys)])

"""Figures for chapter 3, "A stylized inverse problem".

The numbers come from :mod:`memprior.experiments.stylized` (its result dataclasses are the
inputs here); this module only arranges them. The ``fig_*`` builders draw the paper's panels,
the error and effective-component curves, and the kernel-free slider twins of the live app.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..experiments import stylized as ex
from . import PALETTE, SEQUENTIAL, compact, figure, slider_figure, style, template

__all__ = [
    "panel_traces",
    "panel_base",
    "panel_title",
    "fig_1d_panels",
    "fig_2d_slider",
    "fig_lookup_limit",
    "fig_linearization_errors",
    "fig_effective_components",
    "fig_components_vs_modes",
    "twin_sigma",
    "twin_y",
]

# The curves of a panel (fields of Panel1D): the method each shows, whose colour and dash come from the
# house registry (memprior.plots.STYLE), and its legend name.
_CURVES = {
    "prior": ("prior", "prior p<sub>σ</sub>"),
    "likelihood": ("likelihood", "likelihood (normalized)"),
    "exact": ("lookup", "exact posterior"),
    "lin": ("linearized", "linearized, with log-det"),
    "lin0": ("linearized, no log-det", "linearized, no log-det (paper code)"),
}
_TRAIN = PALETTE[2]  # colour of the training points


def _st(key: str) -> dict:
    """Colour, dash and legend name of the panel curve ``key``."""
    method, name = _CURVES[key]
    return style(method, name=name)


_XLAB = "model x (dimensionless)"
_DENS = "density (per unit x)"


def _density_traces(pan: ex.Panel1D, xaxis: str = "x", yaxis: str = "y", legend: bool = True) -> list:
    tr = []
    for key in ("prior", "likelihood", "exact", "lin", "lin0"):
        st = _st(key)
        tr.append(go.Scatter(x=pan.x, y=getattr(pan, key), mode="lines", name=st["name"], legendgroup=key,
                             showlegend=legend, xaxis=xaxis, yaxis=yaxis,
                             line=dict(color=st["color"], dash=st["dash"], width=2.2 if key == "exact" else 1.8),
                             hovertemplate="x = %{x:.2f}<br>%{y:.3f}<extra>" + st["name"] + "</extra>"))
    tr.append(go.Scatter(x=pan.x_train, y=np.zeros_like(pan.x_train), mode="markers", name="training points",
                         legendgroup="train", showlegend=legend, xaxis=xaxis, yaxis=yaxis,
                         marker=dict(color=_TRAIN, size=9, symbol="triangle-up",
                                     line=dict(color="white", width=1)),
                         hovertemplate="x<sub>n</sub> = %{x:.2f}<extra></extra>"))
    return tr


def _weight_traces(pan: ex.Panel1D, xaxis: str = "x2", yaxis: str = "y2", legend: bool = False) -> list:
    labels = [f"{v:.2f}" for v in pan.x_train]
    tr = []
    for key, wkey in (("exact", "w_exact"), ("lin", "w_lin"), ("lin0", "w_lin0")):
        st = _st(key)
        tr.append(go.Bar(x=labels, y=getattr(pan, wkey), name=st["name"], legendgroup=key, showlegend=legend,
                         marker_color=st["color"], xaxis=xaxis, yaxis=yaxis,
                         hovertemplate="x<sub>n</sub> = %{x}<br>w = %{y:.4f}<extra>" + st["name"] + "</extra>"))
    return tr


def _panels(name: str, panels) -> tuple:
    if not isinstance(panels, ex.Panels1D):
        raise TypeError(f"{name}: expected memprior.experiments.stylized.Panels1D, got {type(panels).__name__}")
    return panels.panels


def fig_1d_panels(panels: ex.Panels1D) -> go.Figure:
    """The paper's 1-D panels: densities (top) and component weights (bottom), one column per sigma.

    Parameters
    ----------
    panels : Panels1D
        From :func:`memprior.experiments.stylized.panels_over_sigma`; one column per bandwidth.
    """
    pans = _panels("panels", panels)
    k = len(pans)
    fig = make_subplots(rows=2, cols=k, row_heights=[0.66, 0.34], vertical_spacing=0.17, horizontal_spacing=0.05,
                        subplot_titles=[f"σ = {p.sigma:g}" for p in pans] + [""] * k)
    for j, pan in enumerate(pans):
        for t in _density_traces(pan, legend=(j == 0)):
            fig.add_trace(compact(t), row=1, col=j + 1)
        for t in _weight_traces(pan, legend=False):
            fig.add_trace(compact(t), row=2, col=j + 1)
        fig.update_yaxes(type="log", range=[-4, 0.05], row=2, col=j + 1)
        fig.update_xaxes(type="category", tickangle=-90, tickfont_size=10, row=2, col=j + 1)  # narrow on a phone
        if j == k // 2:  # one x-axis title a row, under the middle panel: the panels are narrow on a phone
            fig.update_xaxes(title_text=_XLAB, row=1, col=j + 1)
            fig.update_xaxes(title_text="training point x<sub>n</sub>", row=2, col=j + 1)
    fig.update_yaxes(title_text=_DENS, row=1, col=1)
    fig.update_yaxes(title_text="weight w<sub>n</sub>", row=2, col=1)
    fig.update_layout(template=template(), height=660, barmode="group", bargap=0.25,
                      legend=dict(orientation="h", y=-0.16, x=0.5, xanchor="center", yanchor="top"),
                      margin=dict(l=60, r=20, t=60, b=40))
    return fig


def _traces_2d(pan: ex.Panel2D) -> list:
    tr = []
    for j, key in enumerate(("prior", "exact", "lin", "lin0")):  # panels (1,1), (1,2), (2,1), (2,2)
        ax = "" if j == 0 else str(j + 1)
        z = getattr(pan, key) / getattr(pan, key).max()
        tr.append(go.Heatmap(x=pan.x1, y=pan.x2, z=z.astype(np.float32), coloraxis="coloraxis",
                             xaxis="x" + ax, yaxis="y" + ax, hovertemplate="x₁ %{x:.2f}, x₂ %{y:.2f}<br>%{z:.3f}"
                             "<extra></extra>"))
    # likelihood contours (1, 2, 3 gamma-equivalents) on the first panel
    misfit = np.sqrt(np.maximum(-2.0 * pan.loglik, 0.0))  # ||y - F(x)|| / gamma
    tr.append(go.Contour(x=pan.x1, y=pan.x2, z=misfit.astype(np.float32), xaxis="x", yaxis="y",
                         contours=dict(start=1.0, end=3.0, size=1.0, coloring="lines"), showscale=False,
                         colorscale=[[0, PALETTE[4]], [1, PALETTE[4]]], line=dict(width=1.6), hoverinfo="skip",
                         name="likelihood"))
    for j in range(4):
        ax = "" if j == 0 else str(j + 1)
        tr.append(go.Scatter(x=pan.x_train[:, 0], y=pan.x_train[:, 1], mode="markers", showlegend=False,
                             xaxis="x" + ax, yaxis="y" + ax, marker=dict(color="white", size=8, symbol="triangle-up",
                                                                          line=dict(color="black", width=1)),
                             hovertemplate="x<sub>n</sub><extra></extra>"))
    if pan.x_true is not None:
        for j in range(4):
            ax = "" if j == 0 else str(j + 1)
            tr.append(go.Scatter(x=[float(pan.x_true[0])], y=[float(pan.x_true[1])], mode="markers",
                                 showlegend=False, xaxis="x" + ax, yaxis="y" + ax,
                                 marker=dict(color=PALETTE[1], size=13, symbol="star", line=dict(color="white", width=1)),
                                 hovertemplate="true model<extra></extra>"))
    return tr


def fig_2d_slider(pent: ex.Pentagon, active: int = 2) -> go.Figure:
    """The 2-D pentagon: prior and likelihood, exact posterior, and both linearized mixtures, with a sigma slider.

    Each heatmap is scaled to its own maximum.

    Parameters
    ----------
    pent : Pentagon
        From :func:`memprior.experiments.stylized.pentagon`; one slider step per bandwidth.
    active : int
        Index of the step shown first.
    """
    if not isinstance(pent, ex.Pentagon):
        raise TypeError(f"pent: expected memprior.experiments.stylized.Pentagon, got {type(pent).__name__}")
    frames, titles = [], []
    for pan in pent.panels:
        frames.append(_traces_2d(pan))
        titles.append(f"σ = {pan.sigma:g}<br><span style='font-size:12px'>TV to exact: with log-det {pan.tv_lin:.3f}, "
                      f"without {pan.tv_lin0:.3f}</span>")
    base = make_subplots(rows=2, cols=2, horizontal_spacing=0.08, vertical_spacing=0.12,
                         subplot_titles=["prior p<sub>σ</sub>, misfit contours", "exact posterior",
                                         "linearized, with log-det", "linearized, no log-det (paper code)"])
    base.update_layout(template=template(), height=760,
                       coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1,
                                      colorbar=dict(title=dict(text="density / max", side="right"), len=0.6)),
                       title=dict(x=0.02, xanchor="left", y=0.985, yanchor="top", font=dict(size=14)),
                       margin=dict(l=55, r=20, t=105, b=50))
    base.update_xaxes(title_text="x₁", row=2)
    base.update_yaxes(title_text="x₂", col=1)
    return slider_figure(frames, [f"{p.sigma:g}" for p in pent.panels], slider_prefix="σ = ", base=base, active=active,
                         frame_titles=titles)


def fig_lookup_limit(res: ex.LookupLimit) -> go.Figure:
    """Exact component weights against sigma, with the lookup weights they tend to as sigma -> 0.

    Parameters
    ----------
    res : LookupLimit
        From :func:`memprior.experiments.stylized.lookup_limit`.
    """
    if not isinstance(res, ex.LookupLimit):
        raise TypeError(f"res: expected memprior.experiments.stylized.LookupLimit, got {type(res).__name__}")
    sig, W, look = res.sigma, res.weights, res.lookup
    fig = figure(None, "bandwidth σ", "exact weight w<sub>n</sub>", height=380)
    for n in range(W.shape[1]):
        c = PALETTE[n % len(PALETTE)]
        lab = f"x<sub>n</sub> = {float(res.x_train[n]):.2f}"
        fig.add_trace(compact(go.Scatter(x=sig, y=W[:, n], mode="lines", name=lab, line=dict(color=c),
                                         legendgroup=str(n))))
        fig.add_trace(go.Scatter(x=[sig[0] * 0.7], y=[look[n]], mode="markers", legendgroup=str(n), showlegend=False,
                                 marker=dict(color=c, symbol="diamond", size=10, line=dict(color="black", width=1)),
                                 hovertemplate="lookup weight %{y:.3f}<extra></extra>"))
    fig.update_xaxes(type="log")
    fig.add_annotation(x=np.log10(sig[0] * 0.7), y=1.0, text="◆ lookup", showarrow=False, yshift=12)
    return fig


def fig_linearization_errors(curves: Mapping[str, ex.LinearizationErrors]) -> go.Figure:
    """Total variation and weight error of both linearized mixtures against sigma (log-log).

    Parameters
    ----------
    curves : mapping label -> LinearizationErrors
        From :func:`memprior.experiments.stylized.linearization_errors` (or the fields of
        :func:`memprior.experiments.stylized.error_curves`).
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["posterior density: total variation", "component weights: Σ|Δw<sub>n</sub>|"])
    dashes = ["solid", "dot", "dash"]
    for i, (label, c) in enumerate(curves.items()):
        for key, st, nm in (("", _st("lin"), "with log-det"), ("_no_logdet", _st("lin0"), "no log-det")):
            for col, base in ((1, "tv"), (2, "weight_l1")):
                fig.add_trace(compact(go.Scatter(
                    x=c.sigma, y=np.maximum(getattr(c, base + key), 1e-12), mode="lines+markers",
                    name=f"{label}, {nm}", legendgroup=f"{label}{key}", showlegend=(col == 1),
                    line=dict(color=st["color"], dash=dashes[i % 3]), marker=dict(size=5))), row=1, col=col)
    fig.update_xaxes(type="log", title_text="bandwidth σ")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="TV(exact, linearized)", row=1, col=1)
    fig.update_yaxes(title_text="Σ<sub>n</sub> |w<sub>n</sub><sup>lin</sup> − w<sub>n</sub>|", row=1, col=2)
    fig.update_layout(template=template(), height=420,
                      legend=dict(orientation="h", y=-0.22, x=0.5, xanchor="center"))
    return fig


def fig_effective_components(sweep: ex.ComponentsSweep) -> go.Figure:
    """exp(H) of the exact weights against sigma for each N, with sigma_crit marked and the lookup plateau.

    Parameters
    ----------
    sweep : ComponentsSweep
        From :func:`memprior.experiments.stylized.components_sweep`.
    """
    if not isinstance(sweep, ex.ComponentsSweep):
        raise TypeError(f"sweep: expected memprior.experiments.stylized.ComponentsSweep, got {type(sweep).__name__}")
    fig = figure(None, "bandwidth σ", "effective components exp(H)", height=440)
    for i, N in enumerate(sweep.ns.tolist()):
        c = sweep.curve(N)
        col = PALETTE[i % len(PALETTE)]
        fig.add_trace(compact(go.Scatter(x=c.sigma, y=c.exact, mode="lines", name=f"N = {N}",
                                         line=dict(color=col, width=2.2), legendgroup=str(N),
                                         hovertemplate="σ = %{x:.3f}<br>exp(H) = %{y:.2f}<extra>N = " + str(N)
                                         + "</extra>")))
        sc = float(sweep.sigma_crit[i])
        yc = float(np.interp(np.log(sc), np.log(c.sigma), c.exact))
        fig.add_trace(go.Scatter(x=[sc], y=[yc], mode="markers", legendgroup=str(N), showlegend=False,
                                 marker=dict(color=col, size=12, symbol="x", line=dict(color="black", width=1)),
                                 hovertemplate="σ<sub>crit</sub> = %{x:.3f}<extra>N = " + str(N) + "</extra>"))
        fig.add_trace(go.Scatter(x=[c.sigma[0], c.sigma[-1]], y=[c.lookup] * 2, mode="lines",
                                 legendgroup=str(N), showlegend=False, line=dict(color=col, dash="dot", width=1),
                                 hovertemplate="lookup exp(H) = %{y:.2f}<extra>N = " + str(N) + "</extra>"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    fig.add_annotation(text="× σ<sub>crit</sub>;  dotted: lookup plateau", xref="paper", yref="paper", x=0.02, y=0.98,
                       showarrow=False, xanchor="left", bgcolor="rgba(255,255,255,0.8)")
    return fig


def fig_components_vs_modes(curve: ex.ComponentsCurve, n_train: int) -> go.Figure:
    """exp(H) (exact and linearized) against the number of modes of the exact posterior density.

    Parameters
    ----------
    curve : ComponentsCurve
        For example ``components_sweep(...).curve(100)``.
    n_train : int
        N, for the title.
    """
    fig = figure(f"N = {n_train}: components are not modes", "bandwidth σ", "count", height=400)
    fig.add_trace(compact(go.Scatter(x=curve.sigma, y=curve.exact, mode="lines", name="exp(H), exact weights",
                                     line=dict(color=_st("exact")["color"], width=2.2))))
    fig.add_trace(compact(go.Scatter(x=curve.sigma, y=curve.linearized, mode="lines",
                                     name="exp(H), linearized", line=dict(color=_st("lin")["color"], dash="dash"))))
    fig.add_trace(compact(go.Scatter(x=curve.sigma, y=curve.modes.astype(float), mode="lines+markers",
                                     name="modes of the exact posterior", line=dict(color=PALETTE[2], shape="hv"),
                                     marker=dict(size=4))))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def panel_traces(pan: ex.Panel1D) -> list:
    """The traces of one 1-D panel: posterior densities (top) and component weights (bottom)."""
    return _density_traces(pan, legend=True) + _weight_traces(pan, legend=False)


def panel_base(pan: ex.Panel1D, y_max: float) -> go.Figure:
    """The empty two-row figure (densities up to ``y_max``, log weights) that :func:`panel_traces` fills."""
    base = make_subplots(rows=2, cols=1, row_heights=[0.66, 0.34], vertical_spacing=0.16)
    base.update_layout(template=template(), height=680, barmode="group",
                       legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0.5, xanchor="center"),
                       title=dict(y=0.98, yanchor="top", x=0.02, xanchor="left", font=dict(size=14)),
                       margin=dict(l=60, r=20, t=125, b=40))
    base.update_xaxes(title_text=_XLAB, range=[float(pan.x[0]), float(pan.x[-1])], row=1, col=1)
    base.update_yaxes(title_text=_DENS, range=[0, y_max], row=1, col=1)
    base.update_xaxes(title_text="training point x<sub>n</sub>", type="category", row=2, col=1)
    base.update_yaxes(title_text="weight w<sub>n</sub>", type="log", range=[-4, 0.05], row=2, col=1)
    return base


def panel_title(pan: ex.Panel1D, lead: str) -> str:
    """A 1-D panel's title: ``lead``, then exp(H) and the TV distances of both linearizations."""
    return (f"{lead}<br><span style='font-size:12px'>exp(H) = {pan.exp_h:.2f};  TV to exact: "
            f"with log-det {pan.tv_lin:.3f}, without {pan.tv_lin0:.3f}</span>")


def _twin(pans, labels, prefix: str, titles, active: int | None) -> go.Figure:
    """A slider figure over 1-D panels; the density axis fits the highest posterior curve (at most 6)."""
    y_max = min(1.05 * max(max(p.exact.max(), p.lin.max(), p.lin0.max()) for p in pans), 6.0)
    active = len(pans) // 2 if active is None else active
    return slider_figure([panel_traces(p) for p in pans], labels, slider_prefix=prefix,
                         base=panel_base(pans[0], y_max), active=active, frame_titles=titles)


def twin_sigma(panels: ex.Panels1D, active: int | None = None) -> go.Figure:
    """Kernel-free twin of the live app: a slider over sigma (densities on top, weights below).

    Parameters
    ----------
    panels : Panels1D
        From :func:`memprior.experiments.stylized.panels_over_sigma`; one slider step per bandwidth.
    active : int, optional
        Index of the step shown first (default: the middle one).
    """
    pans = _panels("panels", panels)
    return _twin(pans, [f"{p.sigma:.3g}" for p in pans], "σ = ",
                 [panel_title(p, f"σ = {p.sigma:.3g}") for p in pans], active)


def twin_y(panels: ex.Panels1D, active: int | None = None) -> go.Figure:
    """Kernel-free twin: a slider over the datum y at fixed sigma.

    Parameters
    ----------
    panels : Panels1D
        From :func:`memprior.experiments.stylized.panels_over_datum`; one slider step per datum.
    active : int, optional
        Index of the step shown first (default: the middle one).
    """
    pans, ys = _panels("panels", panels), panels.values
    return _twin(pans, [f"{float(v):.2f}" for v in ys], "y = ",
                 [panel_title(p, f"y = {float(v):.2f}, σ = {p.sigma:g}") for p, v in zip(pans, ys)], active)

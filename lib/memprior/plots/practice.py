"""Figures for the practice chapter: held-out loss, prior and posterior samples, mitigations."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import PALETTE, color, compact, figure, slider_figure, to_numpy, wrap_text

__all__ = ["fig_loss_gap", "fig_variants", "fig_mitigation", "scatter_traces", "fig_training_slider",
           "datum_base", "datum_traces", "twin_datum", "datum_title", "fig_report", "fig_snapshots",
           "twin_datum_sweep", "line_xy"]

_AX = "normalized units"


def fig_loss_gap(steps: Sequence[int], train: Sequence[float], held_out: Sequence[float],
                 best: int | None = None) -> go.Figure:
    """Denoising loss on the training set and on held-out draws, against training steps."""
    fig = figure(None, "training steps", f"denoising loss E‖x̂₀ − x₀‖² ({_AX}²)", height=360)
    fig.add_trace(go.Scatter(x=list(steps), y=list(train), mode="lines+markers", name="training points",
                             line=dict(color=color(0))))
    fig.add_trace(go.Scatter(x=list(steps), y=list(held_out), mode="lines+markers", name="held-out draws",
                             line=dict(color=color(1), dash="dash"), marker=dict(symbol="square")))
    if best is not None:
        fig.add_vline(x=best, line=dict(color="#000", dash="dot"),
                      annotation_text=f"lowest held-out loss: step {best}", annotation_position="top left")
    fig.update_xaxes(type="log")
    fig.update_layout(legend=dict(x=0.6, y=0.95))
    return fig


def scatter_traces(x_train, prior, posterior, reference=None, show_legend: bool = True,
                   train_size: int = 8, train_opacity: float = 1.0) -> list[go.Scatter]:
    """Traces for one panel: prior samples, posterior samples, (reference) and training points."""
    p, q, x = to_numpy(prior), to_numpy(posterior), to_numpy(x_train)
    tr = [compact(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name="prior samples",
                             legendgroup="prior", showlegend=show_legend,
                             marker=dict(color=PALETTE[5], size=3, opacity=0.5))),
          compact(go.Scatter(x=q[:, 0], y=q[:, 1], mode="markers", name="posterior samples",
                             legendgroup="post", showlegend=show_legend,
                             marker=dict(color=PALETTE[1], size=4, opacity=0.5)))]
    if reference is not None:
        r = to_numpy(reference)
        tr.append(compact(go.Scatter(x=r[:, 0], y=r[:, 1], mode="markers", name="reference posterior",
                                     legendgroup="ref", showlegend=show_legend,
                                     marker=dict(color=PALETTE[2], size=3, opacity=0.25))))
    tr.append(compact(go.Scatter(x=x[:, 0], y=x[:, 1], mode="markers", name="training points",
                                 legendgroup="train", showlegend=show_legend,
                                 marker=dict(color=PALETTE[7], size=train_size, symbol="x",
                                             opacity=train_opacity))))
    return tr


def fig_variants(panels: Mapping[str, tuple], line: tuple | None = None, lim: float = 3.5,
                 cols: int = 2) -> go.Figure:
    """Prior and posterior samples of several priors, one panel each.

    ``panels[name] = (x_train, prior_samples, posterior_samples)``; ``line = (a, y)`` draws the
    data line ``a · x = y`` (noise-free data constraint of a linear forward map with one datum).
    """
    names = list(panels)
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.05,
                        vertical_spacing=0.1)
    fig.update_layout(figure(None, height=300 * rows + 60).layout)
    fig.update_annotations(font_size=12)
    xs = np.linspace(-lim, lim, 2)
    for k, name in enumerate(names):
        r, c = k // cols + 1, k % cols + 1
        x_train, prior, post = panels[name]
        many = len(to_numpy(x_train)) > 64   # many training points: draw them small and light
        for tr in scatter_traces(x_train, prior, post, show_legend=k == 0, train_size=3 if many else 8,
                                 train_opacity=0.25 if many else 1.0):
            fig.add_trace(tr, row=r, col=c)
        if line is not None:
            a, yv = line
            if abs(a[1]) > 0:
                fig.add_trace(go.Scatter(x=xs, y=(yv - a[0] * xs) / a[1], mode="lines", name="a·x = y",
                                         legendgroup="line", showlegend=k == 0,
                                         line=dict(color="#000", dash="dot", width=1)), row=r, col=c)
        fig.update_xaxes(range=[-lim, lim], row=r, col=c, title_text=f"x₁ ({_AX})" if r == rows else None)
        fig.update_yaxes(range=[-lim, lim], row=r, col=c, title_text=f"x₂ ({_AX})" if c == 1 else None)
    fig.update_layout(legend=dict(orientation="h", y=-0.08, x=0.0))
    return fig


def fig_mitigation(rows: Sequence[Mapping[str, float]], reference_floor: float | None = None) -> go.Figure:
    """Prior-side and posterior-side scores of each prior variant.

    Each row needs ``"prior"`` (name), ``"flagged"``, ``"flagged se"``, ``"null"``, ``"tv lookup"``,
    ``"tv se"`` and ``"energy"``.
    """
    names = [r["prior"] for r in rows]
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=["prior: d₁/d₂ < 1/3", "posterior: TV to lookup",
                                        "posterior: to reference"])
    fig.update_layout(figure(None, height=80 + 48 * len(rows)).layout)
    y = list(range(len(rows)))[::-1]
    fig.add_trace(go.Scatter(x=[r["flagged"] for r in rows], y=y, mode="markers", name="generated",
                             error_x=dict(type="data", array=[2 * r["flagged se"] for r in rows]),
                             marker=dict(color=color(1), size=10)), row=1, col=1)
    fig.add_trace(go.Scatter(x=[r["null"] for r in rows], y=y, mode="markers", name="null (fresh draws)",
                             marker=dict(color=color(2), size=10, symbol="diamond-open")), row=1, col=1)
    fig.add_trace(go.Scatter(x=[r["tv lookup"] for r in rows], y=y, mode="markers", showlegend=False,
                             error_x=dict(type="data", array=[2 * r["tv se"] for r in rows]),
                             marker=dict(color=color(0), size=10)), row=1, col=2)
    fig.add_trace(go.Scatter(x=[r["energy"] for r in rows], y=y, mode="markers", showlegend=False,
                             marker=dict(color=color(3), size=10)), row=1, col=3)
    if reference_floor is not None:
        fig.add_vline(x=reference_floor, line=dict(color="#000", dash="dot"), row=1, col=3)
    # the variants' names on two lines at most, so that the panels keep some width on a phone
    fig.update_yaxes(tickvals=y, ticktext=[wrap_text(nm, 120, 13) for nm in names], row=1, col=1)
    fig.update_xaxes(title_text="fraction flagged", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="TV", range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(title_text="energy distance", rangemode="tozero", row=1, col=3)
    fig.update_annotations(font_size=12)
    fig.update_layout(legend=dict(orientation="h", y=-0.22, x=0.0), margin=dict(l=135, r=10))
    return fig


def fig_training_slider(x_train, frames: Sequence[tuple], labels: Sequence[str], titles: Sequence[str],
                        reference=None, line: tuple | None = None, lim: float = 3.5, active: int = 0) -> go.Figure:
    """Kernel-free slider over training length: prior and posterior samples at each snapshot.

    ``frames[k] = (prior_samples, posterior_samples)``.
    """
    base = figure(None, f"x₁ ({_AX})", f"x₂ ({_AX})", height=520)
    fr = []
    xs = np.linspace(-lim, lim, 2)
    for prior, post in frames:
        tr = scatter_traces(x_train, prior, post, reference=reference)
        if line is not None:
            a, yv = line
            tr.append(go.Scatter(x=xs, y=(yv - a[0] * xs) / a[1], mode="lines", name="a·x = y",
                                 line=dict(color="#000", dash="dot", width=1)))
        fr.append(tr)
    base.update_xaxes(range=[-lim, lim])
    base.update_yaxes(range=[-lim, lim], scaleanchor="x", scaleratio=1)
    base.update_layout(legend=dict(x=1.02, y=1.0, xanchor="left"), margin=dict(r=150, t=80),
                       title_font_size=12)
    fig = slider_figure(fr, labels, slider_prefix="training steps: ", base=base, frame_titles=titles,
                        active=active)
    fig.layout.sliders[0].update(pad=dict(t=75, b=10))
    return fig


def line_xy(a, yv: float, lim: float):
    """Two points of the line ``a · x = y`` inside ``[-lim, lim]`` (``a[1] != 0``)."""
    xs = np.array([-lim, lim])
    return xs, (yv - a[0] * xs) / a[1]


def datum_base(names: Sequence[str], lim: float = 3.5) -> go.Figure:
    """One square panel per prior, for the datum app and its twin."""
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=list(names), horizontal_spacing=0.05)
    fig.update_layout(figure(None, height=480).layout)
    fig.update_annotations(font_size=12)
    fig.update_xaxes(range=[-lim, lim])
    fig.update_xaxes(title_text=f"x₁ ({_AX})", row=1, col=(len(names) + 1) // 2)
    fig.update_yaxes(range=[-lim, lim])
    fig.update_yaxes(title_text=f"x₂ ({_AX})", row=1, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.3, x=0.0), margin=dict(t=90))
    return fig


def datum_traces(panels: Sequence[tuple], a, yv: float, lim: float = 3.5) -> list[go.Scatter]:
    """Traces of every panel, each bound to its own axes.

    ``panels[k] = (x_train, prior_samples, posterior_samples)``; ``a``: the two weights of the
    linear datum ``y = a · x``; ``yv``: its value (drawn as the line ``a · x = y``).
    """
    out = []
    for k, (x_train, prior, post) in enumerate(panels):
        ax = "" if k == 0 else str(k + 1)
        many = len(to_numpy(x_train)) > 64
        trs = scatter_traces(x_train, prior, post, show_legend=k == 0, train_size=3 if many else 8,
                             train_opacity=0.25 if many else 1.0)
        lx, ly = line_xy(a, yv, lim)
        trs.append(go.Scatter(x=lx, y=ly, mode="lines", name="a·x = y", legendgroup="line", showlegend=k == 0,
                              line=dict(color="#000", dash="dot", width=1)))
        for tr in trs:
            tr.update(xaxis=f"x{ax}", yaxis=f"y{ax}")
        out.extend(trs)
    return out


def twin_datum(names: Sequence[str], frames: Sequence[Sequence[tuple]], y_values: Sequence[float], a,
               titles: Sequence[str], lim: float = 3.5, active: int = 0) -> go.Figure:
    """Kernel-free slider over the datum ``y``: the posterior each prior implies.

    ``frames[j]`` is the ``panels`` argument of :func:`datum_traces` for ``y_values[j]``.
    """
    if len(frames) != len(y_values):
        raise ValueError(f"y_values: need one value per frame ({len(frames)}), got {len(y_values)}")
    fr = [datum_traces(panels, a, yv, lim) for panels, yv in zip(frames, y_values)]
    fig = slider_figure(fr, [f"{v:g}" for v in y_values], slider_prefix="datum y: ", base=datum_base(names, lim),
                        frame_titles=titles, active=active)
    fig.layout.sliders[0].update(pad=dict(t=80, b=10))
    fig.update_layout(title_font_size=12, legend=dict(orientation="h", y=1.12, x=0.0, yanchor="bottom"),
                      margin=dict(t=120, l=50, r=10))
    return fig


def datum_title(names: Sequence[str], y: float, dist: Sequence[float]) -> str:
    """Figure title: the datum and each prior's energy distance to the reference posterior."""
    return f"datum y = {y:g}; energy distance to the reference posterior: " + ", ".join(
        f"{nm} {d:.2f}" for nm, d in zip(names, dist))


def fig_report(report, names: Sequence[str] = ("x₁", "x₂")) -> go.Figure:
    """The memorization report figure of low-dimensional data, its gallery axis labelled by coordinate.

    ``report`` is a :class:`memprior.metrics.MemorizationReport`; the figure is
    :func:`memprior.plots.diffusion.fig_memorization_report` with ticks ``names`` on the gallery's
    coordinate axis (row 2).
    """
    from .diffusion import fig_memorization_report

    fig = fig_memorization_report(report)
    fig.update_xaxes(title_text=None, tickvals=list(range(len(names))), ticktext=list(names), row=2)
    return fig


def fig_snapshots(snap, x_train, a, y: float, null: float) -> go.Figure:
    """Slider over the training snapshots of :func:`memprior.experiments.practice.training_snapshots`.

    Titled by the prior's flagged fraction against ``null`` (the flagged fraction of fresh draws), the fraction
    of posterior samples on training points and the energy distance to the reference; ``a · x = y`` is the data
    line. Opens at the last snapshot.
    """
    titles = [f"{s} steps: prior flagged {q:.2f} (null {null:.2f})<br>posterior: on training points "
              f"{on:.2f}, energy distance to reference {e:.2f}"
              for s, q, on, e in zip(snap.steps, snap.flagged, snap.on_training, snap.energy)]
    frames = list(zip(snap.prior_samples, snap.posterior_samples))
    return fig_training_slider(x_train, frames, [str(s) for s in snap.steps], titles, line=(list(a), float(y)),
                               active=len(frames) - 1)


def twin_datum_sweep(sweep, a, active_y: float = 1.5, n_prior: int = 500) -> go.Figure:
    """Slider over the datum of :func:`memprior.experiments.practice.datum_sweep` (:func:`twin_datum`).

    Shows the first ``n_prior`` prior samples of each panel; opens at the datum closest to ``active_y``.
    """
    frames = [[(x, z[:n_prior], q) for x, z, q in zip(sweep.x_train, sweep.prior_samples, post)]
              for post in sweep.posterior_samples]
    titles = [datum_title(sweep.short, float(yv), dd) for yv, dd in zip(sweep.y_values, sweep.distance)]
    active = int(np.argmin(np.abs(np.asarray(sweep.y_values) - active_y)))
    return twin_datum(list(sweep.names), frames, [float(v) for v in sweep.y_values], list(a), titles,
                      active=active)

"""Figures for chapter 5, "Posterior sampling with a diffusion prior".

The numbers come from :mod:`memprior.guidance`; this module only arranges them:
frequency bars against the exact lookup weights, total-variation sweeps with
Monte Carlo error bars, distances to the nearest training point, the Jensen-gap
picture and the kernel-free slider twin of the live step-size app.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from . import PALETTE, compact, figure, method_color, set_alt, slider_figure, style, to_numpy

__all__ = [
    "point_labels",
    "frequency_traces",
    "fig_frequencies",
    "fig_tv_sweep",
    "fig_distances",
    "fig_jensen_gap",
    "twin_step_size",
    "summary_table",
]

def point_labels(x_train) -> list[str]:
    """Axis labels for training points: ``x1 = -1.5`` (1-D) or ``x1 = (2.0, 0.0)`` (2-D)."""
    x = to_numpy(x_train)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_train: expected shape [N, d] with N >= 1, got {list(x.shape)}")
    if x.shape[1] == 1:
        return [f"x{n + 1} = {v:.2g}" for n, v in enumerate(x[:, 0])]
    return [f"x{n + 1} = (" + ", ".join(f"{c:.2g}" for c in row) + ")" for n, row in enumerate(x)]


def frequency_traces(labels: Sequence[str], weights, freq, n: int, name: str, show_legend: bool = True) -> list:
    """Two bar traces: the exact weights and a sampler's frequencies with +-1 binomial standard error."""
    w, f = to_numpy(weights), to_numpy(freq)
    if len(w) != len(labels) or len(f) != len(labels):
        raise ValueError(f"weights, freq: need one value per label ({len(labels)}), got {len(w)} and {len(f)}")
    if n < 1:
        raise ValueError(f"n: number of samples must be >= 1, got {n}")
    se = np.sqrt(np.clip(f * (1 - f), 0, None) / n)
    return [
        go.Bar(x=list(labels), y=w, name="exact lookup weights", marker_color=style("lookup")["color"],
               showlegend=show_legend),
        go.Bar(x=list(labels), y=f, name=name, marker_color=method_color(name, 1),
               error_y=dict(type="data", array=se, visible=True, color="#444"), showlegend=show_legend),
    ]


def fig_frequencies(x_train, weights, results: Mapping[str, tuple], title: str | None = None,
                    height: int = 380) -> go.Figure:
    """Grouped bars: exact lookup weights and each sampler's frequencies (nearest training point).

    Parameters
    ----------
    x_train : Tensor[N, d]
    weights : Tensor[N]
    results : mapping name -> (frequencies [N], n_samples)
    """
    labels = point_labels(x_train)
    fig = figure(title=title, xlabel="training point (nearest to each sample)",
                 ylabel="probability / frequency", height=height)
    fig.add_trace(go.Bar(x=labels, y=to_numpy(weights), name="exact lookup weights",
                         marker_color=style("lookup")["color"]))
    for i, (name, (freq, n)) in enumerate(results.items()):
        f = to_numpy(freq)
        se = np.sqrt(np.clip(f * (1 - f), 0, None) / n)
        fig.add_trace(go.Bar(x=labels, y=f, name=name, marker_color=method_color(name, i + 1),
                             error_y=dict(type="data", array=se, visible=True, color="#444")))
    fig.update_layout(barmode="group", yaxis_range=[0, 1.05], margin=dict(t=70),
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return set_alt(fig, "Bar chart comparing the exact posterior weights of each training point with the "
                        "frequencies produced by several samplers.")


def fig_tv_sweep(series: Mapping[str, Mapping[str, Sequence[float]]], floor: float | Sequence[float],
                 xlabel: str, title: str | None = None, log_x: bool = True, height: int = 400) -> go.Figure:
    """Total variation to the lookup weights against a step size or particle count.

    Parameters
    ----------
    series : mapping name -> {"x": [...], "tv": [...], "se": [...]}
        One curve per sampler/problem; ``se`` is the Monte Carlo standard error.
    floor : float or sequence
        TV an exact sampler shows with the same number of samples (drawn as a grey band).
    """
    fig = figure(title=title, xlabel=xlabel, ylabel="total variation to lookup weights", height=height)
    xs_all = []
    for i, (name, s) in enumerate(series.items()):
        x, tv, se = to_numpy(s["x"]), to_numpy(s["tv"]), to_numpy(s["se"])
        if not (len(x) == len(tv) == len(se)):
            raise ValueError(f"series[{name!r}]: x, tv and se need equal lengths")
        xs_all.extend(x.tolist())
        fig.add_trace(compact(go.Scatter(x=x, y=tv, mode="lines+markers", name=name,
                                         line=dict(color=PALETTE[i % len(PALETTE)]),
                                         error_y=dict(type="data", array=1.96 * se, visible=True))))
    if xs_all:
        lo, hi = min(xs_all), max(xs_all)
        fl = float(np.max(to_numpy(floor)))
        fig.add_trace(go.Scatter(x=[lo, hi, hi, lo], y=[0, 0, fl, fl], fill="toself", mode="none",
                                 fillcolor="rgba(120,120,120,0.25)", name="exact-sampler noise floor",
                                 hoverinfo="skip"))
    if log_x:
        fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"), margin=dict(t=70))
    return set_alt(fig, "Line chart of the total-variation distance between sampler frequencies and the exact "
                        "lookup weights, with 95% Monte Carlo error bars and a grey band for the noise floor.")


def fig_distances(distances: Mapping[str, Sequence[float]], title: str | None = None, height: int = 380) -> go.Figure:
    """Box plots of the distance from each sample to its nearest training point, one box per sampler."""
    fig = figure(title=title, xlabel="sampler", ylabel="distance to nearest training point (units of x)",
                 height=height)
    for i, (name, d) in enumerate(distances.items()):
        fig.add_trace(compact(go.Box(y=to_numpy(d), name=name, marker_color=method_color(name, i),
                                     boxpoints="outliers")))
    fig.update_layout(showlegend=False, margin=dict(b=110))
    fig.update_xaxes(tickangle=-30)
    return set_alt(fig, "Box plots of the distance from each posterior sample to its nearest training point "
                        "for each sampler.")


def fig_jensen_gap(x_grid, levels: Sequence[int], exact: Sequence, dps: Sequence, noise_std: Sequence[float],
                   active: int = 0, floor: float = -40.0) -> go.Figure:
    """Kernel-free slider over noise levels: exact ``log p(y|x_t)`` against DPS's ``log p(y|x0_hat(x_t))``.

    Parameters
    ----------
    x_grid : array [G]
        Values of the 1-D noisy iterate ``x_t``.
    levels : sequence of int
        Diffusion levels ``t`` shown, one slider step each.
    exact, dps : sequences of arrays [G]
        The two log-likelihoods at each level.
    noise_std : sequence of float
        :math:`\\sqrt{1-\\bar\\alpha_t}` at each level (for the labels).
    active : int
        Slider step shown first.
    floor : float
        Lower end of the y-axis (log-likelihoods below it are clipped to it).
    """
    xg = to_numpy(x_grid)
    if not (len(levels) == len(exact) == len(dps) == len(noise_std)) or len(levels) == 0:
        raise ValueError("levels, exact, dps, noise_std: need equal, non-zero lengths")
    curves = [np.maximum(to_numpy(c), floor) for c in list(exact) + list(dps)]
    lo = min(float(c.min()) for c in curves)
    hi = max(float(c.max()) for c in curves)
    base = figure(xlabel="noisy iterate x_t (units of x)", ylabel="log-likelihood of y given x_t", height=440)
    base.update_layout(legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"), margin=dict(t=90))
    base.update_yaxes(range=[lo - 1, hi + 1])
    frames, labels, titles = [], [], []
    for t, e, d, s in zip(levels, exact, dps, noise_std):
        tr = [go.Scatter(x=xg, y=np.maximum(to_numpy(e), floor), mode="lines", name="exact: log Σ w_n p(y|x_n)",
                         line=dict(color=style("lookup")["color"])),
              go.Scatter(x=xg, y=np.maximum(to_numpy(d), floor), mode="lines", name="DPS: log p(y | E[x0|x_t])",
                         line=style("DPS", dash="dash"))]
        frames.append(tr)
        labels.append(f"t={t}")
        titles.append(f"Jensen gap at level t = {t} (noise std {s:.2f})")
    fig = slider_figure(frames, labels, slider_prefix="level ", base=base, active=active, frame_titles=titles)
    return set_alt(fig, "Interactive line chart with a slider over diffusion levels, comparing the exact "
                        "likelihood of the data given the noisy iterate with the approximation used by DPS.")


def twin_step_size(x_train, weights, sweep: Sequence[tuple[str, object, int]], name: str,
                   active: int = 0, title_prefix: str = "") -> go.Figure:
    """Kernel-free twin of the live step-size app: one slider step per precomputed run.

    Parameters
    ----------
    x_train : Tensor[N, d]
    weights : Tensor[N]
        Exact lookup weights.
    sweep : sequence of (label, frequencies [N], n_samples)
        One entry per step size, in slider order.
    name : str
        Sampler name for the legend.
    """
    if len(sweep) == 0:
        raise ValueError("sweep: need at least one precomputed run")
    labels = point_labels(x_train)
    w = to_numpy(weights)
    frames, steps, titles = [], [], []
    for lab, freq, n in sweep:
        frames.append(frequency_traces(labels, w, freq, n, name))
        tv = 0.5 * float(np.abs(to_numpy(freq) - w).sum())
        steps.append(lab)
        titles.append(f"{title_prefix}{lab}: total variation {tv:.3f}")
    base = figure(xlabel="training point (nearest to each sample)", ylabel="probability / frequency", height=400)
    base.update_layout(barmode="group", yaxis_range=[0, 1.05], margin=dict(t=90),
                       legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"))
    fig = slider_figure(frames, steps, slider_prefix="", base=base, active=active, frame_titles=titles)
    return set_alt(fig, f"Interactive bar chart with a slider over step sizes: frequencies of the {name} "
                        "samples against the exact lookup weights.")


def summary_table(summary):
    """The chapter's closing table as HTML: TV +- one standard error per sampler (rows) and problem (columns).

    Parameters
    ----------
    summary : memprior.experiments.sampling.Summary
        Fields ``problems`` [P], ``samplers`` [R], ``tv`` and ``se`` [R, P], ``notes`` [R][P] (appended in
        brackets where not empty) and ``floor`` [P] (the last row).

    Returns
    -------
    IPython.display.HTML
    """
    from IPython.display import HTML

    tv, se = np.asarray(summary.tv, dtype=float), np.asarray(summary.se, dtype=float)
    R, P = len(summary.samplers), len(summary.problems)
    if tv.shape != (R, P) or se.shape != (R, P) or len(summary.notes) != R or len(summary.floor) != P:
        raise ValueError(f"summary: tv, se, notes need shape [{R}, {P}] and floor [{P}]")
    rows = [[name] + [f"{tv[i, j]:.3f}&nbsp;±&nbsp;{se[i, j]:.3f}" + (f" ({summary.notes[i][j]})"
                                                                       if summary.notes[i][j] else "")
                      for j in range(P)] for i, name in enumerate(summary.samplers)]
    rows.append(["noise floor (exact sampler)"] + [f"{float(f):.3f}" for f in summary.floor])
    html = "<table class='table'><thead><tr>" + "".join(f"<th>{h}</th>" for h in ["sampler", *summary.problems])
    html += "</tr></thead><tbody>"
    html += "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>"
    return HTML(html)

"""Figures for the diffusion chapter (memorization by diffusion models) and the metrics report."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from . import PALETTE, color, compact, figure, slider_figure

__all__ = [
    "fig_schedule",
    "noising_traces",
    "noising_base",
    "twin_noising",
    "fig_frequency",
    "fig_samples",
    "fig_commitment",
    "fig_mlp_gap",
    "fig_memorization",
    "fig_null_vs_dim",
    "fig_memorization_report",
]


def fig_schedule(schedules: Mapping[str, "object"]) -> go.Figure:
    """Signal fraction ᾱ_t against the step index for named schedules."""
    fig = figure(None, "step t (0 = cleanest, T-1 = noisiest)", "ᾱ_t (signal variance kept)", height=360)
    for i, (name, s) in enumerate(schedules.items()):
        ab = s.alpha_bar.numpy()
        fig.add_trace(compact(go.Scatter(x=np.arange(len(ab)), y=ab, mode="lines", name=name,
                                         line=dict(color=color(i), width=2.5))))
        fig.add_trace(go.Scatter(x=[len(ab) - 1], y=[float(ab[-1])], mode="markers+text",
                                 text=[f"ᾱ_T-1 = {ab[-1]:.3g}"], textposition="top left",
                                 marker=dict(color=color(i), size=9), showlegend=False))
    fig.update_yaxes(range=[-0.03, 1.05])
    fig.update_layout(legend=dict(x=0.62, y=0.95))
    return fig


def noising_traces(den, t: int, grid: np.ndarray) -> list[go.Scatter]:
    """Traces for one level of the 1-D noising picture.

    Left panel: the noised empirical density p_t(x) and the scaled training points
    √ᾱ_t x_n; right panel: the closed-form denoiser x̂₀(x) and the identity line.
    ``den`` is a :class:`memprior.diffusion.MemorizedDenoiser` with ``d = 1``.
    """
    g = torch.as_tensor(np.asarray(grid, dtype=np.float64))[:, None]
    dens = torch.exp(den.log_marginal(g, t)).numpy()
    x0 = den.denoise(g, t)[:, 0].numpy()
    c = den.schedule.sqrt_alpha_bar(t) * den.x_train[:, 0].numpy()
    return [
        go.Scatter(x=grid, y=dens, mode="lines", name="p_t(x_t)", line=dict(color=PALETTE[0], width=2.5),
                   xaxis="x", yaxis="y"),
        go.Scatter(x=c, y=np.zeros_like(c), mode="markers", name="√ᾱ_t x_n",
                   marker=dict(color=PALETTE[7], size=9, symbol="x"), xaxis="x", yaxis="y"),
        go.Scatter(x=grid, y=x0, mode="lines", name="x̂₀(x_t)", line=dict(color=PALETTE[1], width=2.5),
                   xaxis="x2", yaxis="y2"),
        go.Scatter(x=grid, y=grid, mode="lines", name="identity", line=dict(color="#999", dash="dot"),
                   xaxis="x2", yaxis="y2"),
    ]


def noising_base(x_train_1d: np.ndarray, grid: np.ndarray, ymax: float) -> go.Figure:
    """Two-panel layout for :func:`noising_traces`."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("noised data density p_t", "closed-form denoiser E[x₀ | x_t]"))
    base = figure(None, height=400)
    fig.update_layout(base.layout)
    fig.update_layout(title=None, legend=dict(orientation="h", yanchor="bottom", y=1.12, x=0.0),
                      margin=dict(t=110))
    fig.update_xaxes(title_text="x_t (normalized units)", range=[grid[0], grid[-1]])
    fig.update_yaxes(title_text="density (1/unit)", range=[-0.05 * ymax, ymax], row=1, col=1)
    lo, hi = float(np.min(x_train_1d)) - 0.5, float(np.max(x_train_1d)) + 0.5
    fig.update_yaxes(title_text="x̂₀ (normalized units)", range=[lo, hi], row=1, col=2)
    return fig


def twin_noising(den, levels: Sequence[int], grid: np.ndarray) -> go.Figure:
    """Kernel-free twin of the noising app: a slider over the levels ``t``."""
    frames = [noising_traces(den, int(t), grid) for t in levels]
    # scale the density axis to the frames with t >= 5: at t = 0 the bumps are much taller (clipped)
    peaks = [float(np.max(f[0].y)) for f, t in zip(frames, levels) if int(t) >= 5]
    ymax = 1.1 * max(peaks or [float(np.max(f[0].y)) for f in frames])
    base = noising_base(den.x_train[:, 0].numpy(), grid, ymax)
    sch = den.schedule
    labels = [f"{int(t)}" for t in levels]
    titles = [f"t = {int(t)}: ᾱ_t = {float(sch.alpha_bar[int(t)]):.3f}, noise std {sch.std(int(t)):.3f}"
              for t in levels]
    fig = slider_figure(frames, labels, slider_prefix="step t = ", base=base, frame_titles=titles,
                        active=len(levels) - 1)
    fig.layout.sliders[0].pad.t = 75  # clear of the x-axis titles
    fig.update_layout(height=440)
    return fig


def fig_frequency(counts: Mapping[str, np.ndarray], n_samples: int) -> go.Figure:
    """Frequency with which samples land on each training point, per sampler variant."""
    fig = figure(None, "training point n", "fraction of samples", height=340, barmode="group")
    for i, (name, c) in enumerate(counts.items()):
        c = np.asarray(c, dtype=float)
        se = np.sqrt(c / n_samples * (1 - c / n_samples) / n_samples)
        fig.add_trace(go.Bar(x=np.arange(len(c)), y=c / n_samples, name=name, marker_color=color(i),
                             error_y=dict(type="data", array=2 * se, thickness=1)))
    n = len(next(iter(counts.values())))
    fig.add_hline(y=1.0 / n, line=dict(color="#000", dash="dash"), annotation_text="uniform 1/N",
                  annotation_position="top right")
    return fig


def fig_samples(x_train: np.ndarray, samples: np.ndarray, paths: np.ndarray | None = None,
                title: str | None = None, sample_name: str = "samples") -> go.Figure:
    """2-D training points, samples and (optionally) sampler paths ``[S, n, 2]``."""
    fig = figure(title, "x₁ (normalized units)", "x₂ (normalized units)", height=460)
    if paths is not None:
        for j in range(paths.shape[1]):
            fig.add_trace(compact(go.Scatter(x=paths[:, j, 0], y=paths[:, j, 1], mode="lines",
                                             line=dict(color=PALETTE[5], width=1), opacity=0.6,
                                             name="sampler path", showlegend=j == 0, hoverinfo="skip")))
    fig.add_trace(compact(go.Scatter(x=samples[:, 0], y=samples[:, 1], mode="markers", name=sample_name,
                                     marker=dict(color=PALETTE[1], size=6, opacity=0.6))))
    fig.add_trace(compact(go.Scatter(x=x_train[:, 0], y=x_train[:, 1], mode="markers", name="training points",
                                     marker=dict(color=PALETTE[7], size=11, symbol="x"))))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def fig_commitment(dims: Sequence[int], ns: Sequence[int], median: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray, n_steps: int) -> go.Figure:
    """Median commitment step (with a 10–90 % band) against dimension, one line per N."""
    fig = figure(None, "dimension d", "commitment step t* (T-1 = first step)", height=380)
    for i, n in enumerate(ns):
        fig.add_trace(go.Scatter(
            x=list(dims), y=median[i], mode="lines+markers", name=f"N = {n}", line=dict(color=color(i)),
            error_y=dict(type="data", symmetric=False, array=hi[i] - median[i], arrayminus=median[i] - lo[i],
                         thickness=1)))
    fig.add_hline(y=n_steps - 1, line=dict(color="#000", dash="dot"), annotation_text="first step",
                  annotation_position="bottom right")
    fig.update_xaxes(type="log", tickvals=list(dims))
    return fig


def fig_mlp_gap(ts: np.ndarray, eps_mem: np.ndarray, eps_mlp: np.ndarray, excess: np.ndarray) -> go.Figure:
    """Trained network against the closed form, per step.

    Left: the noise-prediction error E‖ε̂ − ε‖² (the training loss) of both; right: the excess
    denoising error E‖x̂₀ − x₀‖² of the network over the closed form (log scale).
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("noise-prediction error E‖ε̂ − ε‖²",
                                        "excess E‖x̂₀ − x₀‖² of the net over the optimum"))
    fig.update_layout(figure(None, height=400).layout)
    fig.add_trace(compact(go.Scatter(x=ts, y=eps_mem, name="closed form (optimal)", mode="lines",
                                     line=dict(color=PALETTE[0], width=2.5))), row=1, col=1)
    fig.add_trace(compact(go.Scatter(x=ts, y=eps_mlp, name="trained MLP", mode="lines",
                                     line=dict(color=PALETTE[1], width=2.5))), row=1, col=1)
    fig.add_trace(compact(go.Scatter(x=ts, y=np.maximum(excess, 1e-8), name="MLP − closed form", mode="lines+markers",
                                     line=dict(color=PALETTE[2], width=2), marker=dict(size=4))), row=1, col=2)
    fig.update_xaxes(title_text="step t")
    fig.update_yaxes(title_text="squared error (normalized units²)", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.22, x=0.0))
    return fig


def fig_memorization(steps: Sequence[int], ns: Sequence[int], frac: Mapping[str, np.ndarray],
                     se: Mapping[str, np.ndarray], null: Mapping[str, np.ndarray]) -> go.Figure:
    """Fraction of samples flagged as memorized against training steps, per N, for each metric.

    ``frac[metric]`` and ``se[metric]`` have shape ``[len(ns), len(steps)]``; ``null[metric]``
    has shape ``[len(ns)]`` (the fraction of fresh draws flagged).
    """
    metrics = list(frac)
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=metrics)
    fig.update_layout(figure(None, height=400).layout)
    for j, m in enumerate(metrics):
        for i, n in enumerate(ns):
            fig.add_trace(go.Scatter(x=list(steps), y=frac[m][i], mode="lines+markers", name=f"N = {n}",
                                     legendgroup=f"n{n}", showlegend=j == 0, line=dict(color=color(i)),
                                     error_y=dict(type="data", array=2 * se[m][i], thickness=1)),
                          row=1, col=j + 1)
            fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[null[m][i]] * 2, mode="lines",
                                     name=f"null, N = {n}", legendgroup=f"n{n}", showlegend=False,
                                     line=dict(color=color(i), dash="dot")), row=1, col=j + 1)
        fig.update_xaxes(type="log", title_text="training steps", tickvals=list(steps), row=1, col=j + 1)
    fig.update_yaxes(title_text="fraction flagged as memorized", range=[0, 1.05], row=1, col=1)
    return fig


def fig_null_vs_dim(dims: Sequence[int], frac_r: np.ndarray, frac_q: np.ndarray, ns: Sequence[int]) -> go.Figure:
    """Fraction of *fresh* draws flagged by each rule, against dimension (the null)."""
    fig = figure(None, "dimension d", "fraction of fresh draws flagged", height=380)
    for i, n in enumerate(ns):
        fig.add_trace(go.Scatter(x=list(dims), y=frac_r[i], mode="lines+markers", name=f"r < 0.7, N = {n}",
                                 line=dict(color=color(i))))
        fig.add_trace(go.Scatter(x=list(dims), y=frac_q[i], mode="lines+markers", name=f"d₁/d₂ < 1/3, N = {n}",
                                 line=dict(color=color(i), dash="dash"), marker=dict(symbol="square")))
    d = np.asarray(dims, dtype=float)
    fig.add_trace(go.Scatter(x=d, y=3.0 ** -d, mode="lines", name="3⁻ᵈ (dense-data limit of d₁/d₂)",
                             line=dict(color="#000", dash="dot")))
    fig.update_xaxes(type="log", tickvals=list(dims))
    fig.update_yaxes(range=[-0.02, 1.05])
    return fig


def fig_memorization_report(report, image_shape: tuple | None = None) -> go.Figure:
    """Histograms of both scores (generated vs null) and a gallery of nearest pairs.

    Parameters
    ----------
    report : memprior.metrics.MemorizationReport
        The scores of each set and the gallery pairs (samples ``[P, d]``, their nearest training
        points ``[P, d]`` and their ratios ``[P]``).
    image_shape : (h, w), optional
        Draw the pairs as images, with ``h * w = d``, instead of coordinate profiles.
    """
    scores, samples = report.scores, report.pair_samples
    neighbours, ratios = report.pair_neighbours, report.pair_ratios
    if image_shape is not None:
        if len(image_shape) != 2 or int(image_shape[0]) * int(image_shape[1]) != samples.shape[1]:
            raise ValueError(f"image_shape: need (h, w) with h * w = d = {samples.shape[1]}, "
                             f"got {tuple(image_shape)}")
    p = samples.shape[0]
    fig = make_subplots(rows=2, cols=max(p, 2), specs=[[{"colspan": max(p, 2) // 2}] + [None] * (max(p, 2) // 2 - 1)
                                                    + [{"colspan": max(p, 2) - max(p, 2) // 2}]
                                                    + [None] * (max(p, 2) - max(p, 2) // 2 - 1),
                                                    [{} for _ in range(max(p, 2))]],
                        subplot_titles=["r = d₁ / mean(d₂..d_k)", "d₁ / d₂"] + [f"r = {r:.2f}" for r in ratios],
                        vertical_spacing=0.18)
    fig.update_layout(figure(None, height=560).layout)
    for i, (name, (r, q)) in enumerate(scores.items()):
        for col, v, thr in ((1, r, 0.7), (max(p, 2) // 2 + 1, q, 1 / 3)):
            fig.add_trace(go.Histogram(x=np.asarray(v, dtype=np.float32), name=name, legendgroup=name,
                                       showlegend=col == 1, marker_color=color(i), opacity=0.6,
                                       histnorm="probability", xbins=dict(start=0, end=1, size=0.025)),
                          row=1, col=col)
    fig.add_vline(x=0.7, line=dict(color="#000", dash="dash"), row=1, col=1)
    fig.add_vline(x=1 / 3, line=dict(color="#000", dash="dash"), row=1, col=max(p, 2) // 2 + 1)
    fig.update_layout(barmode="overlay")
    for j in range(p):
        if image_shape is not None:
            pair = np.concatenate([samples[j].reshape(image_shape), neighbours[j].reshape(image_shape)], axis=1)
            fig.add_trace(go.Heatmap(z=pair.astype(np.float32), colorscale="Viridis", showscale=False),
                          row=2, col=j + 1)
            fig.update_xaxes(showticklabels=False, row=2, col=j + 1)
            fig.update_yaxes(showticklabels=False, autorange="reversed", row=2, col=j + 1)
        else:
            k = np.arange(samples.shape[1])
            fig.add_trace(go.Scatter(x=k, y=samples[j].astype(np.float32), mode="lines+markers",
                                     name="sample", legendgroup="sample", showlegend=j == 0,
                                     line=dict(color=PALETTE[1])), row=2, col=j + 1)
            fig.add_trace(go.Scatter(x=k, y=neighbours[j].astype(np.float32), mode="lines+markers",
                                     name="nearest training point", legendgroup="nn", showlegend=j == 0,
                                     line=dict(color=PALETTE[7], dash="dot")), row=2, col=j + 1)
            fig.update_xaxes(title_text="coordinate", row=2, col=j + 1)
            # the gallery's panels are narrow (a phone): value ticks on the first one only
            fig.update_yaxes(showticklabels=j == 0, row=2, col=j + 1)
    fig.update_xaxes(title_text="score", row=1, col=1)
    fig.update_yaxes(title_text="fraction", row=1, col=1)
    # the second histogram's ticks on its right, clear of the first histogram
    fig.update_yaxes(side="right", row=1, col=max(p, 2) // 2 + 1)
    return fig

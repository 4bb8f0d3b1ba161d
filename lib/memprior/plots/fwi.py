"""Figures for chapter 7, "DPS for full-waveform inversion".

The numbers come from :mod:`memprior.experiments.fwi`; this module only arranges them:
velocity-model galleries (samples beside their nearest training models), the
sorted data misfits of the lookup, sample misfits against the noise level,
commitment curves, the linearized-mixture sweep, memorization fractions against
their null baselines, and the kernel-free slider over the training-set size N.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import PALETTE, SEQUENTIAL, compact, figure, method_color, slider_figure, style, template, to_numpy

__all__ = [
    "fig_models", "fig_misfits", "fig_commitment", "fig_linearized", "fig_memorization",
    "fig_mlp", "twin_sizes", "lookup_traces", "ratio_traces", "html_table",
    # the figures of chapter 7, from the results of memprior.experiments.fwi
    "fig_setting", "fig_pairs", "fig_sample_misfits", "fig_commitment_paths", "fig_means", "fig_stds",
    "fig_linearized_sweep", "fig_memorization_sweep", "twin_memorization", "fig_mlp_comparison",
]

def fig_models(panels: Sequence[tuple[str, object]], dx: float, cols: int = 4, vmin: float | None = None,
               vmax: float | None = None, title: str | None = None, height: int | None = None,
               colorbar_title: str = "v (km/s)") -> go.Figure:
    """A gallery of velocity models ``[nx, nz]`` (km/s) with one shared colour scale.

    Parameters
    ----------
    panels : sequence of (title, array [nx, nz])
    dx : float
        Grid spacing in km (axes in km, depth downwards).
    cols : int
        Panels per row.
    vmin, vmax : float, optional
        Colour range (default: the range over all panels).
    """
    if len(panels) == 0:
        raise ValueError("panels: need at least one (title, model) pair")
    cols = max(1, min(int(cols), len(panels)))
    rows = int(np.ceil(len(panels) / cols))
    arrs = [to_numpy(a) for _, a in panels]
    lo = min(float(a.min()) for a in arrs) if vmin is None else float(vmin)
    hi = max(float(a.max()) for a in arrs) if vmax is None else float(vmax)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in panels],
                        horizontal_spacing=0.03, vertical_spacing=0.12 if rows > 1 else 0.05)
    for k, a in enumerate(arrs):
        nx, nz = a.shape
        x = np.arange(nx) * dx
        z = np.arange(nz) * dx
        fig.add_trace(compact(go.Heatmap(x=x.astype(np.float32), y=z.astype(np.float32),
                                         z=a.T.astype(np.float32), coloraxis="coloraxis",
                                         hovertemplate="x %{x:.2f} km<br>z %{y:.2f} km<br>v %{z:.3f} km/s"
                                                       "<extra></extra>")),
                      row=k // cols + 1, col=k % cols + 1)
    fig.update_yaxes(autorange="reversed", scaleanchor=None, showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    for r in range(1, rows + 1):
        fig.update_yaxes(showticklabels=True, title_text="z (km)", row=r, col=1)
    # ticks at whole km and the unit on the last one (no axis titles): narrow panels (a phone) stay legible
    x_km = np.arange(0.0, (max(a.shape[0] for a in arrs) - 1) * dx + 1e-9)
    x_text = [f"{v:g}" for v in x_km[:-1]] + [f"{x_km[-1]:g} km"]
    fig.update_xaxes(tickvals=x_km.tolist(), ticktext=x_text)
    for c in range(1, cols + 1):
        fig.update_xaxes(showticklabels=True, row=rows, col=c)
    # the colour bar lies under the panels: beside them it would take a fifth of a phone's width
    total_height = (height or 70 + 190 * rows) + 55
    fig.update_layout(coloraxis=dict(colorscale=SEQUENTIAL, cmin=lo, cmax=hi,
                                     colorbar=dict(title=dict(text=colorbar_title, side="bottom", font_size=12),
                                                   orientation="h",
                                                   thickness=12, len=0.6, x=0.5, xanchor="center", tickangle=0,
                                                   yref="container", y=0, yanchor="bottom", ypad=6)),
                      height=total_height, title=title,
                      margin=dict(t=70, l=60, r=20, b=105), template=template())
    fig.update_annotations(font_size=11)
    return fig


def fig_misfits(misfits: Mapping[str, object], lookup_best: float, truth: float, title: str | None = None,
                height: int = 380) -> go.Figure:
    """Data misfit per datum of each sample, by sampler, on a log axis.

    Parameters
    ----------
    misfits : mapping name -> array [n]
        ``sum |r|^2 / (sigma_d^2 n_data)`` per sample (1 = fitting to the noise level).
    lookup_best : float
        The best training model's misfit per datum.
    truth : float
        The true model's misfit per datum (about 1).
    """
    fig = figure(title=title, xlabel="sampler", ylabel="misfit per datum (1 = noise level)", height=height)
    names = list(misfits)
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        v = to_numpy(misfits[name])
        x = k + 0.25 * (rng.random(v.size) - 0.5)
        fig.add_trace(go.Scatter(x=x.astype(np.float32), y=v.astype(np.float32), mode="markers", name=name,
                                 marker=dict(color=method_color(name, k), size=8,
                                             line=dict(width=0.5, color="white")), showlegend=False,
                                 hovertemplate=f"{name}<br>misfit/datum %{{y:.1f}}<extra></extra>"))
    span = [-0.5, len(names) - 0.5]
    fig.add_trace(go.Scatter(x=span, y=[lookup_best] * 2, mode="lines", name="best training model (exact posterior)",
                             line=style("exact", dash="dash")))
    fig.add_trace(go.Scatter(x=span, y=[truth] * 2, mode="lines", name="true model",
                             line=dict(color=PALETTE[7], dash="dot")))
    fig.update_xaxes(tickvals=list(range(len(names))), ticktext=names, range=span)
    fig.update_yaxes(type="log")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return fig


def fig_commitment(curves: Mapping[str, tuple], n_steps: int, title: str | None = None,
                   height: int = 380) -> go.Figure:
    """Weight of each sample's final training model along the sampling path.

    Parameters
    ----------
    curves : mapping name -> (levels [S], weights [S, n])
        From :func:`memprior.fwi.commitment_curves`.
    n_steps : int
        Schedule length T (for the x-axis, "denoising step" = T - 1 - level).
    """
    fig = figure(title=title, xlabel="denoising step (0 = start, noisiest)",
                 ylabel="closed-form weight of the final model", height=height)
    for k, (name, (levels, w)) in enumerate(curves.items()):
        lv = to_numpy(levels)
        w = to_numpy(w)
        col = method_color(name, k)
        for j in range(w.shape[1]):
            fig.add_trace(go.Scatter(x=(n_steps - 1 - lv).astype(np.float32), y=w[:, j].astype(np.float32),
                                     mode="lines", line=dict(color=col, width=1.3), name=name, legendgroup=name,
                                     showlegend=j == 0, opacity=0.8))
    fig.add_hline(y=0.9, line=dict(color="#888", dash="dot"), annotation_text="commitment threshold 0.9")
    fig.update_yaxes(range=[-0.02, 1.05])
    return fig


def fig_linearized(sigmas: Sequence[float], exp_h: Mapping[str, Sequence[float]], shift: Sequence[float],
                   spread: Sequence[float], title: str | None = None, height: int = 380) -> go.Figure:
    """The linearized Gaussian-mixture posterior against the prior bandwidth sigma.

    Left: effective number of components exp(H) (with and without the log-determinant).
    Right: how far the top component's mean moves from its training model, and its
    posterior standard deviation, both in z-scored units.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("effective components",
                                                        "dominant component"), horizontal_spacing=0.14)
    s = np.asarray(sigmas, dtype=float)
    for k, (name, v) in enumerate(exp_h.items()):
        fig.add_trace(go.Scatter(x=s, y=to_numpy(v), mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[k], dash="solid" if k == 0 else "dash")), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=to_numpy(shift), mode="lines+markers", name="|mean - training model|",
                             line=dict(color=PALETTE[4])), row=1, col=2)
    fig.add_trace(go.Scatter(x=s, y=to_numpy(spread), mode="lines+markers", name="posterior std (mean over coords)",
                             line=dict(color=PALETTE[5])), row=1, col=2)
    fig.add_trace(go.Scatter(x=s, y=s, mode="lines", name="prior std sigma", line=dict(color="#888", dash="dot")),
                  row=1, col=2)
    fig.update_xaxes(type="log", title_text="σ (z-scored units)")
    fig.update_yaxes(type="log", title_text="z-scored units", row=1, col=2)
    fig.update_yaxes(title_text="exp(H)", row=1, col=1)
    fig.update_layout(height=height + 60, title=title, template=template(),
                      legend=dict(orientation="h", y=-0.3, x=0))
    return fig


def fig_memorization(sizes: Sequence[int], rows: Mapping[str, Sequence[tuple[float, float]]],
                     title: str | None = None, height: int = 400) -> go.Figure:
    """Fraction of sets flagged as memorized, against N, with binomial error bars.

    Parameters
    ----------
    sizes : sequence of N
    rows : mapping name -> list of (fraction, standard error), one per N
    """
    fig = figure(title=title, xlabel="training-set size N", ylabel="fraction flagged as memorized", height=height)
    lab = [str(n) for n in sizes]
    for k, (name, vals) in enumerate(rows.items()):
        f = np.array([v[0] for v in vals])
        se = np.array([v[1] for v in vals])
        null = "null" in name
        fig.add_trace(go.Bar(x=lab, y=f, name=name, error_y=dict(type="data", array=se, visible=True),
                             marker=dict(color=PALETTE[k % len(PALETTE)],
                                         pattern=dict(shape="/" if null else ""))))
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.08]), xaxis=dict(type="category"),
                      legend=dict(orientation="h", y=-0.25, x=0))
    return fig


def fig_mlp(labels: Sequence[str], rows: Mapping[str, Sequence[float]], title: str | None = None,
            height: int = 380, ylabel: str = "fraction with r < 0.7") -> go.Figure:
    """Grouped bars comparing the trained MLP, the closed form and the null, per setting."""
    fig = figure(title=title, xlabel="setting", ylabel=ylabel, height=height)
    for k, (name, vals) in enumerate(rows.items()):
        fig.add_trace(go.Bar(x=list(labels), y=to_numpy(vals), name=name,
                             marker=dict(color=method_color(name, k))))
    fig.update_layout(barmode="group", xaxis=dict(type="category"), legend=dict(orientation="h", y=-0.25, x=0))
    return fig


def lookup_traces(nll_per_datum, noise_line: float = 1.0, name: str = "training models") -> list:
    """Sorted misfit per datum of every training model (log axis) and the noise level."""
    v = np.sort(to_numpy(nll_per_datum))
    rank = np.arange(1, v.size + 1)
    return [go.Scatter(x=rank.astype(np.float32), y=v.astype(np.float32), mode="markers", name=name,
                       marker=dict(color=PALETTE[0], size=5), xaxis="x", yaxis="y"),
            go.Scatter(x=[1, max(int(v.size), 2)], y=[noise_line, noise_line], mode="lines",
                       name="noise level", line=dict(color=PALETTE[7], dash="dot"), xaxis="x", yaxis="y")]


def ratio_traces(r_samples, r_null, bins: np.ndarray) -> list:
    """Histograms of the paper's ratio r for samples and for the null (fresh models)."""
    out = []
    for name, v, col in (("DPS samples", r_samples, style("paper")["color"]),
                         ("fresh models (null)", r_null, style("null")["color"])):
        h, _ = np.histogram(to_numpy(v), bins=bins)
        c = 0.5 * (bins[1:] + bins[:-1])
        out.append(go.Bar(x=c.astype(np.float32), y=(h / max(len(to_numpy(v)), 1)).astype(np.float32), name=name,
                          marker=dict(color=col), opacity=0.75, xaxis="x2", yaxis="y2",
                          width=float(bins[1] - bins[0])))
    return out


def twin_sizes(frames: Mapping[int, dict], title: str | None = None, height: int = 520) -> go.Figure:
    """Kernel-free slider over N: the lookup's sorted misfits and the memorization ratio against its null.

    Parameters
    ----------
    frames : mapping N -> dict with ``nll_per_datum`` [N], ``r`` [n], ``null_r`` [m], ``exp_h`` (float)
    """
    if not frames:
        raise ValueError("frames: need at least one N")
    bins = np.linspace(0, 1, 26)
    base = make_subplots(rows=1, cols=2, subplot_titles=("lookup: misfit of every training model",
                                                         "memorization ratio r against its null"),
                         horizontal_spacing=0.17)  # room for the right panel's y-axis title on a phone
    base.update_xaxes(title_text="training models, sorted by misfit", type="log", row=1, col=1)
    base.update_yaxes(title_text="misfit per datum (1 = noise level)", type="log", row=1, col=1)
    base.update_xaxes(title_text="r = d1 / mean(d2..dk)", range=[0, 1], row=1, col=2)
    base.update_yaxes(title_text="fraction", row=1, col=2)
    base.add_vline(x=0.7, line=dict(color="#888", dash="dot"), row=1, col=2)
    base.update_layout(height=height, barmode="overlay", template=template(),
                       legend=dict(orientation="h", y=-0.3, x=0), margin=dict(t=110, b=60, l=70, r=20),
                       title=dict(y=0.98, x=0.01, xanchor="left", font=dict(size=13)))
    fr, labels, titles = [], [], []
    for N, d in frames.items():
        fr.append(lookup_traces(d["nll_per_datum"]) + ratio_traces(d["r"], d["null_r"], bins))
        labels.append(f"N = {N}")
        titles.append(f"N = {N}: exp(H) = {d['exp_h']:.3f}, best misfit/datum "
                      f"{float(np.min(to_numpy(d['nll_per_datum']))):.0f}")
    fig = slider_figure(fr, labels, slider_prefix="training-set size: ", base=base, frame_titles=titles)
    fig.update_layout(sliders=[dict(fig.layout.sliders[0].to_plotly_json(), pad=dict(t=120, b=10), y=0)])
    return fig


def html_table(rows: Sequence[Mapping[str, object]], precision: int = 3):
    """A plain HTML table (``IPython.display.HTML``) of a list of dicts with the same keys.

    Floats are printed with ``precision`` significant digits; everything else with ``str``.
    """
    from html import escape

    from IPython.display import HTML
    if len(rows) == 0:
        raise ValueError("rows: need at least one row")
    keys = list(rows[0].keys())

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if abs(v) >= 10 ** precision:
                return f"{v:,.0f}"
            return f"{v:.{precision}g}"
        return escape(str(v))

    head = "".join(f"<th>{escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(k, ''))}</td>" for k in keys) + "</tr>" for r in rows)
    return HTML(f'<table class="memprior-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


# ----------------------------------------------------------------------------- chapter 7, from its results
_SHORT = {"DPS": "DPS", "DPS (normalized)": "normalized", "exact": "exact"}


def fig_setting(res) -> go.Figure:
    """Training models and the two truths beside their KL projections.

    ``res``: :class:`memprior.experiments.fwi.Setting`.
    """
    return fig_models(list(zip(res.titles, res.velocities)), res.dx, cols=4)


def fig_pairs(res, k: int = 4) -> go.Figure:
    """The first ``k`` normalized-DPS samples (top) above their nearest training models, with lookup ranks.

    ``res``: :class:`memprior.experiments.fwi.SamplerComparison`.
    """
    r = res.normalized
    k = max(1, min(int(k), r.v.shape[0]))
    panels = [(f"sample {j}", r.v[j]) for j in range(k)]
    panels += [(f"nearest: rank {int(r.rank[j])}", r.nearest_v[j]) for j in range(k)]
    return fig_models(panels, res.dx, cols=k)


def fig_sample_misfits(res) -> go.Figure:
    """Misfit per datum of every sample of each sampler, against the lookup's best and the truth.

    ``res``: :class:`memprior.experiments.fwi.SamplerComparison`.
    """
    return fig_misfits({r.label: r.misfit_per_datum for r in res.runs}, res.best_misfit, res.truth_misfit)


def fig_commitment_paths(res) -> go.Figure:
    """Commitment curves of the DPS variants (:func:`fig_commitment`).

    ``res``: :class:`memprior.experiments.fwi.SamplerComparison`.
    """
    curves = {r.label: (r.levels, r.commit_weights) for r in (res.dps, res.normalized)}
    return fig_commitment(curves, res.n_steps)


def fig_means(res) -> go.Figure:
    """The truth, the lookup's best model and each sampler's sample mean (km/s).

    ``res``: :class:`memprior.experiments.fwi.SamplerComparison`.
    """
    panels = [("truth", res.truth_v), ("lookup's best", res.best_v)]
    panels += [(f"{_SHORT.get(r.label, r.label)}: mean", r.v_mean) for r in res.runs]
    return fig_models(panels, res.dx, cols=5, height=260)


def fig_stds(res) -> go.Figure:
    """Each sampler's pointwise sample standard deviation (km/s).

    ``res``: :class:`memprior.experiments.fwi.SamplerComparison`.
    """
    panels = [(f"{_SHORT.get(r.label, r.label)}: std", r.v_std) for r in res.runs]
    return fig_models(panels, res.dx, cols=3, height=300, vmin=0.0, colorbar_title="std (km/s)")


def fig_linearized_sweep(res) -> go.Figure:
    """:func:`fig_linearized` of a :class:`memprior.experiments.fwi.LinearizedSweep`."""
    exp_h = {"with log-det": res.exp_H, "without log-det (paper's code)": res.exp_H_no_logdet}
    return fig_linearized(res.sigmas, exp_h, res.shift, res.spread)


def fig_memorization_sweep(res) -> go.Figure:
    """:func:`fig_memorization` of a :class:`memprior.experiments.fwi.MemorizationSweep`: both rules, samples
    and null, with standard errors."""
    rows = {}
    for who, pre in (("samples", ""), ("null", "null_")):
        for rule, key in (("r < 0.7", "r"), ("d1/d2 < 1/3", "q")):
            rows[f"{who}, {rule}"] = list(zip(getattr(res, f"{pre}frac_{key}"), getattr(res, f"{pre}frac_{key}_se")))
    order = ["samples, r < 0.7", "null, r < 0.7", "samples, d1/d2 < 1/3", "null, d1/d2 < 1/3"]
    return fig_memorization([int(n) for n in res.sizes], {k: rows[k] for k in order})


def twin_memorization(res) -> go.Figure:
    """:func:`twin_sizes` of a :class:`memprior.experiments.fwi.MemorizationSweep`: slider over N."""
    frames = {int(N): {"nll_per_datum": res.nll_per_datum[i], "r": res.r[i], "null_r": res.null_r[i],
                       "exp_h": float(res.exp_H[i])} for i, N in enumerate(res.sizes)}
    return twin_sizes(frames)


def fig_mlp_comparison(res, rule: str = "q") -> go.Figure:
    """:func:`fig_mlp` of a :class:`memprior.experiments.fwi.MLPComparison` for the rule ``"q"``
    (d1/d2 < 1/3) or ``"r"`` (r < 0.7)."""
    ylabel = {"q": "fraction with d1/d2 < 1/3", "r": "fraction with r < 0.7"}
    if rule not in ylabel:
        raise ValueError(f"rule: must be 'q' or 'r', got {rule!r}")
    return fig_mlp([f"N = {int(N)}" for N in res.sizes], res.fractions(rule), ylabel=ylabel[rule])


# ----------------------------------------------------------------------------- chapter 7: trained priors
__all__ += ["fig_transition", "fig_denoiser_gap", "fig_phase", "fig_trained_pairs", "fig_tweedie",
            "fig_kl_scatter"]


def _band(fig, x, y, lo, hi, name, color, dash="solid", row=None, col=None, showlegend=True):
    """A line with markers and its interval as a shaded band."""
    x = np.asarray(x, dtype=np.float32)
    kw = dict(row=row, col=col) if row is not None else {}
    fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([hi, lo[::-1]]).astype(np.float32),
                             fill="toself", fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip",
                             showlegend=False, legendgroup=name), **kw)
    fig.add_trace(go.Scatter(x=x, y=np.asarray(y, dtype=np.float32), mode="lines+markers", name=name,
                             legendgroup=name, showlegend=showlegend, line=dict(color=color, dash=dash)), **kw)


def fig_transition(res) -> go.Figure:
    """Memorized fraction of trained-prior samples against N, both rules, beside the null, with intervals.

    ``res``: :class:`memprior.experiments.fwi.MemorizationTransition`.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("rule d1/d2 < 1/3", "paper's rule r < 0.7"),
                        horizontal_spacing=0.1)
    for c, key in ((1, "q"), (2, "r")):
        for who, pre, st in (("trained prior", "", style("MLP")), ("null (fresh models)", "null_", style("null"))):
            f = lambda s: getattr(res, f"{pre}frac_{key}{s}")
            _band(fig, res.sizes, f(""), f("_lo"), f("_hi"), who, st["color"], st["dash"], row=1, col=c,
                  showlegend=c == 1)
    fig.update_xaxes(type="log", title_text="training-set size N")
    fig.update_yaxes(range=[-0.03, 1.05], title_text="fraction flagged", row=1, col=1)
    fig.update_layout(height=400, template=template(), legend=dict(orientation="h", y=-0.25, x=0))
    return fig


def fig_denoiser_gap(res) -> go.Figure:
    """RMS distance between the trained and the closed-form denoiser against the noise level, one curve per N.

    ``res``: :class:`memprior.experiments.fwi.DenoiserGap`.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("inputs: noised training models",
                                                        "inputs: noised fresh models"), horizontal_spacing=0.1)
    for k, N in enumerate(res.sizes):
        for c, a in ((1, res.rmse_train), (2, res.rmse_fresh)):
            fig.add_trace(go.Scatter(x=res.sigma.astype(np.float32), y=a[k].astype(np.float32), mode="lines+markers",
                                     name=f"N = {int(N)}", legendgroup=str(N), showlegend=c == 1,
                                     line=dict(color=PALETTE[k % len(PALETTE)])),
                          row=1, col=c)
    fig.update_xaxes(type="log", title_text="noise level σ_t = sqrt((1 - ᾱ_t)/ᾱ_t)")
    fig.update_yaxes(type="log", title_text="RMS |trained - closed form| (z-scored units)", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=420, template=template(), legend=dict(orientation="h", y=-0.28, x=0))
    return fig


def fig_phase(res) -> go.Figure:
    """The phase diagram: memorized fraction (d1/d2 < 1/3) over training-set size and network width.

    ``res``: :class:`memprior.experiments.fwi.MemorizationPhase`.
    """
    lab = [str(int(N)) for N in res.sizes]
    fig = figure(xlabel="training-set size N", ylabel="network width (3 hidden layers, 10 000 steps)", height=360)
    fig.add_trace(go.Heatmap(x=lab, y=[str(int(w)) for w in res.widths], z=res.frac_q.astype(np.float32),
                             zmin=0, zmax=1, colorscale=SEQUENTIAL, text=np.round(res.frac_q, 2).astype(str),
                             texttemplate="%{text}", colorbar=dict(title="fraction d1/d2 < 1/3"),
                             hovertemplate="N %{x}<br>width %{y}<br>fraction %{z:.2f}<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def fig_trained_pairs(res, k: int = 2) -> go.Figure:
    """Trained-prior DPS samples beside their nearest training models, one row per N (km/s).

    ``res``: :class:`memprior.experiments.fwi.TrainedDPS`.
    """
    k = max(1, min(int(k), res.v.shape[1]))
    panels = []
    for i, N in enumerate(res.sizes):
        for j in range(k):
            panels += [(f"N={int(N)}: sample {j}", res.v[i, j]),
                       (f"nearest (rank {int(res.rank[i, j])}, q {res.q[i, j]:.2f})", res.nearest_v[i, j])]
    return fig_models(panels, res.dx, cols=2 * k)


def fig_tweedie(res) -> go.Figure:
    """Tweedie estimates x̂0 of one trained-prior DPS sample along its path, one row per N (km/s).

    ``res``: :class:`memprior.experiments.fwi.TrainedDPS`.
    """
    panels = [(f"N={int(N)}, t={int(t)}", res.snapshots[i, s]) for i, N in enumerate(res.sizes)
              for s, t in enumerate(res.snap_levels)]
    return fig_models(panels, res.dx, cols=len(res.snap_levels))


def fig_kl_scatter(res) -> go.Figure:
    """Two KL coefficients of the trained-prior DPS samples over those of the training set, one panel per N.

    ``res``: :class:`memprior.experiments.fwi.TrainedDPS`.
    """
    fig = make_subplots(rows=1, cols=len(res.sizes), subplot_titles=[f"N = {int(N)}" for N in res.sizes],
                        horizontal_spacing=0.06)
    for i in range(len(res.sizes)):
        for who, a, mk in (("training models", res.coef_train[i], dict(color=PALETTE[7], size=4, opacity=0.5)),
                           ("DPS samples (trained prior)", res.coef_samples[i],
                            dict(color=style("MLP")["color"], size=7, symbol="x"))):
            fig.add_trace(go.Scatter(x=a[:, 0].astype(np.float32), y=a[:, 1].astype(np.float32), mode="markers",
                                     name=who, legendgroup=who, showlegend=i == 0, marker=mk), row=1, col=i + 1)
    fig.update_xaxes(title_text=f"z[{int(res.coef[0])}]")
    fig.update_yaxes(title_text=f"z[{int(res.coef[1])}]", row=1, col=1)
    fig.update_layout(height=380, template=template(), legend=dict(orientation="h", y=-0.3, x=0))
    return fig

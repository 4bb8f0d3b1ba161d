"""Figures for chapters 1 ("Maximum likelihood memorizes") and 2 ("The lookup posterior").

The numbers come from :mod:`memprior.mle`, :mod:`memprior.mixture` and
:mod:`memprior.posterior`; this module arranges them.  The ``*_panel``
functions gather what one view shows, as numpy arrays; the live apps in
:mod:`memprior.widgets.memorize` call the same functions on every slider move,
so the kernel-free twins (``twin_*``) and the live apps show the same thing.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .. import mle
from .. import posterior as P
from .._checks import as_tensor, check_int, check_positive
from ..mixture import GaussianMixturePrior, gaussian_logits
from . import PALETTE, figure, slider_figure, template, to_numpy

__all__ = [
    "CURVES",
    "bandwidth_title",
    "lookup_title",
    "adaptive_grid",
    "bandwidth_panel",
    "bandwidth_base",
    "bandwidth_traces",
    "fig_likelihood_curves",
    "twin_bandwidth",
    "twin_sample_size",
    "fig_optimum_vs_n",
    "flexible_frames",
    "twin_flexible",
    "fig_flexible_history",
    "lookup_panel",
    "lookup_base",
    "lookup_traces",
    "weight_marker_size",
    "twin_lookup",
    "fig_lookup_limit",
    "fig_effective_components",
    "fig_misfit_only",
]

#: Legend name, colour and dash of each curve of chapters 1 and 2 (log-likelihoods, bounds, densities),
#: shared by the figures, the twins and the live apps.  These are curves of one chapter pair, not methods:
#: the methods' registry is :data:`memprior.plots.STYLE`.
CURVES = {
    "train": dict(color=PALETTE[0], dash="solid", name="training log-likelihood"),
    "heldout": dict(color=PALETTE[1], dash="solid", name="held-out log-likelihood"),
    "loo": dict(color=PALETTE[2], dash="dashdot", name="leave-one-out log-likelihood"),
    "lower": dict(color="#888888", dash="dash", name="bound −log N − ½log(2πσ²)"),
    "upper": dict(color="#888888", dash="dot", name="bound −½log(2πσ²)"),
    "truth": dict(color=PALETTE[7], dash="dash", name="true density"),
    "model": dict(color=PALETTE[0], dash="solid", name="fitted density"),
    "points": dict(color=PALETTE[2], name="training examples"),
    "ref": dict(color=PALETTE[7], dash="dot", name="true density's own score"),
}
_XLAB = "x (dimensionless)"
_SLAB = "bandwidth σ (units of x)"
_LLAB = "mean log-likelihood (nats per example)"
_LL_RANGE = (-6.0, 6.0)
# Legends sit above the plot area, clear of the axis titles and of the slider below.
_TOP_LEGEND = dict(orientation="h", y=1.02, yanchor="bottom", x=0.5, xanchor="center")
# Frame titles sit top left, in the body font size, clear of the mode bar on the right.
_TITLE = dict(y=0.98, yanchor="top", x=0.0, xanchor="left", xref="paper", font=dict(size=13))
_BOTTOM_LEGEND = dict(orientation="h", y=-0.3, yanchor="top", x=0.5, xanchor="center")


def _slider_below_axis_titles(fig: go.Figure, pad_t: int = 75) -> go.Figure:
    """Move a slider figure's slider down so that its label clears the x-axis titles."""
    if fig.layout.sliders:
        fig.layout.sliders[0].pad = dict(t=pad_t, b=10)
        fig.update_layout(margin=dict(b=max(40, (fig.layout.margin.b or 0))))
    return fig


# ============================================================================ chapter 1

def adaptive_grid(lo: float, hi: float, centres, sigma: float, n_uniform: int = 300, n_local: int = 15) -> np.ndarray:
    """A sorted 1-D grid that resolves narrow bumps: uniform nodes plus nodes near each centre.

    Parameters
    ----------
    lo, hi : float
        Grid ends, ``lo < hi``.
    centres : array-like ``[N]``
        Bump centres (for example training examples or component means).
    sigma : float
        Bump width, > 0; local nodes span ``centre ± 4 sigma``.
    n_uniform : int
        Uniform nodes on ``[lo, hi]``, >= 2.
    n_local : int
        Nodes per centre, >= 3.

    Returns
    -------
    numpy.ndarray ``[G]``, sorted, inside ``[lo, hi]``.  Only the uniform nodes when ``sigma`` is
    at least three uniform spacings.
    """
    lo, hi = float(lo), float(hi)
    if not np.isfinite(lo) or not np.isfinite(hi) or not lo < hi:
        raise ValueError(f"lo, hi: need finite lo < hi, got ({lo}, {hi})")
    sigma = check_positive("sigma", sigma, square=True)
    n_uniform = check_int("n_uniform", n_uniform, low=2)
    n_local = check_int("n_local", n_local, low=3)
    c = to_numpy(centres).reshape(-1)
    uniform = np.linspace(lo, hi, n_uniform)
    if sigma > 3.0 * (hi - lo) / (n_uniform - 1):  # the uniform nodes already resolve the bumps
        return uniform
    local = (c[:, None] + sigma * np.linspace(-4.0, 4.0, n_local)[None, :]).ravel()
    g = np.concatenate([uniform, c, local])
    g = np.unique(g[(g >= lo) & (g <= hi)])
    return g


def bandwidth_panel(x_train, sigma: float, curve: mle.BandwidthCurve, lo: float = -3.5, hi: float = 4.0,
                    grid=None) -> dict:
    """What the bandwidth view shows at one ``sigma`` (1-D data).

    Parameters
    ----------
    x_train : ``[N, 1]``
        Training examples.
    sigma : float
        Bandwidth, > 0.
    curve : memprior.mle.BandwidthCurve
        Training and held-out curves (computed once per training set).
    lo, hi : float
        Plotting range of x.
    grid : array-like ``[G]``, optional
        Plotting grid; default :func:`adaptive_grid` around the examples at this ``sigma``.
        A slider twin passes one grid for all its frames.

    Returns
    -------
    dict
        ``x`` [G] grid, ``kde`` [G] and ``truth`` [G] densities, ``x_train`` [N], the curve arrays
        ``sigmas``, ``train``, ``heldout``, and the values ``train_at``, ``heldout_at`` at ``sigma``.
    """
    xt = as_tensor("x_train", x_train)
    if xt.dim() != 2 or xt.shape[1] != 1:
        raise ValueError(f"x_train: expected shape [N, 1] (1-D data), got {list(xt.shape)}")
    sigma = check_positive("sigma", sigma, square=True)
    if not isinstance(curve, mle.BandwidthCurve) or curve.heldout is None:
        raise TypeError("curve: expected a memprior.mle.BandwidthCurve with held-out values")
    g = (adaptive_grid(lo, hi, to_numpy(xt[:, 0]), sigma, n_local=9) if grid is None
         else to_numpy(as_tensor("grid", grid)).reshape(-1))
    gt = torch.as_tensor(g, dtype=xt.dtype)[:, None]
    kde = GaussianMixturePrior(xt, sigma)
    ref = mle.reference_density(xt.dtype)
    return dict(
        x=g, kde=to_numpy(kde.log_prob(gt).exp()), truth=to_numpy(ref.log_prob(gt).exp()), x_train=to_numpy(xt[:, 0]),
        sigmas=curve.sigmas, train=curve.train, heldout=curve.heldout, sigma=sigma,
        train_at=float(kde.log_prob(xt).mean()),
        heldout_at=float(np.interp(np.log(sigma), np.log(curve.sigmas), curve.heldout)),
    )


def bandwidth_base(title: str | None = None, dens_max: float = 1.2) -> go.Figure:
    """Two-panel layout of the bandwidth view: density (left), log-likelihood against sigma (right)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.16)
    fig.update_xaxes(title_text=_XLAB, row=1, col=1)
    fig.update_yaxes(title_text="density (per unit x)", range=[0, dens_max], row=1, col=1)
    fig.update_xaxes(title_text=_SLAB, type="log", row=1, col=2)
    fig.update_yaxes(title_text="ℓ (nats per example)", range=list(_LL_RANGE), row=1, col=2)
    fig.update_layout(template=template(), height=470, title=_TITLE | dict(text=title),
                      legend=_TOP_LEGEND, margin=dict(l=60, r=20, t=105, b=40))
    return fig


def bandwidth_traces(pan: dict, legend: bool = True) -> list:
    """The seven traces of the bandwidth view, in a fixed order (for twins and the live app)."""
    st = CURVES
    return [
        go.Scatter(x=pan["x"], y=pan["kde"], mode="lines", name=f"p<sub>σ</sub>, N = {len(pan['x_train'])}",
                   line=dict(color=st["model"]["color"], width=2, simplify=False), xaxis="x", yaxis="y",
                   showlegend=legend,
                   hovertemplate="x = %{x:.3f}<br>p = %{y:.3f}<extra></extra>"),
        go.Scatter(x=pan["x"], y=pan["truth"], mode="lines", name=st["truth"]["name"],
                   line=dict(color=st["truth"]["color"], dash=st["truth"]["dash"], width=1.5), xaxis="x", yaxis="y",
                   showlegend=legend, hoverinfo="skip"),
        go.Scatter(x=pan["x_train"], y=np.zeros_like(pan["x_train"]), mode="markers", name=st["points"]["name"],
                   marker=dict(color=st["points"]["color"], symbol="triangle-up", size=8,
                               line=dict(color="white", width=0.5)),
                   xaxis="x", yaxis="y", showlegend=legend, hovertemplate="x<sub>n</sub> = %{x:.3f}<extra></extra>"),
        go.Scatter(x=pan["sigmas"], y=pan["train"], mode="lines", name=st["train"]["name"],
                   line=dict(color=st["train"]["color"], width=2), xaxis="x2", yaxis="y2", showlegend=legend,
                   hovertemplate="σ = %{x:.3g}<br>ℓ = %{y:.3f}<extra>train</extra>"),
        go.Scatter(x=pan["sigmas"], y=pan["heldout"], mode="lines", name=st["heldout"]["name"],
                   line=dict(color=st["heldout"]["color"], width=2), xaxis="x2", yaxis="y2", showlegend=legend,
                   hovertemplate="σ = %{x:.3g}<br>ℓ = %{y:.3f}<extra>held-out</extra>"),
        go.Scatter(x=[pan["sigma"]], y=[pan["train_at"]], mode="markers", showlegend=False,
                   marker=dict(color=st["train"]["color"], size=11, line=dict(color="white", width=1)),
                   xaxis="x2", yaxis="y2", hovertemplate="σ = %{x:.3g}<br>train ℓ = %{y:.3f}<extra></extra>"),
        go.Scatter(x=[pan["sigma"]], y=[pan["heldout_at"]], mode="markers", showlegend=False,
                   marker=dict(color=st["heldout"]["color"], size=11, symbol="diamond",
                               line=dict(color="white", width=1)),
                   xaxis="x2", yaxis="y2", hovertemplate="σ = %{x:.3g}<br>held-out ℓ = %{y:.3f}<extra></extra>"),
    ]


def bandwidth_title(pan: dict) -> str:
    """The title of one bandwidth panel: N, σ and the train and held-out log-likelihoods."""
    return (f"N = {len(pan['x_train'])}, σ = {pan['sigma']:.3g}: train ℓ = {pan['train_at']:.2f}, "
            f"held-out ℓ = {pan['heldout_at']:.2f}")


def fig_likelihood_curves(curve: mle.BandwidthCurve, n: int, d: int = 1, reference: float | None = None,
                          sigma_star: float | None = None, title: str | None = None) -> go.Figure:
    """Training, held-out and leave-one-out log-likelihood against sigma, with the two bounds.

    Parameters
    ----------
    curve : memprior.mle.BandwidthCurve
    n, d : int
        Number of training examples and dimension (for the bounds).
    reference : float, optional
        Held-out score of the true density (the best a model can do on average).
    sigma_star : float, optional
        Held-out optimum, marked with a vertical line.
    """
    if not isinstance(curve, mle.BandwidthCurve):
        raise TypeError("curve: expected a memprior.mle.BandwidthCurve")
    n = check_int("n", n, low=1)
    d = check_int("d", d, low=1)
    s = curve.sigmas
    fig = figure(title=title, xlabel=_SLAB, ylabel=_LLAB, height=440)
    fig.update_xaxes(type="log")
    lower = np.array([mle.self_term_bound(n, d, v) for v in s])
    upper = np.array([mle.width_upper_bound(d, v) for v in s])
    for key, vals in (("upper", upper), ("lower", lower)):
        fig.add_trace(go.Scatter(x=s, y=vals, mode="lines", name=CURVES[key]["name"],
                                 line=dict(color=CURVES[key]["color"], dash=CURVES[key]["dash"], width=1.3)))
    for key in ("train", "loo", "heldout"):
        vals = getattr(curve, key)
        if vals is None:
            continue
        fig.add_trace(go.Scatter(x=s, y=vals, mode="lines", name=CURVES[key]["name"],
                                 line=dict(color=CURVES[key]["color"], dash=CURVES[key]["dash"], width=2.2),
                                 hovertemplate="σ = %{x:.3g}<br>ℓ = %{y:.3f}<extra></extra>"))
    if reference is not None:
        fig.add_trace(go.Scatter(x=[s[0], s[-1]], y=[reference, reference], mode="lines", name=CURVES["ref"]["name"],
                                 line=dict(color=CURVES["ref"]["color"], dash=CURVES["ref"]["dash"], width=1.3)))
    if sigma_star is not None:
        fig.add_vline(x=float(sigma_star), line=dict(color=CURVES["heldout"]["color"], dash="dot", width=1),
                      annotation_text=f"held-out optimum σ* = {float(sigma_star):.3f}", annotation_position="top")
    fig.update_yaxes(range=list(_LL_RANGE))
    fig.update_layout(legend=_BOTTOM_LEGEND, margin=dict(b=130), height=480)
    return fig


def twin_bandwidth(x_train, curve: mle.BandwidthCurve, sigmas: Sequence[float], active: int | None = None,
                   lo: float = -3.5, hi: float = 4.0, dens_max: float = 1.2) -> go.Figure:
    """Kernel-free twin of the bandwidth app: a slider over sigma at fixed training set."""
    if len(sigmas) == 0:
        raise ValueError("sigmas: need at least one bandwidth")
    xt = as_tensor("x_train", x_train)
    grid = adaptive_grid(lo, hi, to_numpy(xt).reshape(-1), min(float(s) for s in sigmas), n_uniform=300, n_local=11)
    pans = [bandwidth_panel(xt, float(s), curve, lo, hi, grid=grid) for s in sigmas]
    active = len(pans) // 2 if active is None else active
    frames = [bandwidth_traces(p) for p in pans]
    fig = slider_figure(frames, [f"{p['sigma']:.3g}" for p in pans], slider_prefix="σ = ",
                        base=bandwidth_base(dens_max=dens_max), active=active,
                        frame_titles=[bandwidth_title(p) for p in pans])
    return _slider_below_axis_titles(fig)


def _curves_traces(curve: mle.BandwidthCurve, n: int, sigma_star: float, reference: float | None) -> list:
    s = curve.sigmas
    star_ll = float(np.interp(np.log(sigma_star), np.log(s), curve.heldout))
    ref = reference if reference is not None else float(np.max(curve.heldout))
    return [
        go.Scatter(x=s, y=np.array([mle.self_term_bound(n, 1, v) for v in s]), mode="lines",
                   name=CURVES["lower"]["name"], line=dict(color=CURVES["lower"]["color"], dash="dash", width=1.3)),
        go.Scatter(x=s, y=curve.train, mode="lines", name=CURVES["train"]["name"],
                   line=dict(color=CURVES["train"]["color"], width=2.2)),
        go.Scatter(x=s, y=curve.heldout, mode="lines", name=CURVES["heldout"]["name"],
                   line=dict(color=CURVES["heldout"]["color"], width=2.2)),
        go.Scatter(x=[sigma_star], y=[star_ll], mode="markers", name="held-out optimum σ*",
                   marker=dict(color=CURVES["heldout"]["color"], size=12, symbol="star"),
                   hovertemplate="σ* = %{x:.3g}<br>ℓ = %{y:.3f}<extra></extra>"),
        go.Scatter(x=[s[0], s[-1]], y=[ref, ref], mode="lines", name=CURVES["ref"]["name"],
                   line=dict(color=CURVES["ref"]["color"], dash="dot", width=1.3)),
    ]


def twin_sample_size(curves: Mapping[int, mle.BandwidthCurve], optima: Mapping[int, float],
                     reference: float | None = None, active: int | None = None) -> go.Figure:
    """Kernel-free twin: a slider over N showing the training and held-out curves and the optimum.

    Parameters
    ----------
    curves : mapping N -> BandwidthCurve (with held-out values)
    optima : mapping N -> held-out optimal sigma
    reference : float, optional
        Held-out score of the true density.
    """
    ns = sorted(curves)
    if not ns:
        raise ValueError("curves: need at least one training-set size")
    missing = [n for n in ns if n not in optima]
    if missing:
        raise ValueError(f"optima: missing the optimum for N = {missing}")
    frames = [_curves_traces(curves[n], n, float(optima[n]), reference) for n in ns]
    base = figure(xlabel=_SLAB, ylabel=_LLAB, height=440)
    base.update_xaxes(type="log")
    base.update_yaxes(range=list(_LL_RANGE))
    base.update_layout(legend=_TOP_LEGEND, margin=dict(b=40, t=105), height=480,
                       title=_TITLE)
    titles = []
    for n in ns:
        c = curves[n]
        star = float(optima[n])
        gap = float(np.interp(np.log(star), np.log(c.sigmas), c.train)
                    - np.interp(np.log(star), np.log(c.sigmas), c.heldout))
        titles.append(f"N = {n}: σ* = {star:.3f}, train − held-out at σ* = {gap:.2f} nats")
    fig = slider_figure(frames, [str(n) for n in ns], slider_prefix="N = ", base=base,
                        active=len(ns) // 2 if active is None else active, frame_titles=titles)
    return _slider_below_axis_titles(fig)


def fig_optimum_vs_n(ns: Sequence[int], sigma_star: Sequence[float], excess: Sequence[float] | None = None,
                     slope: float = -0.2) -> go.Figure:
    """Held-out optimal bandwidth against N (log-log) with a reference power law ``N^slope``.

    Parameters
    ----------
    ns : sequence of int
    sigma_star : sequence of float
        Held-out optimum for each N.
    excess : sequence of float, optional
        Held-out score of the true density minus that of the fitted density at the optimum
        (an estimate of the Kullback–Leibler divergence), drawn on a right-hand axis.
    slope : float
        Exponent of the dotted reference line, anchored at the first point.
    """
    ns_a = np.asarray(ns, dtype=float)
    ss = np.asarray(sigma_star, dtype=float)
    if ns_a.size == 0 or ns_a.shape != ss.shape:
        raise ValueError("ns, sigma_star: need equal, non-zero lengths")
    fig = figure(xlabel="training-set size N", ylabel="held-out optimum σ* (units of x)", height=440)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    fig.add_trace(go.Scatter(x=ns_a, y=ss, mode="lines+markers", name="σ*(N)",
                             line=dict(color=CURVES["heldout"]["color"], width=2.2)))
    fig.add_trace(go.Scatter(x=ns_a, y=ss[0] * (ns_a / ns_a[0]) ** slope, mode="lines",
                             name=f"reference ∝ N<sup>{slope:g}</sup>", line=dict(color="#888888", dash="dot")))
    if excess is not None:
        ex = np.asarray(excess, dtype=float)
        if ex.shape != ns_a.shape:
            raise ValueError("excess: need one value per N")
        fig.add_trace(go.Scatter(x=ns_a, y=ex, mode="lines+markers", yaxis="y2",
                                 name="excess held-out loss at σ* (nats, right axis)",
                                 line=dict(color=CURVES["train"]["color"], dash="dash")))
        fig.update_layout(yaxis2=dict(title="excess loss (nats per example)", overlaying="y", side="right",
                                      showgrid=False, rangemode="tozero"))
    fig.update_layout(legend=_BOTTOM_LEGEND, margin=dict(b=110, r=70))
    return fig


def flexible_frames(fit: mle.FlexibleFit, lo: float = -3.5, hi: float = 4.0, floor: float = 1e-4) -> list[dict]:
    """One dict per recorded step of a flexible fit: learned density on a resolving grid, means, weights.

    Returns
    -------
    list of dict with ``step``, ``sigma``, ``x`` [G], ``density`` [G] (floored at ``floor``),
    ``means`` [K], ``weights`` [K], ``train_ll``, ``max_gap`` and ``x_train`` [N].
    """
    if not isinstance(fit, mle.FlexibleFit):
        raise TypeError("fit: expected a memprior.mle.FlexibleFit")
    if fit.means.shape[1] != 1:
        raise ValueError(f"fit: flexible_frames draws 1-D fits (d = 1), got d = {fit.means.shape[1]}")
    floor = check_positive("floor", floor)
    h = fit.history
    out = []
    for r in range(len(h["step"])):
        mu = torch.as_tensor(h["means"][r], dtype=torch.float64)
        w = torch.as_tensor(h["weights"][r], dtype=torch.float64)
        s = float(h["sigma"][r])
        g = adaptive_grid(lo, hi, np.concatenate([to_numpy(fit.x_train[:, 0]), h["means"][r][:, 0]]), s, n_uniform=300,
                          n_local=11)
        dens = mle.mixture_log_prob(torch.as_tensor(g)[:, None], mu, torch.log(w), s).exp()
        out.append(dict(step=int(h["step"][r]), sigma=s, x=g, density=np.maximum(to_numpy(dens), floor),
                        means=h["means"][r][:, 0], weights=h["weights"][r], train_ll=float(h["train_ll"][r]),
                        max_gap=float(h["max_gap"][r]), x_train=to_numpy(fit.x_train[:, 0])))
    return out


def twin_flexible(fit: mle.FlexibleFit, lo: float = -3.5, hi: float = 4.0, every: int = 1,
                  dens_range: tuple[float, float] = (1e-3, 1e3)) -> go.Figure:
    """Kernel-free animation of a flexible ML fit: density (log scale, top) and means with weights (bottom).

    Parameters
    ----------
    fit : memprior.mle.FlexibleFit
        A 1-D fit.
    every : int
        Use every ``every``-th recorded step (the last one always).
    dens_range : (float, float)
        Density axis range (log scale).
    """
    every = check_int("every", every, low=1)
    frs = flexible_frames(fit, lo, hi, floor=dens_range[0] / 10)
    idx = sorted(set(range(0, len(frs), every)) | {len(frs) - 1})
    frs = [frs[i] for i in idx]
    n = len(frs[0]["x_train"])
    w_max = 1.15 * max(float(f["weights"].max()) for f in frs)
    base = make_subplots(rows=2, cols=1, row_heights=[0.65, 0.35], vertical_spacing=0.1, shared_xaxes=True)
    base.update_yaxes(title_text="learned density q(x)", type="log",
                      range=[np.log10(dens_range[0]), np.log10(dens_range[1])], row=1, col=1)
    base.update_yaxes(title_text="weight π<sub>k</sub>", range=[0, max(w_max, 1.3 / n)], row=2, col=1)
    base.update_xaxes(title_text=_XLAB, range=[lo, hi], row=2, col=1)
    base.update_layout(template=template(), height=580, margin=dict(l=70, r=20, t=100, b=40),
                       legend=_TOP_LEGEND, title=_TITLE)
    frames = []
    for f in frs:
        frames.append([
            go.Scatter(x=f["x"], y=f["density"], mode="lines", name="learned density q",
                       line=dict(color=CURVES["model"]["color"], width=1.8, simplify=False), xaxis="x", yaxis="y"),
            go.Scatter(x=f["means"], y=f["weights"], mode="markers", name="component means μ<sub>k</sub>",
                       marker=dict(color=PALETTE[1], size=8, opacity=0.8), xaxis="x2", yaxis="y2",
                       hovertemplate="μ = %{x:.4f}<br>π = %{y:.4f}<extra></extra>"),
            go.Scatter(x=f["x_train"], y=np.zeros(n), mode="markers", name=CURVES["points"]["name"],
                       marker=dict(color=CURVES["points"]["color"], symbol="triangle-up", size=10),
                       xaxis="x2", yaxis="y2", hovertemplate="x<sub>n</sub> = %{x:.4f}<extra></extra>"),
            go.Scatter(x=[lo, hi], y=[1.0 / n, 1.0 / n], mode="lines", name="1/N",
                       line=dict(color="#888888", dash="dot", width=1), xaxis="x2", yaxis="y2"),
        ])
    titles = [f"step {f['step']}: s = {f['sigma']:.1e}, train ℓ = {f['train_ll']:.2f}, "
              f"max gap = {f['max_gap']:.0e}" for f in frs]
    fig = slider_figure(frames, [str(f["step"]) for f in frs], slider_prefix="Adam step ", base=base,
                        active=len(frs) - 1, frame_titles=titles)
    return _slider_below_axis_titles(fig)


def fig_flexible_history(fit: mle.FlexibleFit) -> go.Figure:
    """Training and held-out log-likelihood (left) and width / coverage gap (right) along the fit."""
    if not isinstance(fit, mle.FlexibleFit):
        raise TypeError("fit: expected a memprior.mle.FlexibleFit")
    h = fit.history
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("log-likelihood during training", "width and coverage"))
    fig.add_trace(go.Scatter(x=h["step"], y=h["train_ll"], mode="lines", name=CURVES["train"]["name"],
                             line=dict(color=CURVES["train"]["color"], width=2.2)), row=1, col=1)
    if "test_ll" in h:
        fig.add_trace(go.Scatter(x=h["step"], y=h["test_ll"], mode="lines", name=CURVES["heldout"]["name"],
                                 line=dict(color=CURVES["heldout"]["color"], width=2.2)), row=1, col=1)
    fig.add_trace(go.Scatter(x=h["step"], y=h["sigma"], mode="lines", name="width s",
                             line=dict(color=PALETTE[3], width=2.2)), row=1, col=2)
    fig.add_trace(go.Scatter(x=h["step"], y=np.maximum(h["max_gap"], 1e-16), mode="lines",
                             name="largest example-to-nearest-mean distance",
                             line=dict(color=PALETTE[4], dash="dash", width=2.2)), row=1, col=2)
    fig.update_xaxes(title_text="Adam step", row=1, col=1)
    fig.update_xaxes(title_text="Adam step", row=1, col=2)
    fig.update_yaxes(title_text=_LLAB, range=[-8, max(6.0, float(np.max(h["train_ll"])) + 0.5)], row=1, col=1)
    fig.update_yaxes(title_text="distance (units of x)", type="log", exponentformat="power", row=1, col=2)
    fig.update_layout(template=template(), height=460, legend=_BOTTOM_LEGEND,
                      margin=dict(l=60, r=20, t=50, b=110))
    return fig


# ============================================================================ chapter 2

def lookup_panel(forward: Callable, x_train, y: float, gamma: float, x_grid) -> dict:
    """What the lookup view shows (1-D model, 1-D datum).

    Parameters
    ----------
    forward : callable ``[B, 1] -> [B, 1]``
    x_train : ``[N, 1]``
    y : float
        The datum.
    gamma : float
        Noise standard deviation, > 0.
    x_grid : array-like ``[G]``
        Where to draw the forward curve.

    Returns
    -------
    dict
        ``x`` [G], ``F`` [G], ``x_train`` [N], ``F_train`` [N], ``misfit`` [N] (``(y - F(x_n))^2 / (2 gamma^2)``),
        ``weights`` [N], ``exp_h``, ``y``, ``gamma``.
    """
    xt = as_tensor("x_train", x_train)
    if xt.dim() != 2 or xt.shape[1] != 1:
        raise ValueError(f"x_train: expected shape [N, 1] (1-D model), got {list(xt.shape)}")
    gamma = check_positive("gamma", gamma, square=True)
    yv = float(as_tensor("y", y).reshape(-1)[0])
    g = as_tensor("x_grid", x_grid).to(xt.dtype).reshape(-1, 1)
    w = P.lookup_weights(forward, xt, torch.tensor([yv], dtype=xt.dtype), gamma)
    ft = forward(xt)[:, 0]
    misfit = -gaussian_logits(torch.tensor([[yv]], dtype=ft.dtype), ft[:, None], gamma ** 2)[0]  # -log N + const
    return dict(x=to_numpy(g[:, 0]), F=to_numpy(forward(g)[:, 0]), x_train=to_numpy(xt[:, 0]), F_train=to_numpy(ft),
                misfit=to_numpy(misfit), weights=to_numpy(w), exp_h=P.effective_components(w),
                y=yv, gamma=gamma)


def lookup_base(f_range: tuple[float, float] = (-6.0, 8.0), title: str | None = None) -> go.Figure:
    """Two-panel layout of the lookup view: forward map and data (left), lookup weights (right)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.14)
    fig.update_xaxes(title_text="model x (dimensionless)", row=1, col=1)
    fig.update_yaxes(title_text="data F(x) (dimensionless)", range=list(f_range), row=1, col=1)
    fig.update_xaxes(title_text="training model x<sub>n</sub>", row=1, col=2)
    fig.update_yaxes(title_text="weight w<sub>n</sub>", range=[0, 1.05], row=1, col=2)
    fig.update_layout(template=template(), height=470, title=_TITLE | dict(text=title), bargap=0.3,
                      legend=_TOP_LEGEND, margin=dict(l=60, r=20, t=105, b=40))
    return fig


def weight_marker_size(weights) -> np.ndarray:
    """Marker size (px) that grows with a weight in [0, 1]: 7 px at 0, 25 px at 1."""
    return 7 + 18 * np.sqrt(np.clip(np.asarray(weights, dtype=float), 0.0, 1.0))


def lookup_traces(pan: dict, legend: bool = True) -> list:
    """The five traces of the lookup view, in a fixed order (for twins and the live app)."""
    x0, x1 = float(pan["x"][0]), float(pan["x"][-1])
    y, gm = pan["y"], pan["gamma"]
    labels = [f"{v:.2f}" for v in pan["x_train"]]
    size = weight_marker_size(pan["weights"])
    return [
        go.Scatter(x=[x0, x1, x1, x0, x0], y=[y - gm, y - gm, y + gm, y + gm, y - gm], mode="lines", fill="toself",
                   fillcolor="rgba(230,159,0,0.25)", line=dict(width=0), name="y ± γ", xaxis="x", yaxis="y",
                   showlegend=legend, hoverinfo="skip"),
        go.Scatter(x=[x0, x1], y=[y, y], mode="lines", name="observed datum y",
                   line=dict(color=PALETTE[4], width=2), xaxis="x", yaxis="y", showlegend=legend,
                   hovertemplate="y = %{y:.3f}<extra></extra>"),
        go.Scatter(x=pan["x"], y=pan["F"], mode="lines", name="forward map F(x)",
                   line=dict(color=PALETTE[7], width=1.8), xaxis="x", yaxis="y", showlegend=legend,
                   hoverinfo="skip"),
        go.Scatter(x=pan["x_train"], y=pan["F_train"], mode="markers",
                   name="stored models (x<sub>n</sub>, F(x<sub>n</sub>))",
                   marker=dict(color=PALETTE[0], size=size, line=dict(color="white", width=1)),
                   customdata=np.stack([pan["misfit"], pan["weights"]], axis=1), xaxis="x", yaxis="y",
                   showlegend=legend,
                   hovertemplate="x<sub>n</sub> = %{x:.2f}<br>F = %{y:.3f}<br>misfit = %{customdata[0]:.3g}"
                                 "<br>w = %{customdata[1]:.4f}<extra></extra>"),
        go.Bar(x=labels, y=pan["weights"], name="w<sub>n</sub>", marker_color=PALETTE[0], xaxis="x2", yaxis="y2",
               showlegend=False, hovertemplate="x<sub>n</sub> = %{x}<br>w = %{y:.4f}<extra></extra>"),
    ]


def lookup_title(pan: dict) -> str:
    """The title of one lookup panel."""
    return (f"y = {pan['y']:.2f}, γ = {pan['gamma']:.3g}: exp(H) = {pan['exp_h']:.2f} of N = "
            f"{len(pan['weights'])}, max w = {pan['weights'].max():.3f}")


def twin_lookup(forward: Callable, x_train, x_grid, settings: Sequence[tuple[float, float]],
                labels: Sequence[str], slider_prefix: str = "", active: int | None = None,
                f_range: tuple[float, float] = (-6.0, 8.0)) -> go.Figure:
    """Kernel-free twin of the lookup app: a slider over ``(y, gamma)`` settings.

    Parameters
    ----------
    settings : sequence of (y, gamma)
    labels : sequence of str
        One slider label per setting.
    """
    if len(settings) == 0:
        raise ValueError("settings: need at least one (y, gamma) pair")
    pans = [lookup_panel(forward, x_train, float(yv), float(gv), x_grid) for yv, gv in settings]
    fig = slider_figure([lookup_traces(p) for p in pans], labels, slider_prefix=slider_prefix,
                        base=lookup_base(f_range), active=len(pans) // 2 if active is None else active,
                        frame_titles=[lookup_title(p) for p in pans])
    return _slider_below_axis_titles(fig)


def fig_lookup_limit(sigmas: Sequence[float], weights_by_sigma, lookup, x_train, errors: Sequence[float]) -> go.Figure:
    """Exact mixture-posterior weights converging to the lookup weights as sigma -> 0.

    Parameters
    ----------
    sigmas : sequence [S]
    weights_by_sigma : array ``[S, N]``
        Exact component weights (quadrature) at each sigma.
    lookup : array ``[N]``
        Lookup weights (the sigma = 0 limit).
    x_train : array ``[N]``
    errors : sequence [S]
        ``sum_n |w_n(sigma) - w_n^lookup|``.
    """
    s = np.asarray(sigmas, dtype=float)
    W = np.asarray(weights_by_sigma, dtype=float)
    lk = np.asarray(lookup, dtype=float).reshape(-1)
    xt = np.asarray(x_train, dtype=float).reshape(-1)
    err = np.asarray(errors, dtype=float)
    if W.shape != (s.size, lk.size) or err.shape != s.shape or xt.shape != lk.shape:
        raise ValueError("weights_by_sigma, lookup, x_train, errors: inconsistent shapes")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("exact component weights w<sub>n</sub>(σ)", "distance to the lookup weights"))
    for n in range(lk.size):
        c = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Scatter(x=s, y=W[:, n], mode="lines+markers", name=f"x<sub>n</sub> = {xt[n]:.2f}",
                                 line=dict(color=c, width=2), marker=dict(size=5)), row=1, col=1)
        fig.add_trace(go.Scatter(x=[s.min() / 1.6], y=[lk[n]], mode="markers", showlegend=False,
                                 marker=dict(color=c, symbol="star", size=12),
                                 hovertemplate="lookup w = %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=np.maximum(err, 1e-16), mode="lines+markers", name="Σ|w(σ) − w<sup>lookup</sup>|",
                             line=dict(color=PALETTE[7], width=2.2)), row=1, col=2)
    fig.add_trace(go.Scatter(x=s, y=err[-1] * (s / s[-1]) ** 2 if s[-1] > 0 else err, mode="lines",
                             name="reference ∝ σ²", line=dict(color="#888888", dash="dot")), row=1, col=2)
    fig.update_xaxes(title_text=_SLAB + "; stars: σ = 0", type="log", row=1, col=1)
    fig.update_yaxes(title_text="weight", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text=_SLAB, type="log", row=1, col=2)
    fig.update_yaxes(title_text="L1 distance", type="log", exponentformat="power", row=1, col=2)
    fig.update_layout(template=template(), height=470, legend=_BOTTOM_LEGEND,
                      margin=dict(l=60, r=20, t=50, b=110))
    return fig


def fig_effective_components(gammas: Sequence[float], curves: Mapping[str, Sequence[float]], n: int) -> go.Figure:
    """Effective number of components exp(H) of the lookup weights against gamma.

    Parameters
    ----------
    gammas : sequence [S]
    curves : mapping label -> sequence [S] of exp(H)
    n : int
        Number of training models (upper bound).
    """
    g = np.asarray(gammas, dtype=float)
    n = check_int("n", n, low=1)
    fig = figure(xlabel="noise level γ (units of y)", ylabel="effective components exp(H)", height=400)
    fig.update_xaxes(type="log")
    for i, (lab, vals) in enumerate(curves.items()):
        v = np.asarray(vals, dtype=float)
        if v.shape != g.shape:
            raise ValueError(f"curves[{lab!r}]: expected {g.size} values, got {v.size}")
        fig.add_trace(go.Scatter(x=g, y=v, mode="lines", name=lab, line=dict(color=PALETTE[i % 7], width=2.2)))
    for val, lab in ((1, "1 (one-hot)"), (n, f"N = {n} (uniform)")):
        fig.add_trace(go.Scatter(x=[g[0], g[-1]], y=[val, val], mode="lines", name=lab,
                                 line=dict(color="#888888", dash="dot", width=1)))
    fig.update_yaxes(range=[0, n + 0.5])
    fig.update_layout(legend=_BOTTOM_LEGEND, margin=dict(b=110), height=440)
    return fig


def fig_misfit_only(x, F1, F2, x_train, F_train, post1, post2, w1, w2, sigma: float) -> go.Figure:
    """Two forward maps that agree on the training models: same lookup weights, different mixture posteriors.

    Parameters
    ----------
    x : array ``[G]``; F1, F2 : arrays ``[G]``
        The two forward maps on the grid.
    x_train, F_train : arrays ``[N]``
    post1, post2 : arrays ``[G]``
        Exact posterior densities under the Gaussian-mixture prior of width ``sigma``.
    w1, w2 : arrays ``[N]``
        Lookup weights (equal up to rounding).
    """
    sigma = check_positive("sigma", sigma, square=True)
    labels = [f"{v:.2f}" for v in np.asarray(x_train).ravel()]
    fig = make_subplots(rows=2, cols=2, specs=[[{"colspan": 2}, None], [{}, {}]], vertical_spacing=0.16,
                        horizontal_spacing=0.14, row_heights=[0.5, 0.5],
                        subplot_titles=("two forward maps", f"mixture posterior, σ = {sigma:g}", "lookup weights"))
    c1, c2 = PALETTE[0], PALETTE[1]
    fig.add_trace(go.Scatter(x=x, y=F1, mode="lines", name="F<sub>1</sub>", line=dict(color=c1, width=2)),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=F2, mode="lines", name="F<sub>2</sub>", line=dict(color=c2, width=2, dash="dash")),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x_train, y=F_train, mode="markers", name="stored models",
                             marker=dict(color=PALETTE[2], size=10, symbol="triangle-up")), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=post1, mode="lines", name="posterior with F<sub>1</sub>",
                             line=dict(color=c1, width=2)), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=post2, mode="lines", name="posterior with F<sub>2</sub>",
                             line=dict(color=c2, width=2, dash="dash")), row=2, col=1)
    fig.add_trace(go.Bar(x=labels, y=w1, name="lookup, F<sub>1</sub>", marker_color=c1), row=2, col=2)
    fig.add_trace(go.Bar(x=labels, y=w2, name="lookup, F<sub>2</sub>", marker_color=c2), row=2, col=2)
    fig.update_xaxes(title_text="model x", row=1, col=1)
    fig.update_yaxes(title_text="data F(x)", range=[-6, 8], row=1, col=1)
    fig.update_xaxes(title_text="model x", row=2, col=1)
    fig.update_yaxes(title_text="density (per unit x)", row=2, col=1)
    fig.update_xaxes(title_text="stored model x<sub>n</sub>", row=2, col=2)
    # the weights' axis on the right, clear of the posterior panel (narrow on a phone)
    fig.update_yaxes(title_text="weight", range=[0, 1.05], side="right", row=2, col=2)
    fig.update_layout(template=template(), height=700, barmode="group",
                      legend=dict(_BOTTOM_LEGEND, y=-0.12), margin=dict(l=60, r=20, t=50, b=100))
    return fig

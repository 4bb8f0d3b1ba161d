"""Plotly builders for the wave-solver chapter (chapter 6).

Arrays follow :mod:`memprior.wave`: fields are ``[nx, nz]`` with x horizontal and z depth in
km; heatmaps are drawn with depth increasing downwards.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import DIVERGING, SEQUENTIAL, color, figure, slider_figure, template, to_numpy

__all__ = [
    "field_heatmap", "fig_field", "fig_fields", "fig_greens_line", "fig_dispersion",
    "twin_frequency", "fig_phase_animation", "fig_data", "fig_misfit_history",
]


def _check_field(name: str, a, x, z) -> np.ndarray:
    a = to_numpy(a, dtype=None)
    if a.ndim != 2 or a.shape != (len(x), len(z)):
        raise ValueError(f"{name}: expected shape [nx, nz] = [{len(x)}, {len(z)}], got {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def field_heatmap(a, x, z, *, colorscale=SEQUENTIAL, symmetric: bool = False, zmin=None, zmax=None,
                  colorbar_title: str = "", showscale: bool = True, colorbar_x: float | None = None,
                  name: str = "") -> go.Heatmap:
    """A float32 heatmap of a real field ``a[nx, nz]`` (x across, depth down once the axis is reversed)."""
    x, z = to_numpy(x), to_numpy(z)
    a = _check_field("a", a, x, z)
    if symmetric:
        s = float(np.max(np.abs(a))) or 1.0
        zmin, zmax = -s, s
    cb = dict(title=dict(text=colorbar_title, side="right"), len=0.9)
    if colorbar_x is not None:
        cb["x"] = colorbar_x
    return go.Heatmap(x=x.astype(np.float32), y=z.astype(np.float32), z=a.T.astype(np.float32),
                      colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=showscale, colorbar=cb,
                      name=name, hovertemplate="x %{x:.2f} km<br>z %{y:.2f} km<br>%{z:.3g}<extra></extra>")


def _sym_range(a: np.ndarray, clip: float | None) -> float:
    """Half-width of a symmetric colour range: max |a|, or its ``clip`` quantile (robust to spikes)."""
    if clip is not None and not 0 < clip <= 1:
        raise ValueError(f"clip: must be a quantile in (0, 1], got {clip}")
    s = float(np.max(np.abs(a))) if clip is None else float(np.quantile(np.abs(a), clip))
    return s or 1.0


def fig_field(a, x, z, *, title: str = "", colorbar_title: str = "", symmetric: bool = False,
              colorscale=None, points: Mapping[str, np.ndarray] | None = None, height: int = 420,
              width: int | None = None, clip: float | None = None) -> go.Figure:
    """One field ``[nx, nz]`` as a heatmap, depth downwards, with optional marker sets {label: [n, 2] km}.

    ``clip`` (symmetric fields only) sets the colour range to that quantile of ``|a|``, so that
    point-source singularities do not wash out the rest of the map (values beyond it saturate).
    """
    cs = colorscale or (DIVERGING if symmetric else SEQUENTIAL)
    fig = figure(title=title, xlabel="x (km)", ylabel="depth z (km)", height=height, width=width)
    if symmetric:
        r = _sym_range(_check_field("a", a, to_numpy(x), to_numpy(z)), clip)
        fig.add_trace(field_heatmap(a, x, z, colorscale=cs, zmin=-r, zmax=r, colorbar_title=colorbar_title))
    else:
        fig.add_trace(field_heatmap(a, x, z, colorscale=cs, colorbar_title=colorbar_title))
    _add_points(fig, points)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    if points:
        fig.update_layout(legend=dict(orientation="h", x=0.0, y=-0.22, yanchor="top"),
                          margin=dict(b=90), height=height + 30)
    return fig


def _add_points(fig, points, row=None, col=None):
    if not points:
        return
    symbols = {0: "star", 1: "triangle-down", 2: "circle"}
    for k, (label, pts) in enumerate(points.items()):
        p = to_numpy(pts).reshape(-1, 2)
        tr = go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=label, showlegend=row in (None, 1) and col in (None, 1),
                        marker=dict(symbol=symbols.get(k, "circle"), size=9 if k == 0 else 6,
                                    color=color(4 if k == 0 else 7), line=dict(width=1, color="white")))
        if row is None:
            fig.add_trace(tr)
        else:
            fig.add_trace(tr, row=row, col=col)


def fig_fields(fields: Sequence, x, z, titles: Sequence[str], *, colorbar_title: str = "",
               symmetric: bool = False, shared_scale: bool = True, colorscale=None,
               points: Mapping[str, np.ndarray] | None = None, height: int = 360,
               width: int | None = None, clip: float | None = None) -> go.Figure:
    """Several fields side by side (for example true / initial / inverted models).

    ``clip``: for symmetric fields, the colour range is that quantile of ``|a|`` (see :func:`fig_field`).
    """
    n = len(fields)
    if n == 0 or len(titles) != n:
        raise ValueError(f"titles: need one title per field ({n}), got {len(titles)}")
    arrs = [_check_field(f"fields[{k}]", f, to_numpy(x), to_numpy(z)) for k, f in enumerate(fields)]
    cs = colorscale or (DIVERGING if symmetric else SEQUENTIAL)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=0.06)
    fig.update_layout(template=template(), height=height, width=width,
                      legend=dict(orientation="h", y=-0.18))
    if shared_scale:
        if symmetric:
            s = max(_sym_range(a, clip) for a in arrs)
            lo, hi = -s, s
        else:
            lo, hi = min(float(a.min()) for a in arrs), max(float(a.max()) for a in arrs)
    for k, a in enumerate(arrs):
        if shared_scale:
            kw = dict(zmin=lo, zmax=hi)
        elif symmetric:
            r = _sym_range(a, clip)
            kw = dict(zmin=-r, zmax=r)
        else:
            kw = {}
        fig.add_trace(field_heatmap(a, x, z, colorscale=cs, colorbar_title=colorbar_title,
                                    showscale=(k == n - 1) or not shared_scale, **kw), row=1, col=k + 1)
        _add_points(fig, points, row=1, col=k + 1)
        fig.update_xaxes(title_text="x (km)", row=1, col=k + 1, constrain="domain")
        fig.update_yaxes(autorange="reversed", row=1, col=k + 1, scaleanchor=f"x{'' if k == 0 else k + 1}",
                         constrain="domain", title_text="depth z (km)" if k == 0 else None)
    return fig


def fig_greens_line(r, numeric, analytic, *, title: str = "") -> go.Figure:
    """Real and imaginary parts of a numerical and an analytic Green's function along a line."""
    r, numeric, analytic = to_numpy(r), to_numpy(numeric, dtype=None), to_numpy(analytic, dtype=None)
    if not (r.shape == numeric.shape == analytic.shape) or r.ndim != 1:
        raise ValueError("r, numeric, analytic: expected 1-D arrays of the same length")
    fig = figure(title=title, xlabel="distance from the source (km)", ylabel="wavefield", height=380)
    for part, fn, dash in (("Re", np.real, None), ("Im", np.imag, "dot")):
        fig.add_trace(go.Scatter(x=r, y=fn(analytic), name=f"{part} analytic (i/4)H₀⁽¹⁾", mode="lines",
                                 line=dict(color=color(7), dash=dash, width=1.5)))
        fig.add_trace(go.Scatter(x=r, y=fn(numeric), name=f"{part} finite differences", mode="markers",
                                 marker=dict(color=color(0 if part == "Re" else 1), size=5)))
    return fig


def fig_dispersion(ppw: Mapping[str, np.ndarray], errors: Mapping[str, np.ndarray], *,
                   threshold: float | None = 0.02, title: str = "") -> go.Figure:
    """Relative Green's-function error against points per wavelength, log-log, one curve per stencil."""
    fig = figure(title=title, xlabel="points per wavelength", ylabel="relative L2 error (1–3 wavelengths)",
                 height=400)
    for k, (label, e) in enumerate(errors.items()):
        p = to_numpy(ppw[label])
        fig.add_trace(go.Scatter(x=p, y=to_numpy(e), name=label, mode="lines+markers", line=dict(color=color(k))))
    if threshold is not None:
        fig.add_hline(y=threshold, line=dict(color=color(7), dash="dash", width=1),
                      annotation_text=f"{100 * threshold:.0f} %", annotation_position="bottom right")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def _point_shapes(fig: go.Figure, points: Mapping[str, np.ndarray] | None, radius: float) -> None:
    """Mark points with layout shapes (not traces): in plotly.js, slider frames that mix a heatmap
    with scatter traces leave the heatmap blank, while layout shapes are untouched by frames."""
    if not points:
        return
    for k, (label, pts) in enumerate(points.items()):
        p = to_numpy(pts).reshape(-1, 2)
        col = color(4 if k == 0 else 7)
        r = radius * (1.6 if k == 0 else 1.0)
        for px, pz in p:
            fig.add_shape(type="circle", xref="x", yref="y", x0=px - r, x1=px + r, y0=pz - r, y1=pz + r,
                          fillcolor=col, line=dict(color="white", width=1), layer="above")


def _scale(u: np.ndarray, clip: float | None) -> float:
    return _sym_range(np.abs(u), clip)


def twin_frequency(fields: Sequence, freqs: Sequence[float], x, z, *, title: str = "",
                   points: Mapping[str, np.ndarray] | None = None, width: int | None = None,
                   clip: float | None = 0.99) -> go.Figure:
    """Kernel-free slider over frequency: Re u, each frame divided by the ``clip`` quantile of its
    absolute value (its maximum with ``clip=None``) and clipped to [-1, 1], so that the singular
    values at the source do not wash out the far field."""
    if len(fields) != len(freqs) or len(fields) == 0:
        raise ValueError("fields, freqs: need one field per frequency (at least one)")
    base = figure(title=title, xlabel="x (km)", ylabel="depth z (km)", height=470, width=width)
    base.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    base.update_xaxes(constrain="domain", range=[float(to_numpy(x)[0]), float(to_numpy(x)[-1])])
    _point_shapes(base, points, radius=0.012 * float(to_numpy(x)[-1] - to_numpy(x)[0]))
    frames = []
    for u in fields:
        a = np.real(to_numpy(u, dtype=None))
        a = np.clip(a / _scale(a, clip), -1.0, 1.0)
        frames.append([field_heatmap(a, x, z, colorscale=DIVERGING, zmin=-1, zmax=1, colorbar_title="Re u (scaled)")])
    return slider_figure(frames, [f"{f:.1f} Hz" for f in freqs], slider_prefix="frequency: ", base=base)


def fig_phase_animation(u, x, z, n_phase: int = 16, *, title: str = "",
                        points: Mapping[str, np.ndarray] | None = None, width: int | None = None,
                        clip: float | None = 0.99) -> go.Figure:
    """Kernel-free animation of the time-harmonic field Re(u e^{−iφ}), φ = ωt over one period.

    Frames are divided by the ``clip`` quantile of ``|u|`` (its maximum with ``clip=None``) and clipped
    to [-1, 1]."""
    u = to_numpy(u, dtype=None)
    if n_phase < 2:
        raise ValueError(f"n_phase: must be >= 2, got {n_phase}")
    s = _scale(u, clip)
    base = figure(title=title, xlabel="x (km)", ylabel="depth z (km)", height=500, width=width)
    base.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    base.update_xaxes(constrain="domain", range=[float(to_numpy(x)[0]), float(to_numpy(x)[-1])])
    _point_shapes(base, points, radius=0.012 * float(to_numpy(x)[-1] - to_numpy(x)[0]))
    phases = np.arange(n_phase) * 2 * np.pi / n_phase
    frames = [[field_heatmap(np.clip(np.real(u * np.exp(-1j * ph)) / s, -1.0, 1.0), x, z, colorscale=DIVERGING,
                             zmin=-1, zmax=1, colorbar_title="Re(u e^(−iωt)) (scaled)")] for ph in phases]
    labels = [f"{360 * ph / (2 * np.pi):.0f}°" for ph in phases]
    return slider_figure(frames, labels, slider_prefix="phase ωt = ", base=base, play_button=True,
                         frame_duration_ms=80)


def fig_data(data, rec_x, *, labels: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """Amplitude and unwrapped phase of complex data [n_src, n_rec] against receiver position."""
    d = to_numpy(data, dtype=None)
    rx = to_numpy(rec_x)
    if d.ndim != 2 or d.shape[1] != rx.shape[0]:
        raise ValueError(f"data: expected shape [n_src, {rx.shape[0]}], got {list(d.shape)}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["amplitude |d|", "phase arg d (unwrapped)"])
    fig.update_layout(template=template(), height=360, title=title)
    for s in range(d.shape[0]):
        lab = labels[s] if labels is not None else f"source {s}"
        fig.add_trace(go.Scatter(x=rx, y=np.abs(d[s]), name=lab, legendgroup=lab, line=dict(color=color(s))), 1, 1)
        fig.add_trace(go.Scatter(x=rx, y=np.unwrap(np.angle(d[s])), name=lab, legendgroup=lab, showlegend=False,
                                 line=dict(color=color(s))), 1, 2)
    fig.update_xaxes(title_text="receiver x (km)")
    fig.update_yaxes(title_text="amplitude", row=1, col=1)
    fig.update_yaxes(title_text="phase (rad)", row=1, col=2)
    return fig


def fig_misfit_history(values: Mapping[str, Sequence[float]], *, title: str = "",
                       ylabel: str = "misfit Σ|r|²/σ_d²") -> go.Figure:
    """Objective against iteration (log scale), one curve per label."""
    fig = figure(title=title, xlabel="objective evaluation (line-search trials included)", ylabel=ylabel,
                 height=340)
    for k, (lab, v) in enumerate(values.items()):
        v = to_numpy(v)
        fig.add_trace(go.Scatter(x=np.arange(len(v)), y=v, name=lab, mode="lines+markers", line=dict(color=color(k))))
    fig.update_yaxes(type="log", exponentformat="power")
    return fig

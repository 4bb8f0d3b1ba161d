"""Plotly figure builders with one house style.

Every figure in the book is built here (or in a topic submodule such as
:mod:`memprior.plots.stylized`), so that all chapters look alike.

The static book has no kernel, so interactive ideas get a *kernel-free twin*:
a plotly figure whose slider steps switch between precomputed frames
(:func:`slider_figure`).  The live ipywidgets apps live in :mod:`memprior.widgets`.

Names and styles
----------------
In the topic modules a builder that returns a figure is called ``fig_*``, and the kernel-free
slider twin of a live app ``twin_*``; the pieces a live app shares with its twin are named by
what they return (``*_traces``, ``*_base`` for the empty layout, ``*_title``, ``*_panel``).
Every figure uses the one house template (:func:`init` registers it, :func:`template` returns
it) and the one style registry :data:`STYLE` (colour and dash by method: :func:`style`,
:func:`method_of`, :func:`method_color`).

Rendering
---------
Since plotly 6, ``fig.show()`` under nbclient emits only the
``application/vnd.plotly.v1+json`` mimetype, which Jupyter Book 1 drops, so the
figure would come out blank.  :func:`init` registers a renderer, ``"memprior"``,
that emits that mimetype (for JupyterLab) *and* a ``text/html`` div without
plotly.js (for the book, which loads plotly.js once from its own ``_static``).
In Google Colab it selects plotly's ``"colab"`` renderer instead.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

__all__ = [
    "PALETTE",
    "SEQUENTIAL",
    "DIVERGING",
    "STYLE",
    "init",
    "template",
    "figure",
    "slider_figure",
    "color",
    "style",
    "method_of",
    "method_color",
    "to_numpy",
    "compact",
    "figure_bytes",
    "set_alt",
    "alt_text",
]

#: Okabe–Ito colour-blind-safe palette (black first is reserved for truth/reference).
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Perceptually uniform, colour-blind-safe colour scales.
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu"

_FONT = dict(family="Helvetica, Arial, sans-serif", size=13)
_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def to_numpy(v, dtype=np.float64) -> np.ndarray:
    """A tensor or array-like as a numpy array (detached, on the CPU), cast to ``dtype`` unless it is None."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v) if dtype is None else np.asarray(v, dtype=dtype)


def color(i: int) -> str:
    """Colour ``i`` of the house palette (cycled)."""
    return PALETTE[int(i) % len(PALETTE)]


#: Colour and dash of each method, the same in every chapter's figures, kernel-free twins and live apps.
#: Keys name the method; read them with :func:`style`, and find the method a legend label names with
#: :func:`method_of`.
STYLE = {
    "lookup": dict(color=PALETTE[7], dash="solid"),                  # the exact (lookup) posterior: weights, density
    "exact": dict(color=PALETTE[2], dash="solid"),                   # the exact sampler, which draws from the lookup
    "DPS": dict(color=PALETTE[1], dash="solid"),                     # DPS, Chung et al.'s step rule
    "DPS (plug-in)": dict(color=PALETTE[3], dash="solid"),           # DPS with the plug-in step
    "paper": dict(color=PALETTE[0], dash="solid"),                   # the paper's normalized DPS variant
    "SMC": dict(color=PALETTE[4], dash="solid"),                     # SMC with twisting
    "linearized": dict(color=PALETTE[0], dash="solid"),              # linearized mixture, with the log-det
    "linearized, no log-det": dict(color=PALETTE[1], dash="dashdot"),  # ... without it (the paper's code)
    "closed form": dict(color=PALETTE[4], dash="solid"),             # the closed-form (memorizing) denoiser
    "MLP": dict(color=PALETTE[3], dash="solid"),                     # a trained network denoiser
    "null": dict(color=PALETTE[7], dash="dot"),                      # fresh draws: the null of a memorization score
    "prior": dict(color="#888888", dash="dot"),                      # the prior density
    "likelihood": dict(color=PALETTE[4], dash="dash"),               # the likelihood of the datum
}
# Other names the chapters give the same methods in their legends.
_ALIASES = {
    "exact weights": "lookup",
    "exact lookup weights": "lookup",
    "exact posterior": "lookup",
    "exact sampler": "exact",
    "paper variant": "paper",
    "DPS (normalized)": "paper",
}


def style(method: str, **overrides) -> dict:
    """The registry's ``dict(color=..., dash=...)`` of ``method`` (a key of :data:`STYLE`), updated by ``overrides``.

    A new dict each call, ready for ``line=`` (``marker=dict(color=style(m)["color"])`` for bars and markers).

    Raises
    ------
    ValueError
        If ``method`` is not a key of :data:`STYLE`.
    """
    if method not in STYLE:
        raise ValueError(f"method: must be one of {sorted(STYLE)}, got {method!r}")
    return {**STYLE[method], **overrides}


def method_of(label: str) -> str | None:
    """The :data:`STYLE` key a legend label names, or ``None``.

    The label names a method when it equals the method's key (or one of its other names, such as
    ``"paper variant"`` for ``"paper"``) or starts with it followed by a space, comma, colon or ``=``
    (``"DPS ζ′=0.3"``, ``"paper η=0.05"``); the longest such name wins (``"DPS (plug-in)"`` over ``"DPS"``).
    """
    if not isinstance(label, str):
        raise TypeError(f"label: expected a str, got {type(label).__name__}")
    best = None
    for name in (*STYLE, *_ALIASES):
        if label == name or (label.startswith(name) and label[len(name)] in " ,:="):
            if best is None or len(name) > len(best):
                best = name
    return None if best is None else _ALIASES.get(best, best)


def method_color(label: str, i: int) -> str:
    """Colour of a curve or bar labelled ``label``: its method's (:func:`method_of`), else :func:`color` ``(i)``."""
    m = method_of(label)
    return color(i) if m is None else STYLE[m]["color"]


def set_alt(fig: go.Figure, text: str) -> go.Figure:
    """Attach alt text (read by screen readers in the book) to ``fig``; returns ``fig``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: alt text must be a non-empty string")
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    fig.update_layout(meta={**meta, "alt": text.strip()})
    return fig


def alt_text(fig_dict: dict) -> str:
    """The figure's alt text: explicit (:func:`set_alt`), else built from its title and axis titles."""
    layout = fig_dict.get("layout", {}) or {}
    meta = layout.get("meta")
    if isinstance(meta, dict) and meta.get("alt"):
        return str(meta["alt"])

    def _title(obj):
        t = (obj or {}).get("title")
        if isinstance(t, dict):
            t = t.get("text")
        return t or ""

    parts = []
    if _title(layout):
        parts.append(_title(layout))
    axes = [(k, v) for k, v in sorted(layout.items()) if k.startswith(("xaxis", "yaxis")) and isinstance(v, dict)]
    labels = [f"{k[0]}: {_title(v)}" for k, v in axes if _title(v)]
    if labels:
        parts.append("axes " + ", ".join(labels))
    return "Interactive figure" + (": " + "; ".join(parts) if parts else "")


class _BookRenderer(MimetypeRenderer):
    """Emit the plotly mimetype for Jupyter and a plotly.js-free HTML div for the book."""

    def to_mimebundle(self, fig_dict):
        fig = go.Figure(fig_dict)
        html = pio.to_html(
            fig,
            include_plotlyjs=False,
            full_html=False,
            config=_CONFIG,
            validate=False,
            auto_play=False,  # slider figures open on their active frame, not animating
        )
        alt = alt_text(fig_dict).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        html = f'<div class="memprior-figure" role="img" aria-label="{alt}">{html}</div>'
        return {
            "application/vnd.plotly.v1+json": fig.to_plotly_json(),
            "text/html": html,
        }


_TEMPLATE_NAME = "memprior"


def _template() -> go.layout.Template:
    t = go.layout.Template()
    t.layout = go.Layout(
        font=_FONT,
        colorway=list(PALETTE),
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin=dict(l=60, r=20, t=50, b=55),
        hovermode="closest",
        legend=dict(bgcolor="rgba(255,255,255,0.7)"),
        xaxis=dict(showline=True, linecolor="#444", mirror=True, ticks="outside", gridcolor="#e5e5e5", zeroline=False),
        yaxis=dict(showline=True, linecolor="#444", mirror=True, ticks="outside", gridcolor="#e5e5e5", zeroline=False),
    )
    return t


def template() -> go.layout.Template | None:
    """The house template once :func:`init` has registered it, else ``None`` (plotly's default then applies).

    :func:`figure` applies it; figures made otherwise (``make_subplots``) take it with
    ``fig.update_layout(template=template())``.
    """
    return pio.templates[_TEMPLATE_NAME] if _TEMPLATE_NAME in pio.templates else None


def init() -> str:
    """Select the book's plotly renderer and template; return the renderer's name.

    Call once at the top of each chapter (``memprior.plots.init()``).  Safe to
    call repeatedly.
    """
    pio.templates[_TEMPLATE_NAME] = _template()
    pio.templates.default = "plotly_white+" + _TEMPLATE_NAME
    if "google.colab" in sys.modules:
        pio.renderers.default = "colab"
        return "colab"
    pio.renderers[_TEMPLATE_NAME] = _BookRenderer()
    pio.renderers.default = _TEMPLATE_NAME
    _display_through_mimebundle()
    return _TEMPLATE_NAME


def _display_through_mimebundle() -> None:
    """Let IPython display figures through ``_repr_mimebundle_`` (and so the default renderer).

    ``BaseFigure._ipython_display_`` shows a figure as a side effect and returns nothing, so
    ``myst_nb.glue(name, fig, display=False)`` would display the figure in place and glue an empty
    record.  Without it, IPython asks the figure for its mimebundle, which glue can store.
    """
    from plotly.basedatatypes import BaseFigure

    if "_ipython_display_" in vars(BaseFigure):
        delattr(BaseFigure, "_ipython_display_")


def figure(title: str | None = None, xlabel: str | None = None, ylabel: str | None = None,
           height: int = 420, width: int | None = None, **layout) -> go.Figure:
    """An empty figure in the house style, with axis titles (include units)."""
    fig = go.Figure()
    fig.update_layout(
        template=template(), title=title, height=height, width=width, **layout,
    )
    if xlabel is not None:
        fig.update_xaxes(title_text=xlabel)
    if ylabel is not None:
        fig.update_yaxes(title_text=ylabel)
    return fig


def compact(trace: go.BaseTraceType) -> go.BaseTraceType:
    """A copy of ``trace`` with its float data arrays stored as float32."""
    spec = trace.to_plotly_json()
    for key in ("x", "y", "z", "customdata", "text"):
        val = spec.get(key)
        if isinstance(val, np.ndarray) and val.dtype.kind == "f":
            spec[key] = val.astype(np.float32)
        elif isinstance(val, (list, tuple)) and val and all(isinstance(r, np.ndarray) for r in val):
            spec[key] = np.asarray(val).astype(np.float32)
    ttype = spec.pop("type", None)
    return type(trace)(spec) if ttype is None or ttype == trace.type else trace


def slider_figure(frames: Sequence[Sequence[go.BaseTraceType]], labels: Sequence[str], *,
                  slider_prefix: str = "", base: go.Figure | None = None, active: int = 0,
                  frame_titles: Sequence[str] | None = None, play_button: bool = False,
                  frame_duration_ms: int = 0) -> go.Figure:
    """A kernel-free interactive figure: a slider that switches between precomputed frames.

    Parameters
    ----------
    frames : sequence of sequences of plotly traces
        ``frames[k]`` holds the traces shown at slider step ``k``.  Every frame must
        have the same number of traces, in the same order and of the same types
        (they replace the base traces one for one).
    labels : sequence of str
        Label of each slider step (for example ``"σ = 0.30"``).
    slider_prefix : str
        Text shown before the current label.
    base : plotly Figure, optional
        Figure carrying the layout (axes, titles).  Its own traces are discarded.
    active : int
        Step shown initially.
    frame_titles : sequence of str, optional
        Figure title for each step.
    play_button : bool
        Add a play/pause button that animates through the steps.
    frame_duration_ms : int
        Transition time per frame when animating.

    Returns
    -------
    plotly.graph_objects.Figure
        A figure with ``len(frames)`` plotly frames and a slider.

    Raises
    ------
    ValueError
        If ``frames`` is empty, lengths differ, or ``active`` is out of range.
    """
    if len(frames) == 0:
        raise ValueError("frames: need at least one frame (got 0)")
    if len(labels) != len(frames):
        raise ValueError(f"labels: need one label per frame ({len(frames)}), got {len(labels)}")
    n_tr = len(frames[0])
    if n_tr == 0:
        raise ValueError("frames: each frame needs at least one trace")
    for k, fr in enumerate(frames):
        if len(fr) != n_tr:
            raise ValueError(f"frames: frame {k} has {len(fr)} traces, expected {n_tr} like frame 0")
    if not 0 <= active < len(frames):
        raise ValueError(f"active: must be in [0, {len(frames) - 1}], got {active}")
    if frame_titles is not None and len(frame_titles) != len(frames):
        raise ValueError(f"frame_titles: need one title per frame ({len(frames)}), got {len(frame_titles)}")
    fig = go.Figure(base) if base is not None else figure()
    fig.data = []
    for tr in frames[active]:
        fig.add_trace(compact(tr))
    names = [f"f{k}" for k in range(len(frames))]
    plotly_frames = []
    for k, fr in enumerate(frames):
        layout = dict(title_text=frame_titles[k]) if frame_titles is not None else None
        plotly_frames.append(go.Frame(data=[compact(t) for t in fr], name=names[k],
                                      traces=list(range(n_tr)), layout=layout))
    fig.frames = plotly_frames
    if frame_titles is not None:
        fig.update_layout(title_text=frame_titles[active])
    anim = dict(mode="immediate", frame=dict(duration=frame_duration_ms, redraw=True),
                transition=dict(duration=0))
    steps = [dict(method="animate", label=str(lab), args=[[nm], anim]) for nm, lab in zip(names, labels)]
    fig.update_layout(
        sliders=[dict(active=active, steps=steps, currentvalue=dict(prefix=slider_prefix),
                      pad=dict(t=45, b=10), x=0.05, len=0.9)],
    )
    if play_button:
        fig.update_layout(updatemenus=[dict(
            type="buttons", showactive=False, x=0.0, y=-0.12, xanchor="right", yanchor="top",
            buttons=[
                dict(label="▶", method="animate",
                     args=[None, dict(mode="immediate", fromcurrent=True,
                                      frame=dict(duration=max(frame_duration_ms, 120), redraw=True),
                                      transition=dict(duration=0))]),
                dict(label="❚❚", method="animate",
                     args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))]),
            ])])
    return fig


def figure_bytes(fig: go.Figure) -> int:
    """Size in bytes of a figure's JSON, as embedded in a book page."""
    return len(pio.to_json(fig, validate=False).encode())

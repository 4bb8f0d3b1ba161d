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

import html as _html
import re
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
    "SMALL_FIGURE_PX",
    "fit_small_screen",
    "text_width",
    "wrap_text",
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
        # every figure the book shows is laid out for a phone's width too (titles, legend, colour bars)
        fig = fit_small_screen(go.Figure(fig_dict))
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


# ----------------------------------------------------------------------------- small screens
#: The width (CSS px) of a figure in the book on a 412 px wide phone (the page pads it by 24 px a side).
SMALL_FIGURE_PX = 364
#: Font size of subplot titles, and thickness (px) of colour bars, in every figure.
SUBPLOT_TITLE_SIZE = 12
COLORBAR_THICKNESS = 12

_NARROW = set("ijlI|!.,:;'`")
_SEMI = set("ftr()[]{}-/ ")
_WIDE = set("mwMW@%")
_BR = re.compile(r"<br\s*/?>", re.I)


def text_width(text: str, size: float) -> float:
    """Approximate width in px of one line of plotly text (Helvetica/Arial) at font ``size`` px.

    Tags are not counted; ``<sub>``/``<sup>`` text counts at 70 %. An estimate from average glyph widths,
    accurate to about 10 % on the book's titles.
    """
    w, scale = 0.0, 1.0
    for part in re.split(r"(<[^>]+>)", str(text)):
        if part.startswith("<"):
            name = part.strip("<>/ ").split(" ")[0].lower()
            if name in ("sub", "sup"):
                scale = 1.0 if part.startswith("</") else 0.7
            continue
        for ch in _html.unescape(part):
            e = 0.25 if ch in _NARROW else 0.33 if ch in _SEMI else 0.85 if ch in _WIDE else \
                0.68 if ch.isupper() else 0.56
            w += e * scale
    return w * float(size)


def wrap_text(text: str, max_px: float, size: float) -> str:
    """``text`` with ``<br>`` breaks at spaces so that no line is wider than ``max_px`` at font ``size``.

    Existing ``<br>`` breaks stay; a word longer than a line stays whole; tags (``<sub>``,
    ``<span style='...'>``) are never split.
    """
    if not isinstance(text, str) or not text:
        return text
    # spaces inside tags are not break points
    guarded = re.sub(r"<[^>]+>", lambda m: m.group(0).replace(" ", "\x00"), text)
    out = []
    for line in _BR.split(guarded):
        cur = ""
        for word in line.split(" "):
            cand = word if not cur else f"{cur} {word}"
            if cur and text_width(cand.replace("\x00", " "), size) > max_px:
                out.append(cur)
                cur = word
            else:
                cur = cand
        out.append(cur)
    return "<br>".join(out).replace("\x00", " ")


def _default(fig, path: str, fallback):
    """``fig.layout.<path>``, else the template's, else ``fallback``."""
    for obj in (fig.layout, fig.layout.template.layout if fig.layout.template else None):
        v = obj
        for key in path.split("."):
            v = None if v is None else getattr(v, key, None)
        if v is not None:
            return v
    return fallback


def _lines(text) -> int:
    return 1 + len(_BR.findall(text)) if text else 0


def _legend_px(fig, plot_w: float, font: float) -> float:
    """Height in px of a horizontal legend laid out in rows of at most ``plot_w`` px."""
    seen, rows, cur = set(), 0, 0.0
    for t in fig.data:
        if t.showlegend is False or not t.name:
            continue
        key = t.legendgroup or t.name
        if key in seen:
            continue
        seen.add(key)
        w = text_width(t.name, font) + 52
        if rows == 0 or cur + w > plot_w:
            rows, cur = rows + 1, w
        else:
            cur += w
    return rows * font * 2.3 + 10 if rows else 0.0


def fit_small_screen(fig: go.Figure, width: int = SMALL_FIGURE_PX) -> go.Figure:
    """Lay out ``fig``'s titles, legend and colour bars so they stay legible at ``width`` px; returns ``fig``.

    Plotly keeps text at its font size when a figure shrinks, so on a phone (412 px wide, where a figure
    is :data:`SMALL_FIGURE_PX` wide) long titles run into each other and off the figure. This

    * wraps each subplot title (at ``SUBPLOT_TITLE_SIZE``, smaller if one word is wider than its
      panel) to the width of its panel, each x-axis title to its panel, the figure title and each
      slider frame's title to the figure, and makes room for the lines: above the top row (the top
      margin, the title on top) and between rows (the lower panels give up height);
    * moves a legend that sits beside the panels (or over or under them) under them, horizontal, below
      the x-axis titles and any slider; the figure grows by the room it needs, the panels keep their size;
    * makes vertical colour bars ``COLORBAR_THICKNESS`` px thin, their titles on the side, inside
      the figure.

    On a wide screen the same layout reads as before, the titles at most broken into lines and the
    legend under the panels. The book's renderer (:func:`init`) applies it to every figure it shows;
    applying it twice changes nothing more.

    Raises
    ------
    ValueError
        If ``width`` is not a positive number of pixels.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width: must be a positive number of px, got {width!r}")
    lay = fig.layout
    font = float(_default(fig, "font.size", 12))
    ml, mr = float(_default(fig, "margin.l", 80)), float(_default(fig, "margin.r", 80))
    mt, mb = float(_default(fig, "margin.t", 100)), float(_default(fig, "margin.b", 80))
    height = float(lay.height or 450)
    # vertical colour bars: thin, title on the side; they take the right margin
    cbar_px = 0.0
    bars = [lay[k].colorbar for k in lay if k.startswith("coloraxis") and lay[k] is not None
            and lay[k].showscale is not False]
    bars += [t.colorbar for t in fig.data if getattr(t, "showscale", None) is not False and hasattr(t, "colorbar")
             and getattr(t, "coloraxis", None) is None and t.type in ("heatmap", "contour", "surface")]
    for cb in bars:
        if cb.orientation == "h":
            continue
        cb.thickness = min(cb.thickness or 30, COLORBAR_THICKNESS)
        title = cb.title.text if cb.title is not None else None
        if title:
            cb.title.side = "right"
        cbar_px = max(cbar_px, cb.thickness + 44 + (20 if title else 0))
    for fr in fig.frames or ():  # a slider step replaces the traces, colour bars included
        for t in fr.data or ():
            if getattr(t, "colorbar", None) is not None and t.type in ("heatmap", "contour") and \
                    getattr(t, "coloraxis", None) is None:
                t.colorbar.thickness = min(t.colorbar.thickness or 30, COLORBAR_THICKNESS)
                if t.colorbar.title is not None and t.colorbar.title.text:
                    t.colorbar.title.side = "right"
    if cbar_px and mr < cbar_px + 10:  # room for the colour bar inside the figure
        mr = cbar_px + 10
        fig.update_layout(margin_r=mr)
    plot_w = max(width - ml - mr, 40.0)
    axes = {k: lay[k] for k in lay if k.startswith(("xaxis", "yaxis")) and lay[k] is not None}

    def panel(x, y):
        for k, ax in axes.items():
            if not k.startswith("xaxis") or ax.domain is None or ax.anchor in (None, "free"):
                continue
            ya = axes.get("yaxis" + ax.anchor[1:])
            if ya is not None and ya.domain is not None and abs(sum(ax.domain) / 2 - x) < 1e-6 \
                    and abs(ya.domain[1] - y) < 1e-6:
                return ax.domain
        return None

    # subplot titles (make_subplots: paper-referenced, no arrow, anchored at their bottom above a panel)
    titles: dict = {}
    for a in lay.annotations:
        if not (a.xref == "paper" and a.yref == "paper" and a.showarrow is False and a.yanchor == "bottom"
                and isinstance(a.text, str) and a.text):
            continue
        dom = panel(a.x, a.y)
        if dom is None:
            continue
        avail, size = (dom[1] - dom[0]) * plot_w + 4, min(float(a.font.size or 16), SUBPLOT_TITLE_SIZE)
        text = wrap_text(a.text, avail, size)
        while size > 9 and max(text_width(ln, size) for ln in _BR.split(text)) > avail:  # a word too long
            size -= 1
            text = wrap_text(a.text, avail, size)
        a.font.size, a.text = size, text
        titles.setdefault(round(a.y, 6), []).append(a)
    rows = {y: max(_lines(a.text) * a.font.size * 1.25 for a in anns) for y, anns in titles.items()}
    # x-axis titles within their panel's width (plotly puts the extra lines of a y-axis title over its ticks:
    # those stay on one line)
    for k, ax in axes.items():
        if k.startswith("xaxis") and ax.title is not None and isinstance(ax.title.text, str) and ax.title.text:
            d0, d1 = ax.domain if ax.domain is not None else (0.0, 1.0)
            ax.title.text = wrap_text(ax.title.text, (d1 - d0) * plot_w + 10,
                                      float(ax.title.font.size or round(font * 1.2)))  # 20 % larger than text
    # the figure title, and the titles of the slider frames
    tsize = float(_default(fig, "title.font.size", round(font * 1.4)))
    tx = lay.title.x if lay.title.x is not None else 0.5
    span = plot_w if lay.title.xref == "paper" else width - 10.0
    title_w = span * (1 - tx) - 10 if lay.title.xanchor == "left" else span - 10
    title_lines = 0
    if lay.title.text:
        lay.title.text = wrap_text(lay.title.text, title_w, tsize)
        title_lines = _lines(lay.title.text)
    for fr in fig.frames or ():
        if fr.layout is not None and fr.layout.title is not None and fr.layout.title.text:
            fr.layout.title.text = wrap_text(fr.layout.title.text, title_w, tsize)
            title_lines = max(title_lines, _lines(fr.layout.title.text))
    # the legend: horizontal, under the panels (a legend beside them takes half a phone's width, one over
    # them runs into the title); below the x-axis titles and any slider. The figure grows by the room it
    # needs, so the panels keep their size.
    leg = lay.legend
    names = {t.legendgroup or t.name: t.name for t in fig.data if t.showlegend is not False and t.name}
    n_items = len(names)
    shown = lay.showlegend is True or (lay.showlegend is None and n_items >= 2)
    widest = max((text_width(nm, font) + 52 for nm in names.values()), default=0.0)
    beside = leg.orientation != "h" and (leg.x is None or leg.x >= 1 or widest > (1 - leg.x) * plot_w)
    move = bool(shown and n_items and (beside or (leg.orientation == "h" and (leg.y is None or leg.y >= 1
                                                                                or leg.y < 0))))
    top_row = rows[max(rows)] if rows and max(rows) > 0.95 else 0.0
    new_t = mt
    if title_lines:
        # plotly puts the first line of a title at its anchor and the others below it, whatever the
        # yanchor: anchor the first line 6 px from the top and leave room for all of them
        new_t = 6 + title_lines * tsize * 1.25 + (top_row + 8 if top_row else 12)
        fig.update_layout(title=dict(yref="container", yanchor="bottom", y=1 - (6 + 0.92 * tsize) / height,
                                     pad=dict(t=0, b=0)))
    elif top_row:
        new_t = max(mt, top_row + 10)
    if move and leg.orientation == "h" and leg.y is not None and leg.y >= 1 and not title_lines:
        new_t = max(new_t - _legend_px(fig, plot_w, font), top_row + 10 if top_row else 20.0)
    new_t = float(np.ceil(new_t))
    new_b = mb
    title_lines_x = max([_lines(ax.title.text) for k, ax in axes.items() if k.startswith("xaxis")
                         and ax.visible is not False and ax.title.text] or [0])
    if lay.sliders:  # the slider's current value goes under the x-axis titles
        lay.sliders[0].pad.t = max(float(lay.sliders[0].pad.t or 0),
                                   44.0 + 20 * title_lines_x if title_lines_x else 36.0)
    if move:
        under = 34 + (12 + 19 * title_lines_x if title_lines_x else 0)
        if lay.sliders:  # the slider (pad, rail, ticks and current value) comes first
            under += float(lay.sliders[0].pad.t or 20) + 70
        new_b = max(mb, float(np.ceil(under + _legend_px(fig, plot_w, font) + 6)))
    # category labels that do not fit across their panel stand upright, under it
    for k, ax in axes.items():
        if not k.startswith("xaxis") or ax.type != "category" or ax.showticklabels is False:
            continue
        ref = "x" + k[5:]
        labels = {str(v) for t in fig.data if (getattr(t, "xaxis", None) or "x") == ref
                  for v in (getattr(t, "x", None) or ())}
        d0, d1 = ax.domain if ax.domain is not None else (0.0, 1.0)
        widest = max((text_width(v, font) for v in labels), default=0.0)
        if labels and len(labels) * (widest + 8) > (d1 - d0) * plot_w:
            ax.tickangle = -90
            if not move:
                new_b = max(new_b, float(np.ceil(widest + 14 + (28 * _lines(ax.title.text) if ax.title.text
                                                                 else 0))))
    plot_h = max(height - mt - mb, 40.0)  # the panels keep this height
    height = plot_h + new_t + new_b
    mt, mb = new_t, new_b
    fig.update_layout(height=int(np.ceil(height)), margin=dict(t=mt, b=mb))
    if move:
        fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=-under / plot_h, yanchor="top"))
    if title_lines:
        fig.update_layout(title_y=1 - (6 + 0.92 * tsize) / height)
    if lay.sliders and not move:  # plotly widens the bottom margin for a slider (and its current value)
        plot_h -= max(0.0, float(lay.sliders[0].pad.t or 20) + 70 - mb)
    # room between rows for wrapped titles: the lower panels give up height
    for y in sorted(rows, reverse=True):
        bottoms = [ax.domain[0] for k, ax in axes.items() if k.startswith("yaxis") and ax.domain is not None
                   and ax.domain[0] > y + 1e-6]
        if not bottoms:
            continue
        upper = min(bottoms)
        deco = 0.0
        for k, ax in axes.items():
            if not k.startswith("xaxis") or ax.anchor in (None, "free"):
                continue
            ya = axes.get("yaxis" + ax.anchor[1:])
            if ya is not None and ya.domain is not None and abs(ya.domain[0] - upper) < 1e-6:
                deco = max(deco, (22 if ax.showticklabels is not False else 0)
                           + (28 * _lines(ax.title.text) if ax.title.text else 0))
        deficit = rows[y] + deco + 24 - (upper - y) * plot_h
        if deficit <= 0:
            continue
        shift = deficit / plot_h
        for k, ax in axes.items():
            if k.startswith("yaxis") and ax.domain is not None and abs(ax.domain[1] - y) < 1e-6:
                ax.domain = [ax.domain[0], ax.domain[1] - shift]
        for a in titles[y]:
            a.y = a.y - shift
    return fig

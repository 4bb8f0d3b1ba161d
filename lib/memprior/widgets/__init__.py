"""ipywidgets apps, one per interactive idea, built on :mod:`memprior.plots`.

Every app is an :class:`App`: a set of controls, a plotly ``FigureWidget`` and an
update function.  The same update path serves the live widget (in Jupyter,
Binder or Colab) and the latency benchmark (``App.update(**params)`` runs the
callback without a browser), so what is timed is what a student waits for.

The static book has no kernel: each app has a kernel-free twin built with
:func:`memprior.plots.slider_figure`, and the live widget's cell is tagged
``remove-output`` so that no dead controls appear in the HTML.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping

import numpy as np
import plotly.graph_objects as go

from .._checks import in_book_build

__all__ = ["App", "callback_latencies", "in_book_build"]

LIVE_NOTE = "Live app: runs in Jupyter, Binder or Colab. The static book shows a precomputed twin."


class App:
    """A live interactive figure: controls → ``update(fig, **values)`` → FigureWidget.

    Parameters
    ----------
    controls : mapping of str to ipywidgets.ValueWidget
        Named controls; their ``value`` is passed to ``update`` under the same name.
    figure : plotly Figure
        Initial figure; converted to a ``FigureWidget``.
    update : callable
        ``update(fig, **values)`` mutates the figure widget's traces/layout in place.
    title : str, optional
        Heading shown above the controls.
    live : bool
        ``True`` (default): the figure is a ``FigureWidget`` for Jupyter.  ``False``: the same
        controls → update path on a plain ``Figure``, for timing callbacks without a browser.  A
        ``FigureWidget`` created while the book executes would store its whole state (several MB,
        including plotly.js) in the page, so chapters build their apps with ``live=False`` there
        (``live=not memprior._checks.in_book_build()``).
    """

    def __init__(self, controls: Mapping[str, "object"], figure: go.Figure,
                 update: Callable[..., None], title: str | None = None, live: bool = True):
        if not callable(update):
            raise TypeError("update: must be callable as update(fig, **values)")
        if len(controls) == 0:
            raise ValueError("controls: need at least one control")
        if not isinstance(live, bool):
            raise TypeError(f"live: expected True or False, got {type(live).__name__}")
        self.controls = dict(controls)
        self._update = update
        self.live = live
        self.figure = go.FigureWidget(figure) if live else go.Figure(figure)
        self.title = title
        self._box = None
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict:
        """Current control values by name."""
        return {k: w.value for k, w in self.controls.items()}

    def update(self, **values) -> None:
        """Set controls (without firing twice) and redraw once.  Used by tests and benchmarks."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"values: unknown control(s) {sorted(unknown)}; known: {sorted(self.controls)}")
        for k, v in values.items():
            w = self.controls[k]
            w.unobserve(self._on_change, names="value")
            try:
                w.value = v
            finally:
                w.observe(self._on_change, names="value")
        with self.figure.batch_update():
            self._update(self.figure, **self.values())

    def _on_change(self, _change) -> None:
        with self.figure.batch_update():
            self._update(self.figure, **self.values())

    @property
    def widget(self):
        """The ipywidgets layout: title, controls, note and figure."""
        if not self.live:
            raise TypeError("live: this app was built with live=False (no FigureWidget); build it with live=True")
        if self._box is None:
            import ipywidgets as W
            parts = []
            if self.title:
                parts.append(W.HTML(f"<b>{self.title}</b>"))
            parts.append(W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")))
            parts.append(W.HTML(f"<small><i>{LIVE_NOTE}</i></small>"))
            parts.append(self.figure)
            self._box = W.VBox(parts)
        return self._box

    def _ipython_display_(self):
        from IPython.display import display
        if self.live:
            display(self.widget)
        else:
            display(self.figure)


def callback_latencies(app: App, settings: list[dict], repeat: int = 1) -> np.ndarray:
    """Wall-clock latency in milliseconds of ``app.update(**s)`` for each setting.

    Parameters
    ----------
    app : App
    settings : list of dict
        Control values to apply, one dict per callback.
    repeat : int
        How many times to run through ``settings``.

    Returns
    -------
    numpy.ndarray of shape ``[repeat * len(settings)]``
    """
    if repeat < 1:
        raise ValueError(f"repeat: must be >= 1, got {repeat}")
    if not settings:
        raise ValueError("settings: need at least one setting")
    out = []
    for _ in range(repeat):
        for s in settings:
            t0 = time.perf_counter()
            app.update(**s)
            out.append(1e3 * (time.perf_counter() - t0))
    return np.asarray(out)

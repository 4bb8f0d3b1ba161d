"""Live app for the practice chapter: move the datum, watch the posterior each prior implies."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from . import App
from .._checks import as_tensor
from ..plots.practice import line_xy, datum_base, datum_title, datum_traces
from ..practice import datum_posteriors as datum_panels

__all__ = ["datum_panels", "datum_title", "datum_app", "benchmark_settings"]


def datum_app(priors: Mapping[str, tuple], a, gamma: float, reference: Callable,
              y_range: tuple = (-3.0, 3.0), y0: float = 1.5, n: int = 300, lim: float = 3.5,
              short_names: Sequence[str] | None = None, live: bool = True) -> App:
    """Drag the datum ``y``: each prior's importance posterior and its distance to the reference.

    Parameters
    ----------
    priors : mapping name -> (x_train Tensor[N, 2], prior_samples Tensor[M, 2])
        Up to four priors (one panel each).
    a : Tensor[2]
        Weights of the linear datum ``y = a · x + e``.
    gamma : float > 0
    reference : callable ``(y, n, generator) -> Tensor[n, 2]``
        Reference posterior sampler.
    y_range : (float, float)
        Slider range of the datum.
    y0 : float
        Initial datum.
    n : int
        Posterior samples per prior.
    lim : float
        Half-width of each panel.
    short_names : sequence of str, optional
        Names used in the title (default: the panel names).
    live : bool
        ``False`` builds the same app on a plain figure (no widget comm), for timing and tests.

    Returns
    -------
    App
        Control ``y`` (FloatSlider).
    """
    import ipywidgets as W

    if not 1 <= len(priors) <= 4:
        raise ValueError(f"priors: need 1 to 4 priors, got {len(priors)}")
    lo, hi = (float(v) for v in y_range)
    if not lo < hi:
        raise ValueError(f"y_range: need low < high, got {y_range}")
    names = list(priors)
    short = list(short_names) if short_names is not None else names
    at = as_tensor("a", a, ndim=1).to(torch.float64)
    fig = datum_base(names, lim)
    panels, dist = datum_panels(priors, at, y0, gamma, reference, n)
    for tr in datum_traces(panels, at.tolist(), y0, lim):
        fig.add_trace(tr)
    fig.update_layout(title_text=datum_title(short, y0, dist), title_font_size=12)
    controls = {"y": W.FloatSlider(value=y0, min=lo, max=hi, step=0.05, description="datum y",
                                   continuous_update=False)}
    per_panel = len(fig.data) // len(names)

    def update(f, y):
        pan, dd = datum_panels(priors, at, y, gamma, reference, n)
        lx, ly = line_xy(at.tolist(), float(y), lim)
        for k, (_, _, post) in enumerate(pan):
            q = np.asarray(post, dtype=np.float32)
            f.data[k * per_panel + 1].x, f.data[k * per_panel + 1].y = q[:, 0], q[:, 1]
            f.data[k * per_panel + per_panel - 1].y = ly
            f.data[k * per_panel + per_panel - 1].x = lx
        f.layout.title.text = datum_title(short, float(y), dd)

    return App(controls, fig, update, title="The datum and the posterior each prior implies", live=live)


def benchmark_settings(y_range: tuple = (-3.0, 3.0), k: int = 13) -> list[dict]:
    """Control settings for timing the app's callback: ``k`` data values across ``y_range``."""
    return [{"y": float(v)} for v in np.linspace(y_range[0], y_range[1], k)]

"""Live apps for chapters 1 and 2: bandwidth and sample size (chapter 1), datum and noise (chapter 2).

Each app redraws with the same panel functions as its kernel-free twin in
:mod:`memprior.plots.memorize`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .. import mle
from .._checks import as_tensor, check_positive
from ..plots import memorize as PM
from . import App

__all__ = ["bandwidth_app", "lookup_app"]


def bandwidth_app(pool, x_test, ns: Sequence[int] = (5, 10, 20, 50, 100, 200, 400), n: int = 20,
                  sigma: float = 0.3, sigmas=None, lo: float = -3.5, hi: float = 4.0, live: bool = True) -> App:
    """Live app: training-set size N and bandwidth sigma -> fitted density and likelihood curves.

    The training set of size N is ``pool[:N]`` (nested sets).  The likelihood
    curves of every N are computed once, when the app is built, so that a slider
    move only redraws the density and the two markers.

    Parameters
    ----------
    pool : ``[N_max, 1]``
        Training examples; ``N_max >= max(ns)``.
    x_test : ``[M, 1]``
        Held-out examples.
    ns : sequence of int
        Training-set sizes offered by the N slider.
    n : int
        Initial N (one of ``ns``).
    sigma : float
        Initial bandwidth.
    sigmas : array-like, optional
        Bandwidth grid of the curves; default 50 log-spaced values on [1e-3, 5].
    lo, hi : float
        Plotting range of x.
    live : bool
        ``True``: a ``FigureWidget`` for Jupyter.  ``False``: the same app on a plain figure, for
        timing the callback while the book is built.

    Returns
    -------
    memprior.widgets.App
        Controls ``N`` (``SelectionSlider``) and ``sigma`` (``FloatLogSlider``).
    """
    import ipywidgets as W

    pool_t = as_tensor("pool", pool)
    if pool_t.dim() != 2 or pool_t.shape[1] != 1:
        raise ValueError(f"pool: expected shape [N_max, 1], got {list(pool_t.shape)}")
    ns = [int(v) for v in ns]
    if not ns or min(ns) < 1 or max(ns) > pool_t.shape[0]:
        raise ValueError(f"ns: sizes must be in [1, {pool_t.shape[0]}] (the pool size), got {ns}")
    if n not in ns:
        raise ValueError(f"n: must be one of ns = {ns}, got {n}")
    sigma = check_positive("sigma", sigma, square=True)
    grid = np.geomspace(1e-3, 5.0, 50) if sigmas is None else sigmas
    curves = {k: mle.bandwidth_curve(pool_t[:k], grid, x_test, loo=False) for k in ns}

    controls = {
        "N": W.SelectionSlider(options=ns, value=n, description="N", continuous_update=True),
        "sigma": W.FloatLogSlider(value=sigma, base=10, min=-3, max=np.log10(5.0), step=0.05, description="σ",
                                  readout_format=".3g", continuous_update=True),
    }
    pan0 = PM.bandwidth_panel(pool_t[:n], sigma, curves[n], lo, hi)
    fig = PM.bandwidth_base(title=PM.bandwidth_title(pan0))
    for t in PM.bandwidth_traces(pan0):
        fig.add_trace(t)

    def update(f, N, sigma):
        pan = PM.bandwidth_panel(pool_t[:N], sigma, curves[N], lo, hi)
        # Assign arrays to the existing traces (building new trace objects costs more than the numerics).
        for k, (xk, yk) in enumerate((("x", "kde"), ("x", "truth"), ("x_train", None), ("sigmas", "train"),
                                      ("sigmas", "heldout"))):
            f.data[k].x = pan[xk]
            f.data[k].y = np.zeros_like(pan[xk]) if yk is None else pan[yk]
        f.data[5].x, f.data[5].y = [sigma], [pan["train_at"]]
        f.data[6].x, f.data[6].y = [sigma], [pan["heldout_at"]]
        f.data[0].name = f"p<sub>σ</sub>, N = {N}"
        f.layout.title.text = PM.bandwidth_title(pan)

    return App(controls, fig, update, title="Maximum likelihood and the bandwidth", live=live)


def lookup_app(forward: Callable, x_train, x_grid, y: float = 0.5, gamma: float = 0.3,
               y_range: tuple[float, float] = (-5.0, 7.0), f_range: tuple[float, float] = (-6.0, 8.0),
               live: bool = True) -> App:
    """Live app: datum y and noise level gamma -> lookup posterior weights.

    Parameters
    ----------
    forward : callable ``[B, 1] -> [B, 1]``
    x_train : ``[N, 1]``
    x_grid : array-like ``[G]``
        Where to draw the forward curve.
    y, gamma : float
        Initial datum and noise level (gamma > 0).
    y_range : (float, float)
        Range of the y slider.
    f_range : (float, float)
        Range of the data axis.
    live : bool
        ``True``: a ``FigureWidget`` for Jupyter.  ``False``: the same app on a plain figure.

    Returns
    -------
    memprior.widgets.App
        Controls ``y`` (``FloatSlider``) and ``gamma`` (``FloatLogSlider``).
    """
    import ipywidgets as W

    gamma = check_positive("gamma", gamma, square=True)
    xt = as_tensor("x_train", x_train)
    grid = as_tensor("x_grid", x_grid)
    controls = {
        "y": W.FloatSlider(value=float(y), min=float(y_range[0]), max=float(y_range[1]), step=0.05,
                           description="y", continuous_update=True),
        "gamma": W.FloatLogSlider(value=gamma, base=10, min=-3, max=1.3, step=0.05, description="γ",
                                  readout_format=".3g", continuous_update=True),
    }
    pan0 = PM.lookup_panel(forward, xt, float(y), gamma, grid)
    fig = PM.lookup_base(f_range, title=PM.lookup_title(pan0))
    for t in PM.lookup_traces(pan0):
        fig.add_trace(t)

    def update(f, y, gamma):
        pan = PM.lookup_panel(forward, xt, y, gamma, grid)
        f.data[0].y = [y - gamma, y - gamma, y + gamma, y + gamma, y - gamma]
        f.data[1].y = [y, y]
        f.data[3].marker.size = PM.weight_marker_size(pan["weights"])
        f.data[3].customdata = np.stack([pan["misfit"], pan["weights"]], axis=1)
        f.data[4].y = pan["weights"]
        f.layout.title.text = PM.lookup_title(pan)

    return App(controls, fig, update, title="The lookup posterior", live=live)

"""Live app for chapter 3: the 1-D stylized problem under the controls sigma, gamma, y and N.

Every slider move recomputes the exact posterior (quadrature), both linearized
mixtures and all component weights with :func:`memprior.experiments.stylized.panel_1d`,
then redraws the figure in place.  The static book shows the kernel-free twins
:func:`memprior.plots.stylized.twin_sigma` and :func:`memprior.plots.stylized.twin_y`.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import posterior as P
from .._checks import check_int, check_positive
from ..experiments import stylized as ex
from ..plots import stylized as S
from . import App

__all__ = ["TRAINING_SETS", "training_problem", "stylized_app", "benchmark_settings"]

#: Choices of the "N" control: label -> number of evenly spaced points on [-3, 3] (0: the paper's five points).
TRAINING_SETS = {
    "5: the paper's points": 0,
    "3 evenly spaced": 3,
    "5 evenly spaced": 5,
    "10 evenly spaced": 10,
    "20 evenly spaced": 20,
    "100 evenly spaced": 100,
}


def training_problem(n: int, y: float, gamma: float, n_grid: int = 500) -> P.Problem:
    """The 1-D cubic problem with datum ``y``, noise ``gamma`` and training set ``n``.

    Parameters
    ----------
    n : int
        0 for the paper's five points; otherwise N >= 2 points evenly spaced on [-3, 3].
    y : float
    gamma : float
        > 0.
    n_grid : int
        Grid nodes on [-3.5, 3.5].
    """
    n = check_int("n", n, low=0, high=10_000)
    if n == 1:
        raise ValueError("n: must be 0 (the paper's points) or an integer in [2, 10000], got 1")
    if n == 0:
        return P.stylized_1d(y=y, gamma=gamma, n_grid=n_grid)
    x = torch.linspace(-3.0, 3.0, n, dtype=torch.float64)[:, None]
    return P.stylized_1d(y=y, gamma=gamma, n_grid=n_grid, x_train=x)


def stylized_app(sigma: float = 0.3, gamma: float = 0.3, y: float = 0.0, n: int = 0, live: bool = True) -> App:
    """The live app: sliders for sigma, gamma, y and a choice of training set.

    Parameters
    ----------
    sigma, gamma : float
        Initial bandwidth and noise level (> 0).
    y : float
        Initial datum, in [-3, 3].
    n : int
        Initial training set (a value of :data:`TRAINING_SETS`).
    live : bool
        ``True``: a ``FigureWidget`` for Jupyter.  ``False``: the same app on a plain figure, for
        timing the callback (:func:`memprior.widgets.callback_latencies`) without a browser and
        without embedding widget state in a built page.

    Returns
    -------
    memprior.widgets.App
        Display it in Jupyter; ``app.update(sigma=..., ...)`` redraws without a browser.
    """
    if not isinstance(live, bool):
        raise TypeError(f"live: expected True or False, got {type(live).__name__}")
    import ipywidgets as W

    sigma = check_positive("sigma", sigma, square=True)
    gamma = check_positive("gamma", gamma, square=True)
    if n not in TRAINING_SETS.values():
        raise ValueError(f"n: must be one of {sorted(TRAINING_SETS.values())}, got {n!r}")
    style = dict(description_width="initial")
    controls = {
        "sigma": W.FloatLogSlider(value=sigma, base=10, min=-2, max=0.3, step=0.02, description="σ (bandwidth)",
                                  readout_format=".3f", continuous_update=True, style=style),
        "gamma": W.FloatLogSlider(value=gamma, base=10, min=-1.3, max=0, step=0.02, description="γ (noise)",
                                  readout_format=".3f", continuous_update=True, style=style),
        "y": W.FloatSlider(value=float(y), min=-3.0, max=3.0, step=0.05, description="datum y",
                           continuous_update=True, style=style),
        "n": W.Dropdown(options=list(TRAINING_SETS.items()), value=n, description="training set N", style=style),
    }
    pan = ex.panel_1d(training_problem(n, y, gamma), sigma)
    fig = S.panel_base(pan, 1.0)
    for t in S.panel_traces(pan):
        fig.add_trace(t)
    fig.update_yaxes(autorange=True, row=1, col=1)
    fig.update_yaxes(range=None, row=1, col=1)

    def update(f, sigma, gamma, y, n):
        p = ex.panel_1d(training_problem(n, y, gamma), sigma)
        keys = ("prior", "likelihood", "exact", "lin", "lin0")
        for i, k in enumerate(keys):
            f.data[i].x = p.x
            f.data[i].y = getattr(p, k)
        f.data[5].x = p.x_train
        f.data[5].y = np.zeros_like(p.x_train)
        labels = [f"{v:.2f}" for v in p.x_train]
        for i, k in enumerate(("w_exact", "w_lin", "w_lin0")):
            f.data[6 + i].x = labels
            f.data[6 + i].y = getattr(p, k)
        f.layout.title.text = S.panel_title(p, f"σ = {sigma:.3g}, γ = {gamma:.3g}, y = {y:.2f}")

    return App(controls, fig, update, title="A stylized inverse problem: exact vs linearized posterior", live=live)


def benchmark_settings(n_moves: int = 40, seed: int = 0) -> list[dict]:
    """A reproducible sequence of slider moves for :func:`memprior.widgets.callback_latencies`.

    Parameters
    ----------
    n_moves : int
        Number of settings, >= 1.
    seed : int

    Returns
    -------
    list of dict with keys sigma, gamma, y, n (every training set is visited).
    """
    n_moves = check_int("n_moves", n_moves, low=1)
    rng = np.random.default_rng(seed)
    sets = list(TRAINING_SETS.values())
    out = []
    for k in range(n_moves):
        out.append(dict(sigma=float(10 ** rng.uniform(-2, 0.3)), gamma=float(10 ** rng.uniform(-1.3, 0)),
                        y=float(np.round(rng.uniform(-3, 3), 2)), n=sets[k % len(sets)]))
    return out

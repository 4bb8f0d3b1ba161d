"""Live apps for the diffusion chapter."""
from __future__ import annotations

import numpy as np

from . import App
from ..diffusion import MemorizedDenoiser, Schedule
from ..plots.diffusion import noising_base, noising_traces

__all__ = ["noising_app"]


def noising_app(x_train_1d, grid=None, n_steps: int = 200, live: bool = True) -> App:
    """Drag the noise level t and switch schedules: the noised density and the closed-form denoiser.

    Parameters
    ----------
    x_train_1d : array-like [N] or [N, 1]
        One-dimensional training set.
    grid : array [G], optional
        Evaluation grid (default 400 points covering the data ± 3).
    n_steps : int
        Number of schedule steps.
    live : bool
        ``False`` draws on a plain figure (same callback), for timing without a browser.

    Returns
    -------
    App
        Controls ``t`` (IntSlider) and ``schedule`` (Dropdown: "linear (paper)", "cosine").
    """
    import ipywidgets as W

    x = np.asarray(x_train_1d, dtype=np.float64).reshape(-1, 1)
    if grid is None:
        grid = np.linspace(x.min() - 3, x.max() + 3, 400)
    grid = np.asarray(grid, dtype=np.float64)
    dens = {"linear (paper)": MemorizedDenoiser(x, Schedule.linear(n_steps)),
            "cosine": MemorizedDenoiser(x, Schedule.cosine(n_steps))}
    # density axis scaled to t = 5; at the very cleanest steps the bumps are taller and clipped
    ymax = 1.1 * max(float(np.max(noising_traces(d, min(5, n_steps - 1), grid)[0].y)) for d in dens.values())
    fig = noising_base(x[:, 0], grid, ymax)
    for tr in noising_traces(dens["linear (paper)"], n_steps - 1, grid):
        fig.add_trace(tr)
    controls = {
        "t": W.IntSlider(value=n_steps - 1, min=0, max=n_steps - 1, step=1, description="step t",
                         continuous_update=True),
        "schedule": W.Dropdown(options=list(dens), value="linear (paper)", description="schedule"),
    }

    def update(f, t, schedule):
        den = dens[schedule]
        new = noising_traces(den, int(t), grid)
        for old, tr in zip(f.data, new):
            old.x, old.y = tr.x, tr.y
        s = den.schedule
        f.layout.title.text = (f"{schedule}, t = {int(t)}: ᾱ_t = {float(s.alpha_bar[int(t)]):.3f}, "
                               f"noise std {s.std(int(t)):.3f}")

    return App(controls, fig, update, title="Forward noising and the closed-form denoiser (1-D)", live=live)

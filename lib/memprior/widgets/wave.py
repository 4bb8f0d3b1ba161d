"""Live app of the wave-solver chapter: frequency, source position and model family -> wavefield."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from . import App
from ..plots import wave as wplots
from ..wave import Acquisition, Helmholtz2D

__all__ = ["wavefield_app"]


def wavefield_app(solver: Helmholtz2D, models: Mapping[str, np.ndarray], freqs=(2.0, 8.0, 0.5),
                  n_rec: int = 32, live: bool = True) -> App:
    """An :class:`~memprior.widgets.App` showing Re u for a source on the top row.

    Parameters
    ----------
    solver : Helmholtz2D
    models : mapping of str to array [nx, nz]
        Squared-slowness models (s²/km²) offered in the "model" drop-down.
    freqs : (min, max, step)
        Range of the frequency slider in Hz.
    n_rec : int
        Receivers drawn on the bottom row (markers only).
    live : bool
        ``True``: a ``FigureWidget`` for Jupyter.  ``False``: the same callback on a plain figure,
        for timing with :func:`memprior.widgets.callback_latencies` without a browser and without
        embedding widget state in a built page.

    Returns
    -------
    App
        Controls ``freq`` (Hz), ``source_x`` (km) and ``model`` (name).
    """
    import ipywidgets as W

    if not isinstance(live, bool):  # checked before any work (App checks it again)
        raise TypeError(f"live: expected True or False, got {type(live).__name__}")
    if not isinstance(solver, Helmholtz2D):
        raise TypeError(f"solver: expected a Helmholtz2D, got {type(solver).__name__}")
    if len(models) == 0:
        raise ValueError("models: need at least one model")
    ms = {k: solver._check_m(v, name=f"models[{k!r}]") for k, v in models.items()}
    fmin, fmax, fstep = (float(v) for v in freqs)
    if not 0 < fmin < fmax or fstep <= 0:
        raise ValueError(f"freqs: expected (min, max, step) with 0 < min < max and step > 0, got {freqs}")
    for name, m in ms.items():  # refuse a range the grid cannot resolve (< 4 points per wavelength)
        if solver.points_per_wavelength(m, fmax) < 4:
            raise ValueError(f"freqs: {fmax} Hz gives < 4 points per wavelength in model {name!r}")
    lx, lz = solver.extent
    acq = Acquisition.transmission(solver.nx, solver.nz, solver.dx, 1, n_rec)
    first = next(iter(ms))
    controls = dict(
        freq=W.FloatSlider(value=min(max(4.0, fmin), fmax), min=fmin, max=fmax, step=fstep,
                           description="frequency (Hz)", continuous_update=False,
                           style=dict(description_width="initial")),
        source_x=W.FloatSlider(value=round(lx / 2, 3), min=0.0, max=round(lx, 3), step=round(lx / 16, 3),
                               description="source x (km)", continuous_update=False,
                               style=dict(description_width="initial")),
        model=W.Dropdown(options=list(ms), value=first, description="model"),
    )
    u0 = np.real(solver.wavefield(ms[first], controls["freq"].value, (lx / 2, 0.0)))
    fig = wplots.fig_field(u0 / (np.abs(u0).max() or 1), solver.x, solver.z, symmetric=True,
                           colorbar_title="Re u / max",
                           points={"source": np.array([[lx / 2, 0.0]]), "receivers": acq.receivers},
                           title="Re u, one source on the top row")
    fig.data[0].update(zmin=-1, zmax=1)

    def update(f, freq, source_x, model):
        u = np.real(solver.wavefield(ms[model], freq, (min(max(source_x, 0.0), lx), 0.0)))
        f.data[0].z = (u / (np.abs(u).max() or 1)).T.astype(np.float32)
        f.data[1].x = [source_x]
        f.layout.title.text = f"Re u at {freq:.1f} Hz, source at x = {source_x:.2f} km, model: {model}"

    return App(controls, fig, update, title="Helmholtz wavefield explorer", live=live)

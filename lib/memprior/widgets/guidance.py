"""Live app for chapter 5: DPS step size -> frequencies against the exact lookup weights.

The app reruns a guided sampler on every slider move, so it uses a few hundred samples
and an evenly spaced subset of the diffusion levels to answer within the book's
latency budget.  Its kernel-free twin is :func:`memprior.plots.guidance.twin_step_size`.
"""
from __future__ import annotations

import torch

from .. import guidance as G
from .._checks import check_int
from ..diffusion import MemorizedDenoiser, Schedule
from ..plots import figure
from ..plots.guidance import frequency_traces, point_labels
from . import App

__all__ = ["step_size_app", "benchmark_settings"]

_SAMPLERS = ("DPS (Chung et al.)", "paper variant (normalized)")


def benchmark_settings() -> list[dict]:
    """Slider moves for :func:`memprior.widgets.callback_latencies`: both samplers, the whole step range."""
    return [dict(sampler=s, log10_step=v) for s in _SAMPLERS for v in (-2.5, -1.5, -0.5, 0.5)]


def step_size_app(problem, schedule: Schedule | None = None, n: int = 256, steps: int = 50,
                  seed: int = 0, live: bool = True) -> App:
    """An :class:`~memprior.widgets.App`: sampler and step size -> frequencies vs lookup weights.

    Parameters
    ----------
    problem : memprior.posterior.Problem
        Forward map, training set, data and noise level (e.g. ``stylized_1d()``).
    schedule : Schedule, optional
        Default: the paper's ``Schedule.linear(200)``.
    n : int >= 1
        Samples per callback.
    steps : int >= 2
        Diffusion levels visited per callback (evenly spaced).
    seed : int
        Seed of every run (the same noise for every slider position).
    live : bool
        ``False`` builds the same app on a plain figure (no widget comm), for timing.

    Returns
    -------
    App
        Controls ``sampler`` (dropdown), ``log10_step`` (log10 of zeta' or step_size).
    """
    import ipywidgets as W

    if not isinstance(live, bool):
        raise TypeError(f"live: expected True or False, got {type(live).__name__}")
    n = check_int("n", n, low=1)
    schedule = schedule if schedule is not None else Schedule.linear(200)
    steps = check_int("steps", steps, low=2, high=schedule.n_steps)
    forward, x_train, y, gamma = problem.forward, problem.x_train, problem.y, problem.gamma
    den = MemorizedDenoiser(x_train, schedule)
    w = G.log_likelihoods(forward, x_train, y, gamma).softmax(0)
    labels = point_labels(x_train)

    controls = {
        "sampler": W.Dropdown(options=list(_SAMPLERS), value=_SAMPLERS[0], description="sampler"),
        "log10_step": W.FloatSlider(value=-1.0, min=-2.5, max=0.5, step=0.25, description="log10 step",
                                    continuous_update=False),
    }
    fig = figure(xlabel="training point (nearest to each sample)", ylabel="probability / frequency", height=400)
    for tr in frequency_traces(labels, w, w, n, "sampler"):
        fig.add_trace(tr)
    fig.update_layout(barmode="group", yaxis_range=[0, 1.05], margin=dict(t=90),
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"))

    def update(f, sampler, log10_step):
        step = 10.0 ** float(log10_step)
        g = torch.Generator().manual_seed(seed)
        if sampler == _SAMPLERS[0]:
            s = G.dps_sample(den, schedule, forward, y, gamma, n, zeta=step, generator=g, steps=steps,
                             show_progress=False)
            name, sym = "DPS", "ζ′"
        else:
            s = G.dps_normalized_sample(den, schedule, forward, y, n, step_size=step, generator=g, steps=steps,
                             show_progress=False)
            name, sym = "paper variant", "η"
        freq = G.assignment_frequencies(s, x_train)
        new = frequency_traces(labels, w, freq, n, name)
        f.data[1].y = new[1].y
        f.data[1].error_y = new[1].error_y
        f.data[1].name = name
        f.data[1].marker.color = new[1].marker.color
        tv = G.tv_distance(freq, w)
        f.layout.title.text = f"{name}, {sym} = {step:.3g}: total variation {tv:.3f} ({n} samples)"

    return App(controls, fig, update, title="Guided sampling with a memorized prior", live=live)

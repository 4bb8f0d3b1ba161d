"""Live app for chapter 7: training-set size, noise level and step size in FWI with a memorized prior.

The lookup (the exact posterior under the memorized prior) is recomputed on every
change: the training models' data are cached, so it costs one forward solve for the
new noisy data.  The normalized-DPS samples come from precomputed runs where they
exist, and are otherwise run on demand with few samples and levels (a second or so
on one core), then kept.  The kernel-free twin is :func:`memprior.plots.fwi.twin_sizes`.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._checks import check_int, check_seed
from ..plots import PALETTE, style, template
from . import App

__all__ = ["fwi_app", "AppState"]


class AppState:
    """Observations, lookups and sampler runs of the app, computed once per setting.

    Parameters
    ----------
    exp : memprior.experiments.fwi.FWIExperiment
    truth : memprior.fwi.Truth
    runs : dict, optional
        Precomputed ``{(N, noise, step_size): SampleResult}`` of ``dps_normalized``
        (:func:`memprior.experiments.fwi.app_runs`).
    n, steps, seed : settings of on-demand runs.
    """

    def __init__(self, exp, truth, runs=None, n: int = 4, steps: int = 25, seed: int = 0):
        self.exp, self.truth = exp, truth
        self.runs = dict(runs or {})
        self.n = check_int("n", n, low=1)
        self.steps = check_int("steps", steps, low=2, high=exp.schedule.n_steps)
        self.seed = check_seed(seed, "seed")
        self._obs = {}

    def observation(self, noise: float):
        key = round(float(noise), 6)
        if key not in self._obs:
            self._obs[key] = self.exp.observe(self.truth, noise=float(noise))
        return self._obs[key]

    def run(self, N: int, noise: float, step_size: float):
        key = (int(N), round(float(noise), 6), round(float(step_size), 6))
        for k, v in self.runs.items():
            if (int(k[0]), round(float(k[1]), 6), round(float(k[2]), 6)) == key:
                return v
        res = self.exp.sample("dps_normalized", int(N), self.observation(noise), n=self.n, step_size=float(step_size),
                              steps=self.steps, seed=self.seed)
        self.runs[key] = res
        return res


def _traces(state: AppState, N: int, noise: float, step_size: float) -> tuple[list, str]:
    obs = state.observation(noise)
    lk = state.exp.lookup(N, obs)
    res = state.run(N, noise, step_size)
    per = lk.nll.numpy() / obs.n_data
    order = np.argsort(per)
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(1, order.size + 1)
    picked = res.nearest.numpy()
    mis = res.misfit_per_datum.numpy()
    tr = [
        go.Scatter(x=np.arange(1, per.size + 1), y=per[order].astype(np.float32), mode="markers",
                   marker=dict(color=PALETTE[0], size=5), name="training models (sorted)", xaxis="x", yaxis="y"),
        go.Scatter(x=rank_of[picked], y=per[picked].astype(np.float32), mode="markers",
                   marker=dict(color=style("DPS")["color"], size=11, symbol="x"), name="models DPS landed on",
                   xaxis="x", yaxis="y"),
        go.Scatter(x=np.arange(1, mis.size + 1), y=mis.astype(np.float32), mode="markers",
                   marker=dict(color=style("paper")["color"], size=9), name="DPS samples", xaxis="x2",
                   yaxis="y2"),
        go.Scatter(x=[0.5, mis.size + 0.5], y=[per[order[0]]] * 2, mode="lines",
                   line=style("exact", dash="dash"), name="lookup best (exact posterior)",
                   xaxis="x2", yaxis="y2"),
    ]
    title = (f"N = {N}, noise {100 * noise:.0f} %, η = {step_size:g}: exp(H) = {lk.exp_H:.3f}; "
             f"DPS landed on {len(set(picked.tolist()))} distinct models, median lookup rank "
             f"{int(np.median(rank_of[picked]))} of {N}")
    return tr, title


def fwi_app(state: AppState, sizes=(50, 200, 1000), noises=(0.02, 0.05, 0.1), step_sizes=(0.02, 0.05, 0.07),
            live: bool = True) -> App:
    """An :class:`~memprior.widgets.App` over N, noise level and DPS step size.

    Left: misfit per datum of every training model, sorted (the lookup), with the models the
    normalized-DPS samples landed on.  Right: each sample's own misfit against the lookup's best.

    Parameters
    ----------
    state : AppState
    sizes, noises, step_sizes : the choices offered (sizes must be training-set sizes of the experiment)
    live : bool
        ``False`` draws on a plain figure (same callback), for timing without a browser.
    """
    import ipywidgets as W

    if not isinstance(state, AppState):
        raise TypeError(f"state: expected an AppState, got {type(state).__name__}")
    for N in sizes:
        check_int("sizes", N, low=2, high=state.exp.n_max)
    controls = {
        "N": W.Dropdown(options=list(sizes), value=sizes[min(1, len(sizes) - 1)], description="N"),
        "noise": W.Dropdown(options=[(f"{100 * v:.0f} %", v) for v in noises], value=noises[min(1, len(noises) - 1)],
                            description="noise"),
        "step_size": W.Dropdown(options=list(step_sizes), value=step_sizes[min(1, len(step_sizes) - 1)],
                                description="step η"),
    }
    fig = make_subplots(rows=1, cols=2, subplot_titles=("lookup: every training model", "DPS samples"))
    tr, title = _traces(state, controls["N"].value, controls["noise"].value, controls["step_size"].value)
    for t in tr:
        fig.add_trace(t)
    fig.update_xaxes(title_text="rank by misfit", type="log", row=1, col=1)
    fig.update_yaxes(title_text="misfit per datum (1 = noise level)", type="log", row=1, col=1)
    fig.update_xaxes(title_text="sample", row=1, col=2)
    fig.update_yaxes(title_text="misfit per datum", type="log", row=1, col=2)
    fig.update_layout(height=430, title=title, template=template(),
                      legend=dict(orientation="h", y=-0.3))

    def update(f, N, noise, step_size):
        new, ttl = _traces(state, N, noise, step_size)
        for k, t in enumerate(new):
            f.data[k].x = t.x
            f.data[k].y = t.y
        f.layout.title.text = ttl

    return App(controls, fig, update, title="FWI with a memorized prior: N, noise and step size", live=live)

"""memprior: memorization in learned priors for Bayesian geophysical inversion.

The library behind the memprior book.  One module per idea; numerics never
import the plotting or the widgets.

Modules
-------
mixture     Gaussian-mixture (memorized) priors: log-density, score, denoiser, sampling.
posterior   Lookup posterior, exact (quadrature) and linearized mixture posteriors.
diffusion   Noise schedules, closed-form memorized denoiser, small MLP denoiser, samplers.
guidance    Posterior samplers: DPS, the paper's variant, exact reweighting, SMC.
wave        2-D Helmholtz solver with PML, adjoint-state gradient, Jacobians.
pardiso     Optional ctypes binding of MKL PARDISO (LDLᵀ of complex-symmetric matrices) for wave.
velocity    Velocity-model families and the KL/cosine basis.
fwi         The full-waveform-inversion problem (configuration, forward map, likelihood, training sets).
trained     Diffusion priors trained on the FWI training sets, and their shipped weights.
metrics     Memorization metrics and null baselines.
plots       Plotly builders in one style, and kernel-free slider figures.
widgets     ipywidgets apps built on plots.
sweep       Paper-scale DPS-for-FWI sweeps as independent tasks, serial or on Dask (python -m memprior.sweep).
"""
from importlib import import_module as _import_module

__version__ = "0.1.0"

_SUBMODULES = ("mixture", "posterior", "diffusion", "guidance", "wave", "velocity", "metrics", "fwi", "trained", "plots",
               "widgets", "pardiso", "sweep")


def __getattr__(name):
    # Lazy submodule access (``memprior.posterior``) keeps ``import memprior`` light.
    if name in _SUBMODULES:
        return _import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))

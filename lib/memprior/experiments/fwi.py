"""Chapter 7, "DPS for full-waveform inversion": the experiment and the chapter's sweeps.

The inverse problem itself (configuration, KL forward map, complex-Gaussian likelihood,
training sets) is :mod:`memprior.fwi`.  This module runs the experiment on it:

* :class:`FWIExperiment`: the KL basis, the Helmholtz solver, a transmission geometry, a
  seeded pool of random-field training models with their forward data (one LU per model,
  computed once), true models *not* in the training set (a Gaussian lens and an
  out-of-distribution random field), noisy data, and methods for the exact lookup, the
  samplers (DPS, the paper's normalized variant, the exact reweighted sampler), the
  linearized Gaussian-mixture posterior and the memorization metrics with their null
  baselines.  Its results are :class:`LookupResult` and :class:`SampleResult`;
  :func:`run_pipeline` runs all of it per training-set size (the paper-scale benchmark).
* the chapter's computations, each a function of the experiment with the chapter's settings
  as defaults, returning a frozen dataclass of numpy arrays and numbers:

  ==================================  ====================================================================
  :func:`setting`                     sizes, cost of the training data, what the basis represents
  :func:`lookup_table`                the exact posterior (the lookup) for every truth and N
  :func:`compare_samplers`            DPS, the normalized variant and the exact sampler at one N
  :func:`exact_check`                 the exact sampler's frequencies against the lookup weights
  :func:`linearized_sweep`            the linearized mixture against the prior bandwidth sigma
  :func:`memorization_sweep`          memorization fractions of the DPS samples and of the null, per N
  :func:`mlp_comparison`              a small trained network against the closed form at d = 16
  :func:`step_lengths`                which models the normalized variant commits to, per step length
  :func:`app_runs`                    the precomputed runs of the chapter's live app
  :func:`representation`              the basis's floor, the background and the lookup per truth; the index range
  :func:`memorization_transition`     trained priors: memorized fraction vs N, with the null and intervals
  :func:`denoiser_gap`                trained against closed-form denoiser across noise levels, per N
  :func:`memorization_phase`          memorized fraction over N x network width
  :func:`trained_dps`                 normalized DPS with the trained priors against the lookup (stored runs)
  :func:`protocol`                    the paper's protocol against the book's, with the measured effects
  ==================================  ====================================================================

Runs of the closed-form samplers are kept by the experiment (:meth:`FWIExperiment.sample`), so
the functions share them: calling them in any order gives the same numbers.

Medians follow :func:`torch.median`: for an even count, the lower of the two middle values.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import diffusion, guidance, metrics, posterior, wave
from .. import trained
from .. import velocity as V
from .._checks import as_tensor, check_int, check_positive, check_seed, progress
from ._common import releases_memory
from ..fwi import (FWIConfig, KLForward, Observation, TrainingSet, Truth, commitment_curves,
                   commitment_steps, complex_noise, complex_nll, gamma_of, lookup_from_misfits, random_field_models,
                   schedule_for, to_complex, to_real, zscore)

__all__ = [
    # the experiment (FWIConfig and commitment_curves are memprior.fwi's, re-exported for the chapter)
    "FWIConfig", "FWIExperiment", "LookupResult", "SampleResult", "METHODS", "run_pipeline", "commitment_curves",
    # the chapter's computations and their results
    "setting", "Setting", "lookup_table", "LookupTable", "compare_samplers", "SamplerComparison", "SamplerRun",
    "exact_check", "ExactCheck", "linearized_sweep", "LinearizedSweep", "memorization_sweep",
    "MemorizationSweep", "mlp_comparison", "MLPComparison", "step_lengths", "StepLengths", "app_runs",
    "protocol", "Protocol",
]


# ----------------------------------------------------------------------------- results of the experiment
@dataclass(frozen=True)
class LookupResult:
    """The likelihood-weighted lookup (posterior under the memorized prior).

    Attributes
    ----------
    N : int
    nll : Tensor [N]
        ``sum |d_obs - F(m_n)|^2 / sigma_d^2`` per training model.
    weights : Tensor [N]
        ``softmax(-nll)``.
    exp_H : float
        Effective number of components, ``exp(entropy(weights))``.
    best : int
        Index of the largest weight.
    misfit_per_datum : float
        ``nll[best] / n_data``: 1 means fitting to the noise level.
    truth_misfit_per_datum : float
        The same for the true model (about 1).
    gap : float
        ``nll`` of the second-best model minus the best: the log-odds against the runner-up.
    v_rmse : float
        RMS velocity difference (km/s) between the best training model and the truth.
    rel_error : float
        ``||m_best - m_true|| / ||m_true - m_bar||``.
    rel_error_kl : float
        The same for the truth's own KL projection (the best the basis can do).
    u_dist : float
        Distance in z-scored coordinates between the best model and the truth's projection.
    """

    N: int
    nll: torch.Tensor
    weights: torch.Tensor
    exp_H: float
    best: int
    misfit_per_datum: float
    truth_misfit_per_datum: float
    gap: float
    v_rmse: float
    rel_error: float
    rel_error_kl: float
    u_dist: float


@dataclass(frozen=True)
class SampleResult:
    """Samples from one posterior sampler.

    Attributes
    ----------
    method : str
        ``"dps"``, ``"dps_normalized"`` or ``"exact"``.
    N : int
    u : Tensor [n, d]
        Samples in z-scored coordinates.
    z : Tensor [n, d]
        The same in raw KL coefficients.
    nearest : LongTensor [n]
        Nearest training model (z-scored distance).
    nearest_dist : Tensor [n]
        Distance to it (z-scored units).
    commit : LongTensor [n]
        Diffusion level at which each sample committed to its final training model
        (``T-1``: from the start, ``-1``: never); all ``T-1`` for the exact sampler, which
        draws its training index from the start.
    misfit_per_datum : Tensor [n]
        Data misfit ``sum |d_obs - F(m)|^2 / (sigma_d^2 n_data)`` of each sample.
    n_solver_calls : int
        Models sent to the solver during sampling.
    n_factorizations : int
        Sparse LU factorizations actually done (a model met again reuses its cached factors).
    seconds : float
        Wall time.
    settings : dict
    trajectory : dict or None
        The recorded iterates ``{"t", "x", "x0_hat"}`` (DPS variants), see
        :class:`memprior.diffusion.TrajectoryRecorder`.
    """

    method: str
    N: int
    u: torch.Tensor
    z: torch.Tensor
    nearest: torch.Tensor
    nearest_dist: torch.Tensor
    commit: torch.Tensor
    misfit_per_datum: torch.Tensor
    n_solver_calls: int
    n_factorizations: int
    seconds: float
    settings: dict = field(default_factory=dict)
    trajectory: dict | None = None


# ----------------------------------------------------------------------------- the experiment
#: The samplers :meth:`FWIExperiment.sample` runs.
METHODS = ("dps", "dps_normalized", "exact")


class FWIExperiment:
    """Everything the chapter-7 experiment needs, built once and cached.

    Parameters
    ----------
    config : FWIConfig, optional
        Default :class:`FWIConfig` (the book's small setting); ``FWIConfig.paper()`` for the
        paper's.
    show_progress : bool
        tqdm bars for the long loops (silent in the built book anyway).

    Attributes
    ----------
    cfg : FWIConfig
    basis : memprior.velocity.KLBasis
    solver : memprior.wave.Helmholtz2D
    acq : memprior.wave.Acquisition
        Transmission geometry: sources on the top row, receivers on the bottom row.
    schedule : memprior.diffusion.Schedule
    pool_z : Tensor [N_max, d]
        Raw KL coefficients of the seeded pool of random-field models; the training set of
        size N is its first N rows (nested sets).
    pool_m : Tensor [N_max, nx, nz]
        Their squared slowness.
    timings : dict
        Wall seconds of the expensive steps.
    """

    def __init__(self, config: FWIConfig | None = None, *, show_progress: bool = True):
        cfg = FWIConfig() if config is None else config
        if not isinstance(cfg, FWIConfig):
            raise TypeError(f"config: expected an FWIConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.show_progress = bool(show_progress)
        self.basis = V.KLBasis(cfg.grid, cfg.grid, K=cfg.K)
        # cache enough factorizations for a batch of committed samples (one LU per distinct model)
        self.solver = wave.Helmholtz2D(cfg.grid, cfg.grid, cfg.dx, npml=cfg.npml, order=cfg.order,
                                  cache_size=max(16, 2 * cfg.n_samples + 4))
        self.acq = wave.Acquisition.transmission(cfg.grid, cfg.grid, cfg.dx, cfg.n_src, cfg.n_rec)
        self.schedule = schedule_for(cfg.n_steps)
        self.n_max = max(cfg.sizes)
        self.pool_z, self.pool_m = random_field_models(self.basis, self.n_max, cfg.seed)
        ppw = 1.0 / math.sqrt(float(self.pool_m.max())) / (cfg.freq * cfg.dx)
        if ppw < 4.0:
            raise ValueError(f"freq: {cfg.freq} Hz gives {ppw:.2f} points per wavelength in the slowest training "
                             "model; need >= 4 (lower freq or refine the grid)")
        self.points_per_wavelength = ppw
        self._pool_data = None
        self._sets: dict[int, TrainingSet] = {}
        self._fwd: dict[int, KLForward] = {}
        self._jac: dict[tuple, torch.Tensor] = {}
        self._obs: dict[tuple, Observation] = {}
        self._runs: dict[tuple, SampleResult] = {}
        self.timings: dict[str, float] = {}

    def __repr__(self) -> str:
        c = self.cfg
        return (f"FWIExperiment(grid={c.grid}, dx={c.dx:.4g} km, freq={c.freq} Hz, {c.n_src} sources / {c.n_rec} "
                f"receivers, d={c.d}, sizes={c.sizes})")

    # -- training data
    def _progress(self, it, desc, total=None):
        return progress(it, desc=desc, total=total) if self.show_progress else it

    @property
    def pool_data(self) -> torch.Tensor:
        """Complex data ``[N_max, n_src, n_rec]`` of every pool model (computed once, one LU each)."""
        return self.pool_data_upto(self.n_max)

    def pool_data_upto(self, N: int) -> torch.Tensor:
        """Complex data of the first ``N`` pool models, ``[N, n_src, n_rec]``; computed incrementally."""
        N = check_int("N", N, low=1, high=self.n_max)
        have = 0 if self._pool_data is None else self._pool_data.shape[0]
        if have < N:
            t0 = time.perf_counter()
            out = [torch.as_tensor(self.solver.forward(m, self.cfg.freq, self.acq))
                   for m in self._progress(self.pool_m[have:N], "forward data of the training pool")]
            new = torch.stack(out)
            self._pool_data = new if self._pool_data is None else torch.cat([self._pool_data, new])
            self.timings["pool_data"] = self.timings.get("pool_data", 0.0) + time.perf_counter() - t0
        return self._pool_data[:N]

    def training_set(self, N: int) -> TrainingSet:
        """The first ``N`` pool models, z-scored with their own statistics (2 <= N <= N_max)."""
        N = check_int("N", N, low=2, high=self.n_max)
        if N not in self._sets:
            z = self.pool_z[:N]
            u, mu, s = zscore(z)
            self._sets[N] = TrainingSet(z=z, u=u, mu=mu, s=s, m=self.pool_m[:N], index=torch.arange(N))
        return self._sets[N]

    def forward(self, N: int, cached: bool = True) -> KLForward:
        """The forward map in the z-scored coordinates of training set ``N``.

        With ``cached=True`` the training models' data are computed once (one LU per model)
        and returned without solving; ``cached=False`` skips that precomputation (for
        samplers that never evaluate the training models themselves).
        """
        ts = self.training_set(N)
        if not cached:
            return KLForward(self.solver, self.acq, self.cfg.freq, self.basis, ts.mu, ts.s)
        if N not in self._fwd:
            self._fwd[N] = KLForward(self.solver, self.acq, self.cfg.freq, self.basis, ts.mu, ts.s,
                                     cache=(ts.u, to_real(self.pool_data_upto(N))))
        return self._fwd[N]

    def velocities(self, N: int, u) -> torch.Tensor:
        """Velocity ``[B, nx, nz]`` (km/s) of z-scored coefficients ``u [B, d]`` of training set ``N``."""
        ts = self.training_set(N)
        u = as_tensor("u", u, ndim=2)
        if u.shape[1] != self.basis.d:
            raise ValueError(f"u: expected shape [B, {self.basis.d}], got {list(u.shape)}")
        return V.m_to_v(self.basis.coeffs_to_m(ts.to_z(u.to(torch.float64))))

    def fresh_models(self, n: int, seed: int = 10_000) -> torch.Tensor:
        """Raw KL coefficients ``[n, d]`` of fresh random-field models (the null baseline's draws)."""
        seed = check_seed(seed, "seed")
        seed = check_seed(seed, "seed")
        if seed == self.cfg.seed:
            raise ValueError(f"seed: must differ from the training pool's seed {self.cfg.seed}")
        return random_field_models(self.basis, n, seed)[0]

    # -- truths and data
    def truth(self, kind: str = "lens", seed: int = 777) -> Truth:
        """A true model that is not in the training set.

        ``"lens"``: a slow Gaussian lens (``cfg.lens_v0`` km/s background, ``cfg.lens_v0 + cfg.lens_dv``
        at the centre, widths ``cfg.lens_width``; the book's default: 2 km/s, 1.6 km/s, 15 % of the side).
        ``"prior"``: a fresh draw of the training distribution (a random field projected onto the basis,
        seed ``seed``, never the pool's): inside the prior's span.
        ``"ood"``: an out-of-distribution random field (alpha = 2, tau = 3: rougher and longer-range
        than the training fields' alpha = 3, tau = 5), rescaled to 1.7-2.7 km/s.
        """
        seed = check_seed(seed, "seed")
        c = self.cfg
        seed = check_seed(seed, "seed")
        if kind == "lens":
            v = V.gaussian_lens(c.grid, c.grid, c.dx, v0=c.lens_v0, dv=c.lens_dv, width=c.lens_width)
        elif kind == "prior":
            if seed == c.seed:
                raise ValueError(f"seed: must differ from the training pool's seed {c.seed}")
            v = V.m_to_v(random_field_models(self.basis, 1, seed)[1][0])
        elif kind == "ood":
            g = torch.Generator().manual_seed(seed)
            v = V.rescale(V.grf(1, c.grid, c.grid, alpha=2.0, tau=3.0, generator=g)[0], 1.7, 2.7)
        else:
            raise ValueError(f"kind: must be one of {_ALL_TRUTHS}, got {kind!r}")
        m = V.v_to_m(v)
        z = self.basis.project(m)
        return Truth(name=kind, v=v, m=m, z=z, m_kl=self.basis.reconstruct(z))

    def observation(self, kind: str = "lens", noise: float | None = None, seed: int = 1) -> Observation:
        """The noisy data of the named truth (:meth:`truth`), made once and kept (see :meth:`observe`)."""
        seed = check_seed(seed, "seed")
        noise = self.cfg.noise if noise is None else check_positive("noise", noise)
        key = (kind, float(noise), check_seed(seed, "seed"))
        if key not in self._obs:
            self._obs[key] = self.observe(self.truth(kind), noise=noise, seed=seed)
        return self._obs[key]

    def observe(self, truth: Truth, noise: float | None = None, seed: int = 1) -> Observation:
        """Noisy data of ``truth``: ``d_obs = d_clean + e``, ``E|e|^2 = sigma_d^2``, ``sigma_d = noise * rms|d_clean|``
        (``noise * max|d_clean|`` when ``cfg.noise_ref == "max"``, the paper's convention).

        The same seed gives the same standard-normal draw at every noise level.
        """
        seed = check_seed(seed, "seed")
        if not isinstance(truth, Truth):
            raise TypeError(f"truth: expected a Truth (from FWIExperiment.truth), got {type(truth).__name__}")
        noise = self.cfg.noise if noise is None else check_positive("noise", noise)
        d = torch.as_tensor(self.solver.forward(truth.m, self.cfg.freq, self.acq))
        sigma_d = noise * float(d.abs().max() if self.cfg.noise_ref == "max" else d.abs().pow(2).mean().sqrt())
        g = torch.Generator().manual_seed(check_seed(seed, "seed"))
        e = complex_noise(d.shape, 1.0, g) * sigma_d
        d_obs = d + e
        return Observation(truth=truth, d_clean=d, d_obs=d_obs, noise=noise, sigma_d=sigma_d,
                           gamma=gamma_of(sigma_d), y=to_real(d_obs),
                           nll_truth=float(complex_nll(d, d_obs, sigma_d)))

    # -- the theory: exact lookup
    def lookup(self, N: int, obs: Observation) -> LookupResult:
        """The posterior under the memorized prior of training set ``N``: a likelihood-weighted lookup."""
        ts = self.training_set(N)
        nll = complex_nll(self.pool_data_upto(N), obs.d_obs, obs.sigma_d)
        w = lookup_from_misfits(nll * self.cfg.nll_factor)  # the likelihood with the data's weight (1 by default)
        order = torch.argsort(nll)
        best = int(order[0])
        gap = float(nll[order[1]] - nll[order[0]]) * self.cfg.nll_factor
        t = obs.truth
        dm = t.m - V.M_BAR
        vb = V.m_to_v(ts.m[best])
        return LookupResult(
            N=N, nll=nll, weights=w, exp_H=posterior.effective_components(w), best=best,
            misfit_per_datum=float(nll[best]) / obs.n_data,
            truth_misfit_per_datum=obs.nll_truth / obs.n_data, gap=gap,
            v_rmse=float(((vb - t.v) ** 2).mean().sqrt()),
            rel_error=float((ts.m[best] - t.m).norm() / dm.norm()),
            rel_error_kl=float((t.m_kl - t.m).norm() / dm.norm()),
            u_dist=float((ts.u[best] - ts.to_u(t.z)).norm()))

    # -- samplers
    def denoiser(self, N: int):
        """The closed-form memorized denoiser of training set ``N`` (z-scored coordinates)."""
        return diffusion.MemorizedDenoiser(self.training_set(N).u, self.schedule)

    def sample(self, method: str, N: int, obs: Observation, n: int | None = None, *, seed: int = 0,
               zeta: float = 1.0, step_size: float = 0.05, steps: int | None = None, denoiser=None,
               rule: str = "chung", cached: bool = True) -> SampleResult:
        """Run one posterior sampler.

        Parameters
        ----------
        method : {"dps", "dps_normalized", "exact"}
            DPS of Chung et al. (autograd through the denoiser, step ``zeta``), the paper's
            normalized variant (step length ``step_size``), or the exact reweighted sampler of the
            memorized prior.
        N : int
            Training-set size.
        obs : Observation
        n : int, optional
            Number of samples (default ``cfg.n_samples``).
        seed : int
            Seeds the sampler's generator.
        zeta, step_size, rule : sampler settings (see :mod:`memprior.guidance`).
        steps : int, optional
            Visit only ``steps`` evenly spaced levels of the schedule.
        denoiser : optional
            Any denoiser in these coordinates (default: the closed-form memorized one).
        cached : bool
            Precompute the training models' data (needed by ``"exact"``); see :meth:`forward`.

        Runs with the closed-form denoiser are kept: the same call, on the same data, returns the
        same :class:`SampleResult` without sampling again (so the chapter's sweeps share runs).
        """
        seed = check_seed(seed, "seed")
        if method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
        if not isinstance(obs, Observation):
            raise TypeError(f"obs: expected an Observation, got {type(obs).__name__}")
        n = self.cfg.n_samples if n is None else check_int("n", n, low=1)
        ts = self.training_set(N)
        if method == "exact" and not cached:
            raise ValueError("cached: the exact sampler needs the training models' data (cached=True)")
        key = None
        if denoiser is None:
            fp = hashlib.sha1(obs.y.detach().to(torch.float64).numpy().tobytes()).hexdigest()
            key = (method, ts.n, n, int(seed), float(zeta), float(step_size), steps, rule, bool(cached), fp,
                   obs.gamma)
            if key in self._runs:
                return self._runs[key]
        fwd = self.forward(N, cached=cached)
        closed = self.denoiser(N)
        den = closed if denoiser is None else denoiser
        rec = diffusion.TrajectoryRecorder()
        g = torch.Generator().manual_seed(check_seed(seed, "seed"))
        calls0 = fwd.n_calls
        lu0 = self.solver.n_factorizations
        t0 = time.perf_counter()
        T = self.schedule.n_steps
        c = self.cfg.nll_factor  # the data's weight in the likelihood (1 by default; the paper's code: 1/2)
        x_T = None if method == "exact" else self.start_points(N, n, g)
        if method == "dps":  # the guidance step is the likelihood's gradient times c
            u = guidance.dps_sample(den, self.schedule, fwd, obs.y, obs.gamma, n, zeta=zeta * c, generator=g,
                                    steps=steps, rule=rule, callback=rec, x_T=x_T)
        elif method == "dps_normalized":  # a unit-length direction: c cancels
            u = guidance.dps_normalized_sample(den, self.schedule, fwd, obs.y, n, step_size=step_size, generator=g,
                                               steps=steps, callback=rec, x_T=x_T)
        else:  # c |r|^2 / sigma_d^2 = |r|^2 / (sigma_d / sqrt(c))^2
            u, _ = guidance.exact_posterior_sample(ts.u, fwd, obs.y, obs.gamma / math.sqrt(c), self.schedule, n,
                                                   generator=g, steps=steps, return_index=True)
        secs = time.perf_counter() - t0
        u = u.detach().to(torch.float64)
        traj = None
        if method == "exact":
            commit = torch.full((n,), T - 1, dtype=torch.long)
        else:
            traj = rec.trajectory()
            commit = commitment_steps(closed if not isinstance(den, diffusion.MemorizedDenoiser) else den, traj)
        dist, idx = metrics.nearest(u, ts.u)
        calls = fwd.n_calls - calls0
        lus = self.solver.n_factorizations - lu0
        data = to_complex(fwd(u), fwd.n_src, fwd.n_rec)
        mis = complex_nll(data, obs.d_obs, obs.sigma_d) / obs.n_data
        res = SampleResult(method=method, N=N, u=u, z=ts.to_z(u), nearest=idx, nearest_dist=dist, commit=commit,
                           misfit_per_datum=mis, n_solver_calls=calls, n_factorizations=lus, seconds=secs,
                           settings=dict(zeta=zeta, step_size=step_size, steps=steps, seed=seed, rule=rule, n=n),
                           trajectory=traj)
        if key is not None:
            self._runs[key] = res
        return res

    def start_points(self, N: int, n: int, generator: torch.Generator | None = None):
        """Starting points of DPS for training set ``N`` at level ``T-1``, as ``cfg.dps_start`` says.

        ``"noise"``: ``None``, the sampler's own start (the memorized prior's terminal marginal).
        ``"background"`` (the paper's FWI script): the homogeneous background, raw coefficients ``z = 0``,
        in the prior's z-scored coordinates ``u_b = -mu / s``, noised to level ``T-1``:
        ``sqrt(abar[T-1]) u_b + sqrt(1 - abar[T-1]) eps`` with ``eps ~ N(0, I)`` drawn from ``generator``.
        Returns ``Tensor [n, d]`` (float64) or ``None``.
        """
        n = check_int("n", n, low=1)
        if self.cfg.dps_start == "noise":
            return None
        ts = self.training_set(N)
        u_b = ts.to_u(torch.zeros(1, self.basis.d, dtype=torch.float64))
        a = self.schedule.alpha_bar[-1].to(torch.float64)
        eps = torch.randn((n, self.basis.d), generator=generator, dtype=torch.float64)
        return a.sqrt() * u_b + (1 - a).sqrt() * eps

    # -- linearized Gaussian mixture
    def jacobians(self, N: int, index) -> torch.Tensor:
        """Jacobians ``[k, 2M, d]`` (real-stacked data, z-scored coordinates) at training models ``index``."""
        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        key = (N, tuple(idx.tolist()))
        if key not in self._jac:
            t0 = time.perf_counter()
            self._jac[key] = self.forward(N).jacobian(self.training_set(N).u[idx])
            self.timings[f"jacobians N={N} k={idx.numel()}"] = time.perf_counter() - t0
        return self._jac[key]

    def linearized(self, N: int, obs: Observation, sigma: float, logdet: bool = True, top: int | None = None):
        """Linearized Gaussian-mixture posterior of the prior ``p_sigma`` (z-scored coordinates).

        Components are built at the ``top`` training models with the smallest data misfit
        (default ``min(16, N)``; the others carry lookup log-odds below ``-gap``, see
        :class:`LookupResult`), with Jacobians from multi-RHS solves.  Returns
        ``(LinearizedMixture, index [top])``.
        """
        sigma = check_positive("sigma", sigma, square=True)
        N = check_int("N", N, low=2, high=self.n_max)
        top = min(16, N) if top is None else check_int("top", top, low=1, high=N)
        lk = self.lookup(N, obs)
        idx = torch.argsort(lk.nll)[:top]
        J = self.jacobians(N, idx)
        mix = posterior.linearized_mixture(self.forward(N), self.training_set(N).u[idx], obs.y, sigma, obs.gamma,
                                 logdet=logdet, jacobian=J)
        return mix, idx

    # -- memorization
    def memorization(self, z_samples, N: int, fresh_z, space: str = "raw") -> dict:
        """Memorization scores of samples and of the null (fresh models), against training set ``N``.

        Parameters
        ----------
        z_samples : Tensor [B, d]
            Raw KL coefficients of generated samples.
        N : int
        fresh_z : Tensor [M, d]
            Raw coefficients of fresh random-field models (:meth:`fresh_models`).
        space : {"raw", "zscored"}
            Where distances are measured (the paper: raw coefficients).

        Returns
        -------
        dict with ``r``, ``q`` (d1/d2), ``frac_r``, ``frac_q`` (and ``*_se``) for the samples and
        ``null_r``, ``null_q``, ``null_frac_r``, ``null_frac_q`` for the fresh models.
        """
        ts = self.training_set(N)
        if space not in ("raw", "zscored"):
            raise ValueError(f"space: must be 'raw' or 'zscored', got {space!r}")
        tr = ts.z if space == "raw" else ts.u
        zs = as_tensor("z_samples", z_samples, ndim=2)
        fz = as_tensor("fresh_z", fresh_z, ndim=2)
        if space == "zscored":
            zs, fz = ts.to_u(zs), ts.to_u(fz)
        r, q = metrics.nn_ratio(zs, tr), metrics.d1_d2(zs, tr)
        nr, nq = metrics.null_baseline(fz, tr, "nn_ratio"), metrics.null_baseline(fz, tr, "d1_d2")
        out = dict(N=N, r=r, q=q, null_r=nr, null_q=nq)
        for key, s, thr in (("frac_r", r, metrics.PAPER_THRESHOLD), ("frac_q", q, metrics.D1D2_THRESHOLD),
                            ("null_frac_r", nr, metrics.PAPER_THRESHOLD), ("null_frac_q", nq, metrics.D1D2_THRESHOLD)):
            out[key], out[key + "_se"] = metrics.memorized_fraction(s, thr)
        return out

    # -- a trained network at reduced dimension
    def train_mlp(self, N: int, *, steps: int = 1500, hidden: int = 128, depth: int = 3, seed: int = 0,
                  cache: bool = True):
        """Train a small MLP denoiser on training set ``N`` (z-scored coordinates).

        Meant for a reduced basis (e.g. ``K = 4``, ``d = 16``): see
        :func:`memprior.diffusion.train_denoiser` for the loss, EMA and caching.
        """
        seed = check_seed(seed, "seed")
        t0 = time.perf_counter()
        net = diffusion.train_denoiser(self.training_set(N).u, self.schedule, steps=steps, hidden=hidden, depth=depth,
                             seed=seed, cache=cache, show_progress=self.show_progress)
        self.timings[f"train_mlp N={N}"] = time.perf_counter() - t0
        return net


def run_pipeline(exp: FWIExperiment, truth: str = "lens", sizes=None, methods=METHODS, n: int | None = None,
                 n_fresh: int = 200, sigma: float = 0.05, top: int = 8, seed: int = 0, zeta: float = 1.0,
                 step_size: float = 0.05) -> dict:
    """The whole experiment for one truth: lookup, samplers, linearized mixture, memorization, per N.

    Used for the paper-scale run (``benchmarks/bench_fwi.py``).  Returns a dict with the
    per-N results and the wall time of each stage.
    """
    seed = check_seed(seed, "seed")
    if not isinstance(exp, FWIExperiment):
        raise TypeError(f"exp: expected an FWIExperiment, got {type(exp).__name__}")
    sizes = exp.cfg.sizes if sizes is None else tuple(sizes)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: each must be one of {METHODS}, got {m!r}")
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    _ = exp.pool_data
    stage = {"pool data": time.perf_counter() - t0}
    tru = exp.truth(truth)
    obs = exp.observe(tru)
    fresh = exp.fresh_models(n_fresh)
    res = {}
    for N in sizes:
        t0 = time.perf_counter()
        lk = exp.lookup(N, obs)
        samples = {m: exp.sample(m, N, obs, n, seed=seed, zeta=zeta, step_size=step_size) for m in methods}
        mix, idx = exp.linearized(N, obs, sigma, top=min(top, N))
        mem = {m: exp.memorization(s.z, N, fresh) for m, s in samples.items()}
        res[N] = dict(lookup=lk, samples=samples, linearized=mix, linearized_index=idx, memorization=mem)
        stage[f"N={N}"] = time.perf_counter() - t0
    stage["total"] = time.perf_counter() - t_all
    return dict(config=exp.cfg, observation=obs, results=res, seconds=stage)


# ----------------------------------------------------------------------------- the chapter's computations
_LABELS = {"dps": "DPS", "dps_normalized": "DPS (normalized)", "exact": "exact"}
_TRUTHS = ("lens", "ood")
_ALL_TRUTHS = ("lens", "prior", "ood")      # "prior": a fresh draw inside the prior's span


def _check_exp(exp) -> FWIExperiment:
    if not isinstance(exp, FWIExperiment):
        raise TypeError(f"exp: expected an FWIExperiment (memprior.experiments.fwi), got {type(exp).__name__}")
    return exp


def _check_truth(truth) -> str:
    if truth not in _ALL_TRUTHS:
        raise ValueError(f"truth: must be one of {_ALL_TRUTHS}, got {truth!r}")
    return truth


def _check_size(exp: FWIExperiment, name: str, N) -> int:
    return check_int(name, N, low=2, high=exp.n_max)


def _np(x) -> np.ndarray:
    """A numpy copy of a tensor (never a view of the experiment's caches)."""
    return x.detach().cpu().numpy().copy() if isinstance(x, torch.Tensor) else np.array(x)


def _median(x) -> float:
    """``torch.median``: the lower middle value for an even count."""
    return float(torch.as_tensor(x).to(torch.float64).median())


def _ranks(nll: torch.Tensor) -> torch.Tensor:
    """Rank of every training model by data misfit, ``[N]``: 1 = best fit."""
    order = torch.argsort(nll)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, nll.numel() + 1)
    return rank


def _index_of(values: np.ndarray, value, name: str) -> int:
    hit = np.flatnonzero(values == value)
    if hit.size == 0:
        raise ValueError(f"{name}: must be one of {values.tolist()}, got {value!r}")
    return int(hit[0])


def _field(obj, name: str, fields: tuple) -> np.ndarray:
    if name not in fields:
        raise ValueError(f"field: must be one of {fields}, got {name!r}")
    return getattr(obj, name)


# -- the setting
@dataclass(frozen=True)
class Setting:
    """Sizes of the experiment, the cost of its training data, and what the basis represents.

    Attributes
    ----------
    grid : int
        Grid points per side.
    dx_m : float
        Grid spacing (m).
    dx : float
        Grid spacing (km).
    freq : float
        Frequency (Hz).
    points_per_wavelength : float
        Grid points per wavelength in the slowest training model.
    n_src, n_rec, n_data : int
        Sources, receivers and complex data (``n_src * n_rec``).
    d : int
        KL coefficients.
    n_max : int
        Models in the pool (the largest N).
    pool_seconds : float
        Wall time of the forward data of the whole pool (s).
    ms_per_model : float
        The same per model (ms).
    kl_error_lens, kl_error_ood : float
        ``||m_KL - m|| / ||m - m_bar||`` of each truth's least-squares KL projection.
    nll_truth : float
        ``sum |d_obs - F(m_true)|^2 / sigma_d^2`` for the lens: a sum of ``n_data`` Exp(1) variables.
    nll_real_stacked : float
        ``||y - [Re F, Im F]||^2 / (2 gamma^2)`` with ``gamma = sigma_d / sqrt(2)``: equal to ``nll_truth``.
    truth_misfit_per_datum : float
        ``nll_truth / n_data`` (about 1).
    titles : tuple of str
        Panel titles of ``velocities``.
    velocities : ndarray [n_show + 4, n, n]
        km/s: ``n_show`` training models, the lens, its KL projection, the OOD field, its projection.
    """

    grid: int
    dx_m: float
    dx: float
    freq: float
    points_per_wavelength: float
    n_src: int
    n_rec: int
    n_data: int
    d: int
    n_max: int
    pool_seconds: float
    ms_per_model: float
    kl_error_lens: float
    kl_error_ood: float
    nll_truth: float
    nll_real_stacked: float
    truth_misfit_per_datum: float
    titles: tuple
    velocities: np.ndarray


@releases_memory
def setting(exp: FWIExperiment, *, n_show: int = 4) -> Setting:
    """Make the data of both truths and of the whole training pool; describe the setting.

    Parameters
    ----------
    exp : FWIExperiment
    n_show : int
        Training models to show (>= 1).
    """
    exp = _check_exp(exp)
    n_show = check_int("n_show", n_show, low=1, high=exp.n_max)
    obs = {k: exp.observation(k) for k in _TRUTHS}      # 5 % noise, seed 1
    _ = exp.pool_data                                    # forward data of all training models, one LU each
    c, o = exp.cfg, obs["lens"]
    kl_err = {k: float((t.truth.m_kl - t.truth.m).norm() / (t.truth.m - V.M_BAR).norm()) for k, t in obs.items()}
    titles = [f"training model {i}" for i in range(n_show)]
    vel = [V.m_to_v(exp.pool_m[i]) for i in range(n_show)]
    for k, name in (("lens", "lens"), ("ood", "OOD field")):
        t = obs[k].truth
        titles += [f"{name} (truth)", f"{name.split()[0]}, KL proj."]
        vel += [t.v, V.m_to_v(t.m_kl)]
    pool_s = exp.timings["pool_data"]
    return Setting(grid=c.grid, dx_m=1000 * c.dx, dx=c.dx, freq=c.freq, points_per_wavelength=exp.points_per_wavelength,
                   n_src=c.n_src, n_rec=c.n_rec, n_data=o.n_data, d=c.d, n_max=exp.n_max, pool_seconds=pool_s,
                   ms_per_model=1000 * pool_s / exp.n_max, kl_error_lens=kl_err["lens"], kl_error_ood=kl_err["ood"],
                   nll_truth=o.nll_truth,
                   nll_real_stacked=float(((o.y - to_real(o.d_clean)) ** 2).sum()) / (2 * o.gamma ** 2),
                   truth_misfit_per_datum=o.nll_truth / o.n_data, titles=tuple(titles),
                   velocities=np.stack([_np(v) for v in vel]))


# -- the lookup for every truth and N
@dataclass(frozen=True)
class LookupTable:
    """The exact posterior under the memorized prior (the lookup), one row per truth and N.

    Attributes
    ----------
    truth : tuple of str [R]
    N : ndarray of int [R]
    exp_H : ndarray [R]
        Effective number of components of the lookup weights.
    misfit_per_datum : ndarray [R]
        The best training model's ``sum |r|^2 / (sigma_d^2 n_data)`` (1 = the noise level).
    gap : ndarray [R]
        Negative log-likelihood of the runner-up minus the best's.
    v_rmse : ndarray [R]
        RMS velocity difference between the best training model and the truth (km/s).
    rel_error : ndarray [R]
        ``||m_best - m|| / ||m - m_bar||``.
    """

    truth: tuple
    N: np.ndarray
    exp_H: np.ndarray
    misfit_per_datum: np.ndarray
    gap: np.ndarray
    v_rmse: np.ndarray
    rel_error: np.ndarray

    _FIELDS = ("exp_H", "misfit_per_datum", "gap", "v_rmse", "rel_error")

    @property
    def max_exp_H(self) -> float:
        return float(self.exp_H.max())

    @property
    def min_misfit_per_datum(self) -> float:
        return float(self.misfit_per_datum.min())

    @property
    def min_gap(self) -> float:
        return float(self.gap.min())

    def get(self, name: str, truth: str, N: int) -> float:
        """The value of column ``name`` (one of ``exp_H``, ``misfit_per_datum``, ``gap``, ``v_rmse``,
        ``rel_error``) for ``truth`` and ``N``."""
        col = _field(self, name, self._FIELDS)
        rows = [i for i, (t, n) in enumerate(zip(self.truth, self.N)) if t == truth and n == N]
        if not rows:
            have = list(zip(self.truth, self.N.tolist()))
            raise ValueError(f"truth, N: no row for ({truth!r}, {N!r}); the rows are {have}")
        return float(col[rows[0]])

    def rows(self) -> list[dict]:
        """The table as a list of dicts (for :func:`memprior.plots.fwi.html_table`)."""
        return [{"truth": t, "N": int(n), "exp(H)": float(e), "best misfit/datum": float(m), "NLL gap": float(g),
                 "v RMSE (km/s)": float(v), "rel. error": float(r)}
                for t, n, e, m, g, v, r in zip(self.truth, self.N, self.exp_H, self.misfit_per_datum, self.gap,
                                               self.v_rmse, self.rel_error)]


@releases_memory
def lookup_table(exp: FWIExperiment, *, truths=_TRUTHS, sizes=None) -> LookupTable:
    """The lookup (likelihood-weighted training models) for every truth and training-set size.

    Parameters
    ----------
    exp : FWIExperiment
    truths : sequence of {"lens", "ood"}
    sizes : sequence of int, optional
        Training-set sizes (default: the experiment's).
    """
    exp = _check_exp(exp)
    truths = tuple(_check_truth(t) for t in truths)
    sizes = exp.cfg.sizes if sizes is None else tuple(_check_size(exp, "sizes", N) for N in sizes)
    if not truths or not sizes:
        raise ValueError("truths, sizes: need at least one of each")
    lks = [(t, N, exp.lookup(N, exp.observation(t))) for t in truths for N in sizes]
    return LookupTable(truth=tuple(t for t, _, _ in lks), N=np.array([N for _, N, _ in lks]),
                       exp_H=np.array([lk.exp_H for *_, lk in lks]),
                       misfit_per_datum=np.array([lk.misfit_per_datum for *_, lk in lks]),
                       gap=np.array([lk.gap for *_, lk in lks]), v_rmse=np.array([lk.v_rmse for *_, lk in lks]),
                       rel_error=np.array([lk.rel_error for *_, lk in lks]))


# -- the three samplers at one N
@dataclass(frozen=True)
class SamplerRun:
    """One sampler's run, summarized against the lookup.

    Attributes
    ----------
    label : str
        ``"DPS"``, ``"DPS (normalized)"`` or ``"exact"``.
    method : str
        The :meth:`FWIExperiment.sample` method.
    u : ndarray [n, d]
        Samples (z-scored KL coefficients).
    v : ndarray [n, nx, nz]
        Their velocities (km/s).
    nearest : ndarray of int [n]
        Nearest training model of each sample.
    nearest_v : ndarray [n, nx, nz]
        Its velocity (km/s).
    nearest_dist : ndarray [n]
        Distance to it (z-scored units).
    rank : ndarray of int [n]
        Lookup rank of the nearest model (1 = best fit to the data).
    misfit_per_datum : ndarray [n]
        Each sample's ``sum |r|^2 / (sigma_d^2 n_data)``.
    commit_step : ndarray of int [n]
        Denoising step (0 = the first, noisiest) from which the closed-form weight of the final model
        stays above 0.9; ``T`` if never; 0 for the exact sampler, which draws its model at the start.
    levels : ndarray of int [S]
        Diffusion levels of the recorded path, noisiest first (empty for the exact sampler).
    commit_weights : ndarray [S, n]
        Closed-form weight of each sample's final model along the path (:func:`commitment_curves`).
    n_factorizations : int
        Sparse LU factorizations the run cost.
    seconds : float
        Its wall time (s).
    on_best : float
        Fraction of samples on the lookup's best model.
    """

    label: str
    method: str
    u: np.ndarray
    v: np.ndarray
    nearest: np.ndarray
    nearest_v: np.ndarray
    nearest_dist: np.ndarray
    rank: np.ndarray
    misfit_per_datum: np.ndarray
    commit_step: np.ndarray
    levels: np.ndarray
    commit_weights: np.ndarray
    n_factorizations: int
    seconds: float
    on_best: float

    @property
    def distinct(self) -> int:
        """Distinct training models hit."""
        return int(np.unique(self.nearest).size)

    @property
    def median_rank(self) -> float:
        return _median(self.rank)

    @property
    def median_misfit(self) -> float:
        return _median(self.misfit_per_datum)

    @property
    def median_commit(self) -> float:
        return _median(self.commit_step)

    @property
    def v_mean(self) -> np.ndarray:
        """Pointwise sample mean of the velocity ``[nx, nz]`` (km/s)."""
        return self.v.mean(0)

    @property
    def v_std(self) -> np.ndarray:
        """Pointwise sample standard deviation ``[nx, nz]`` (km/s, ``n - 1`` in the denominator).

        Computed by :meth:`torch.Tensor.std`, which returns exactly 0 where all samples agree.
        """
        return torch.from_numpy(self.v).std(0).numpy()

    @property
    def mean_std(self) -> float:
        """``v_std`` averaged over the grid (km/s)."""
        return float(torch.from_numpy(self.v_std).mean())


@dataclass(frozen=True)
class SamplerComparison:
    """DPS, the normalized variant and the exact sampler on the same data and training set.

    Attributes
    ----------
    N, n_samples, n_steps : int
        Training-set size, samples per run, diffusion steps T.
    dx : float
        Grid spacing (km).
    truth_v : ndarray [nx, nz]
        The true velocity (km/s).
    best : int
        The lookup's best training model.
    best_v : ndarray [nx, nz]
        Its velocity (km/s).
    best_weight : float
        Its lookup weight.
    best_misfit, truth_misfit : float
        Misfit per datum of the best training model and of the truth.
    prior_median_rank : float
        Median lookup rank of the models that unconditional draws of the same prior land on.
    dps, normalized, exact : SamplerRun
    """

    N: int
    n_samples: int
    n_steps: int
    dx: float
    truth_v: np.ndarray
    best: int
    best_v: np.ndarray
    best_weight: float
    best_misfit: float
    truth_misfit: float
    prior_median_rank: float
    dps: SamplerRun
    normalized: SamplerRun
    exact: SamplerRun

    @property
    def runs(self) -> tuple:
        """``(dps, normalized, exact)``."""
        return self.dps, self.normalized, self.exact

    def rows(self) -> list[dict]:
        """The summary table as a list of dicts (for :func:`memprior.plots.fwi.html_table`)."""
        return [{"sampler": r.label, "models hit": r.distinct, "on best": r.on_best, "median rank": r.median_rank,
                 "misfit/datum": r.median_misfit, "commit step": r.median_commit, "LUs": r.n_factorizations,
                 "s": r.seconds} for r in self.runs]


def _summarize(exp: FWIExperiment, res: SampleResult, rank: torch.Tensor, best: int) -> SamplerRun:
    N, T = res.N, exp.schedule.n_steps
    ts = exp.training_set(N)
    if res.trajectory is None:
        levels, w = np.zeros(0, dtype=np.int64), np.zeros((0, res.u.shape[0]))
    else:
        levels = _np(res.trajectory["t"])
        w = _np(commitment_curves(exp.denoiser(N), res.trajectory))
    commit = T - 1 - res.commit
    if res.method == "exact":
        commit = torch.zeros_like(res.commit)
    return SamplerRun(label=_LABELS[res.method], method=res.method, u=_np(res.u), v=_np(exp.velocities(N, res.u)),
                      nearest=_np(res.nearest), nearest_v=_np(exp.velocities(N, ts.u[res.nearest])),
                      nearest_dist=_np(res.nearest_dist), rank=_np(rank[res.nearest]),
                      misfit_per_datum=_np(res.misfit_per_datum), commit_step=_np(commit), levels=levels,
                      commit_weights=w, n_factorizations=int(res.n_factorizations), seconds=float(res.seconds),
                      on_best=float((res.nearest == best).double().mean()))


@releases_memory
def compare_samplers(exp: FWIExperiment, *, N: int = 200, truth: str = "lens", zeta: float = 0.5,
                     step_size: float = 0.05, seed: int = 0, n_prior: int = 200,
                     prior_seed: int = 1) -> SamplerComparison:
    """Run DPS (step ``zeta``), the normalized variant (step length ``step_size``) and the exact sampler.

    Each draws ``cfg.n_samples`` samples with the closed-form memorized denoiser of training set
    ``N``; ``n_prior`` unconditional DDIM draws of the same prior give the reference rank.

    Parameters
    ----------
    exp : FWIExperiment
    N : int
        Training-set size (2 <= N <= the pool's size).
    truth : {"lens", "ood"}
    zeta, eta : float
        DPS step and normalized step length (z-scored units), > 0.
    seed, prior_seed : int
        Seeds of the samplers and of the prior draws.
    n_prior : int
        Unconditional draws (>= 1).
    """
    seed = check_seed(seed, "seed")
    prior_seed = check_seed(prior_seed, "prior_seed")
    exp = _check_exp(exp)
    N = _check_size(exp, "N", N)
    zeta, step_size = check_positive("zeta", zeta), check_positive("step_size", step_size)
    n_prior = check_int("n_prior", n_prior, low=1)
    o = exp.observation(_check_truth(truth))
    runs = [exp.sample("dps", N, o, zeta=zeta, seed=seed), exp.sample("dps_normalized", N, o, step_size=step_size, seed=seed),
            exp.sample("exact", N, o, seed=seed)]
    lk = exp.lookup(N, o)
    rank = _ranks(lk.nll)
    ts = exp.training_set(N)
    g = torch.Generator().manual_seed(check_seed(prior_seed, "prior_seed"))
    prior = diffusion.ddim_sample(exp.denoiser(N), exp.schedule, n_prior, generator=g)
    prior_idx = metrics.nearest(prior, ts.u).index
    dps, normalized, exact = (_summarize(exp, r, rank, lk.best) for r in runs)
    return SamplerComparison(N=N, n_samples=int(runs[0].u.shape[0]), n_steps=exp.schedule.n_steps, dx=exp.cfg.dx,
                             truth_v=_np(o.truth.v), best=lk.best, best_v=_np(V.m_to_v(ts.m[lk.best])),
                             best_weight=float(lk.weights[lk.best]), best_misfit=lk.misfit_per_datum,
                             truth_misfit=lk.truth_misfit_per_datum, prior_median_rank=_median(rank[prior_idx]),
                             dps=dps, normalized=normalized, exact=exact)


# -- the exact sampler against the lookup weights
@dataclass(frozen=True)
class ExactCheck:
    """Frequencies of the exact sampler's training models against the lookup weights.

    Attributes
    ----------
    N : int
    noise : float
        Relative noise level of the data (8.0: sigma_d is 800 % of the rms datum).
    n_total : int
        Samples drawn.
    exp_H : float
        Effective number of components of the lookup weights.
    frequencies, weights : ndarray [N]
        Fraction of samples on each training model, and its lookup weight.
    tv : float
        Total variation ``0.5 sum |frequencies - weights|``.
    """

    N: int
    noise: float
    n_total: int
    exp_H: float
    frequencies: np.ndarray
    weights: np.ndarray
    tv: float

    @property
    def standard_errors(self) -> np.ndarray:
        """Binomial standard error of each frequency, ``sqrt(w (1 - w) / n_total)`` ``[N]``."""
        return np.sqrt(self.weights * (1 - self.weights) / self.n_total)

    def within(self, k: float = 5.0, atol: float = 1e-3) -> bool:
        """True if every frequency is within ``k`` standard errors (plus ``atol``) of its weight."""
        k, atol = check_positive("k", k), float(atol)
        return bool((np.abs(self.frequencies - self.weights) <= k * self.standard_errors + atol).all())


@releases_memory
def exact_check(exp: FWIExperiment, *, N: int = 50, truth: str = "lens", noise: float = 8.0, obs_seed: int = 2,
                n_batches: int = 5, batch: int = 4000, seed: int = 3, steps: int = 10) -> ExactCheck:
    """Draw ``n_batches * batch`` exact samples from data so noisy that the lookup weights spread.

    Batch ``b`` uses the seed ``seed + b`` (bounded memory); ``steps`` levels of the schedule.
    """
    obs_seed = check_seed(obs_seed, "obs_seed")
    seed = check_seed(seed, "seed")
    exp = _check_exp(exp)
    N = _check_size(exp, "N", N)
    noise = check_positive("noise", noise)
    n_batches, batch = check_int("n_batches", n_batches, low=1), check_int("batch", batch, low=1)
    seed = check_seed(seed, "seed")
    o = exp.observation(_check_truth(truth), noise=noise, seed=check_seed(obs_seed, "obs_seed"))
    lk = exp.lookup(N, o)
    hits = torch.cat([exp.sample("exact", N, o, n=batch, seed=seed + b, steps=steps).nearest for b in range(n_batches)])
    freq = torch.bincount(hits, minlength=N).double() / hits.numel()
    return ExactCheck(N=N, noise=noise, n_total=int(hits.numel()), exp_H=lk.exp_H, frequencies=_np(freq),
                      weights=_np(lk.weights), tv=guidance.tv_distance(freq, lk.weights))


# -- the linearized Gaussian mixture against sigma
@dataclass(frozen=True)
class LinearizedSweep:
    """The linearized Gaussian-mixture posterior of ``p_sigma`` for every sigma, all N components.

    Attributes
    ----------
    N, d : int
    sigmas : ndarray [S]
        Prior bandwidths (z-scored units), increasing; include ``sigma_min``.
    sigma_min : float
        The schedule's smallest noise level, ``sigma(0)``.
    exp_H, exp_H_no_logdet : ndarray [S]
        Effective components with and without the ``-1/2 log det C_n`` term.
    shift : ndarray [S]
        Distance of the dominant component's mean from its training model (z-scored units).
    spread : ndarray [S]
        Its posterior standard deviation, averaged over the coordinates.
    dominant_rank : ndarray of int [S]
        Lookup rank of the dominant component's training model (1 = the lookup's best).
    same_dominant : ndarray of bool [S]
        Whether the log-determinant leaves the dominant component unchanged.
    jac_seconds : float
        Wall time of the N Jacobians (s).
    dps_to_top : float
        Median distance of the normalized-DPS samples (same N) from the dominant mean at ``sigma_min``,
        in units of its typical radius ``sqrt(d) * spread``.
    dps_on_best : float
        Fraction of those samples on the lookup's best model.
    """

    N: int
    d: int
    sigmas: np.ndarray
    sigma_min: float
    exp_H: np.ndarray
    exp_H_no_logdet: np.ndarray
    shift: np.ndarray
    spread: np.ndarray
    dominant_rank: np.ndarray
    same_dominant: np.ndarray
    jac_seconds: float
    dps_to_top: float
    dps_on_best: float

    @property
    def i_min(self) -> int:
        """Index of ``sigma_min`` in ``sigmas``."""
        return int(np.flatnonzero(self.sigmas == self.sigma_min)[0])

    @property
    def max_exp_H(self) -> float:
        """The largest ``exp(H)``, with or without the log-determinant."""
        return float(max(self.exp_H.max(), self.exp_H_no_logdet.max()))

    @property
    def last_best(self) -> float:
        """The largest sigma up to which (from the smallest) the dominant component is the lookup's best."""
        last = float(self.sigmas[0])
        for s, r in zip(self.sigmas, self.dominant_rank):
            if r != 1:
                break
            last = float(s)
        return last

    @property
    def shift_min(self) -> float:
        """``shift`` at ``sigma_min``."""
        return float(self.shift[self.i_min])

    @property
    def shift_over_sd(self) -> float:
        """``shift / spread`` at ``sigma_min``."""
        return float(self.shift[self.i_min] / self.spread[self.i_min])

    @property
    def rank_sigma_min(self) -> int:
        """Lookup rank of the dominant component's model at ``sigma_min``."""
        return int(self.dominant_rank[self.i_min])

    @property
    def rank_sigma_max(self) -> int:
        """Lookup rank of the dominant component's model at the largest sigma."""
        return int(self.dominant_rank[-1])


@releases_memory
def linearized_sweep(exp: FWIExperiment, *, N: int = 50, truth: str = "lens",
                     sigmas=(1e-4, 0.001, 0.003, 0.03, 0.1, 0.3), step_size: float = 0.05,
                     seed: int = 0) -> LinearizedSweep:
    """The linearized mixture with all ``N`` components for every ``sigma`` (and the schedule's smallest).

    Jacobians come from multi-right-hand-side solves, one factorization per training model. The
    normalized-DPS run (step length ``step_size``, ``seed``) on the same training set is measured against
    the dominant component at ``sigma_min``.
    """
    seed = check_seed(seed, "seed")
    exp = _check_exp(exp)
    N = _check_size(exp, "N", N)
    o = exp.observation(_check_truth(truth))
    sigma_min = float(exp.schedule.sigma(0))
    sig = sorted({check_positive("sigmas", s, square=True) for s in sigmas} | {sigma_min})
    ts, lk = exp.training_set(N), exp.lookup(N, o)
    rank = _ranks(lk.nll)
    eh, eh0, shift, spread, dom, same = [], [], [], [], [], []
    for s in sig:
        mix, idx = exp.linearized(N, o, s, top=N)
        mix0, _ = exp.linearized(N, o, s, top=N, logdet=False)
        k = int(mix.weights.argmax())
        eh.append(posterior.effective_components(mix.weights))
        eh0.append(posterior.effective_components(mix0.weights))
        shift.append(float((mix.means[k] - ts.u[idx[k]]).norm()))
        spread.append(float(mix.covs[k].diagonal().sqrt().mean()))
        dom.append(int(rank[idx[k]]))
        same.append(k == int(mix0.weights.argmax()))
        if s == sigma_min:
            top_mean = mix.means[k]
    run = exp.sample("dps_normalized", N, o, step_size=step_size, seed=seed)
    i = sig.index(sigma_min)
    d_top = (run.u - top_mean).norm(dim=1)
    jac = sum(v for key, v in exp.timings.items() if key.startswith(f"jacobians N={N} "))
    return LinearizedSweep(N=N, d=exp.cfg.d, sigmas=np.array(sig), sigma_min=sigma_min, exp_H=np.array(eh),
                           exp_H_no_logdet=np.array(eh0), shift=np.array(shift), spread=np.array(spread),
                           dominant_rank=np.array(dom), same_dominant=np.array(same), jac_seconds=float(jac),
                           dps_to_top=_median(d_top) / (spread[i] * math.sqrt(exp.cfg.d)),
                           dps_on_best=float((run.nearest == lk.best).double().mean()))


# -- memorization of the DPS samples against the null, per N
@dataclass(frozen=True)
class MemorizationSweep:
    """Memorization scores of the normalized-DPS samples and of fresh models (the null), per N.

    Distances are measured in raw KL coefficients, against training set N.  ``r`` is the paper's
    ``d1 / mean(d2..dk)`` (flagged below 0.7), ``q`` is ``d1 / d2`` (flagged below 1/3).

    Attributes
    ----------
    sizes : ndarray of int [K]
    n_fresh : int
        Fresh random-field models in the null.
    frac_r, frac_r_se, frac_q, frac_q_se : ndarray [K]
        Fraction of samples flagged by each rule and its binomial standard error.
    null_frac_r, null_frac_r_se, null_frac_q, null_frac_q_se : ndarray [K]
        The same for the fresh models.
    r, null_r : tuple of K ndarrays
        The ratio r of every sample ``[n]`` and of every fresh model ``[n_fresh]``.
    exp_H : ndarray [K]
        Effective components of the lookup.
    nll_per_datum : tuple of K ndarrays
        Misfit per datum of every training model ``[N]`` (the lookup).
    """

    sizes: np.ndarray
    n_fresh: int
    frac_r: np.ndarray
    frac_r_se: np.ndarray
    frac_q: np.ndarray
    frac_q_se: np.ndarray
    null_frac_r: np.ndarray
    null_frac_r_se: np.ndarray
    null_frac_q: np.ndarray
    null_frac_q_se: np.ndarray
    r: tuple
    null_r: tuple
    exp_H: np.ndarray
    nll_per_datum: tuple

    _FIELDS = ("frac_r", "frac_r_se", "frac_q", "frac_q_se", "null_frac_r", "null_frac_r_se", "null_frac_q",
               "null_frac_q_se", "exp_H")

    def get(self, name: str, N: int) -> float:
        """The value of ``name`` (a per-N field) at training-set size ``N``."""
        return float(_field(self, name, self._FIELDS)[_index_of(self.sizes, N, "N")])


@releases_memory
def memorization_sweep(exp: FWIExperiment, *, sizes=None, truth: str = "lens", n_fresh: int = 200,
                       fresh_seed: int = 10_000, step_size: float = 0.05, seed: int = 0) -> MemorizationSweep:
    """Score the normalized-DPS samples (step length ``step_size``, ``seed``) of every N, and the null.

    The null draws ``n_fresh`` fresh random-field models (seed ``fresh_seed``) from the training
    distribution and scores them against the same training sets.
    """
    fresh_seed = check_seed(fresh_seed, "fresh_seed")
    seed = check_seed(seed, "seed")
    exp = _check_exp(exp)
    sizes = exp.cfg.sizes if sizes is None else tuple(_check_size(exp, "sizes", N) for N in sizes)
    if not sizes:
        raise ValueError("sizes: need at least one training-set size")
    o = exp.observation(_check_truth(truth))
    fresh = exp.fresh_models(check_int("n_fresh", n_fresh, low=2), seed=fresh_seed)
    mem = [exp.memorization(exp.sample("dps_normalized", N, o, step_size=step_size, seed=seed).z, N, fresh)
           for N in sizes]
    lks = [exp.lookup(N, o) for N in sizes]
    col = {k: np.array([m[k] for m in mem]) for k in MemorizationSweep._FIELDS if k != "exp_H"}
    return MemorizationSweep(sizes=np.array(sizes), n_fresh=int(fresh.shape[0]), **col,
                             r=tuple(_np(m["r"]) for m in mem), null_r=tuple(_np(m["null_r"]) for m in mem),
                             exp_H=np.array([lk.exp_H for lk in lks]),
                             nll_per_datum=tuple(_np(lk.nll) / o.n_data for lk in lks))


# -- a trained network against the closed form at reduced dimension
@dataclass(frozen=True)
class MLPComparison:
    """A small trained MLP denoiser against the closed form, at ``d = K^2``, for two training sets.

    Attributes
    ----------
    sizes : ndarray of int [K]
    d : int
    mlp_frac_q, cf_frac_q, null_frac_q : ndarray [K]
        Fraction flagged by ``d1/d2 < 1/3``: unconditional MLP draws, closed-form draws, fresh models.
    mlp_frac_r, cf_frac_r, null_frac_r : ndarray [K]
        The same for the paper's ``r < 0.7``.
    mlp_dps_dist, cf_dps_dist : ndarray [K]
        Median distance of normalized-DPS samples from the nearest training model (z-scored units).
    mlp_dps_misfit, cf_dps_misfit : ndarray [K]
        Their median misfit per datum.
    spacing : float
        Median distance from a model of the smallest set to its nearest neighbour (z-scored units).
    train_seconds : float
        Wall time of training (or loading the cached weights of) the networks (s).
    """

    sizes: np.ndarray
    d: int
    mlp_frac_q: np.ndarray
    cf_frac_q: np.ndarray
    null_frac_q: np.ndarray
    mlp_frac_r: np.ndarray
    cf_frac_r: np.ndarray
    null_frac_r: np.ndarray
    mlp_dps_dist: np.ndarray
    cf_dps_dist: np.ndarray
    mlp_dps_misfit: np.ndarray
    cf_dps_misfit: np.ndarray
    spacing: float
    train_seconds: float

    _FIELDS = ("mlp_frac_q", "cf_frac_q", "null_frac_q", "mlp_frac_r", "cf_frac_r", "null_frac_r",
               "mlp_dps_dist", "cf_dps_dist", "mlp_dps_misfit", "cf_dps_misfit")

    def get(self, name: str, N: int) -> float:
        """The value of ``name`` (a per-N field) at training-set size ``N``."""
        return float(_field(self, name, self._FIELDS)[_index_of(self.sizes, N, "N")])

    def fractions(self, rule: str = "q") -> dict:
        """``{"MLP": [K], "closed form": [K], "null": [K]}`` for the rule ``"q"`` (d1/d2) or ``"r"``."""
        if rule not in ("q", "r"):
            raise ValueError(f"rule: must be 'q' or 'r', got {rule!r}")
        return {"MLP": getattr(self, f"mlp_frac_{rule}"), "closed form": getattr(self, f"cf_frac_{rule}"),
                "null": getattr(self, f"null_frac_{rule}")}


@releases_memory
def mlp_comparison(exp: FWIExperiment, *, K: int = 4, sizes=(20, 1000), truth: str = "lens", n_fresh: int = 200,
                   n_draws: int = 200, draw_seed: int = 0, train_steps: int = 1500, hidden: int = 128,
                   depth: int = 2, train_seed: int = 0, dps_n: int = 4, step_size: float = 0.05, dps_steps: int = 25,
                   seed: int = 0) -> MLPComparison:
    """Train an MLP denoiser per training set at ``K`` modes per direction and compare it with the closed form.

    The experiment is ``exp``'s with ``K`` and ``sizes`` replaced.  For each N: ``n_draws``
    unconditional DDIM draws of the MLP and of the closed form (seed ``draw_seed``), scored with the
    null of ``n_fresh`` fresh models; ``dps_n`` normalized-DPS samples of each (``dps_steps`` levels).
    The networks' weights are cached on disk (:func:`memprior.diffusion.train_denoiser`).
    """
    draw_seed = check_seed(draw_seed, "draw_seed")
    train_seed = check_seed(train_seed, "train_seed")
    seed = check_seed(seed, "seed")
    exp = _check_exp(exp)
    K = check_int("K", K, low=1)
    sizes = tuple(check_int("sizes", N, low=2) for N in sizes)
    if not sizes:
        raise ValueError("sizes: need at least one training-set size")
    e = FWIExperiment(replace(exp.cfg, K=K, sizes=sizes), show_progress=exp.show_progress)
    fresh = e.fresh_models(check_int("n_fresh", n_fresh, low=2))
    o = e.observation(_check_truth(truth))
    n_draws = check_int("n_draws", n_draws, low=1)
    out = {k: [] for k in MLPComparison._FIELDS}
    for N in sizes:
        net = e.train_mlp(N, steps=train_steps, hidden=hidden, depth=depth, seed=train_seed)
        ts = e.training_set(N)
        for key, den in (("mlp", net), ("cf", e.denoiser(N))):
            g = torch.Generator().manual_seed(check_seed(draw_seed, "draw_seed"))
            x = diffusion.ddim_sample(den, e.schedule, n_draws, generator=g).double()
            m = e.memorization(ts.to_z(x), N, fresh)
            out[f"{key}_frac_q"].append(m["frac_q"])
            out[f"{key}_frac_r"].append(m["frac_r"])
            run = e.sample("dps_normalized", N, o, n=dps_n, step_size=step_size, steps=dps_steps, seed=seed,
                           denoiser=net if key == "mlp" else None, cached=(N == min(sizes)))
            out[f"{key}_dps_dist"].append(_median(run.nearest_dist))
            out[f"{key}_dps_misfit"].append(_median(run.misfit_per_datum))
            if key == "mlp":
                out["null_frac_q"].append(m["null_frac_q"])
                out["null_frac_r"].append(m["null_frac_r"])
    u = e.training_set(min(sizes)).u
    spacing = _median((torch.cdist(u, u, compute_mode="donot_use_mm_for_euclid_dist") + 1e9 * torch.eye(u.shape[0], dtype=u.dtype)).min(1).values)
    train_s = sum(v for k, v in e.timings.items() if k.startswith("train_mlp"))
    return MLPComparison(sizes=np.array(sizes), d=e.cfg.d, **{k: np.array(v) for k, v in out.items()},
                         spacing=spacing, train_seconds=float(train_s))


# -- the normalized variant's step length
@dataclass(frozen=True)
class StepLengths:
    """Normalized-DPS runs that differ only in the step length ``step_size``.

    Attributes
    ----------
    N : int
    step_sizes : ndarray [k]
    nearest : ndarray of int [k, n]
        Nearest training model of each sample, per step length.
    nearest_dist : ndarray [k, n]
        Distance to it (z-scored units).
    same_fraction : float
        Fraction of samples whose nearest training model is the same for every step length.
    """

    N: int
    step_sizes: np.ndarray
    nearest: np.ndarray
    nearest_dist: np.ndarray
    same_fraction: float


@releases_memory
def step_lengths(exp: FWIExperiment, *, N: int = 200, truth: str = "lens", step_sizes=(0.02, 0.07), n: int = 4,
                 steps: int = 25, seed: int = 0) -> StepLengths:
    """Run the normalized variant with each step length of ``step_sizes`` (same seed, ``n`` samples, ``steps`` levels)."""
    seed = check_seed(seed, "seed")
    exp = _check_exp(exp)
    N = _check_size(exp, "N", N)
    step_sizes = tuple(check_positive("step_sizes", e) for e in step_sizes)
    if not step_sizes:
        raise ValueError("step_sizes: need at least one step length")
    o = exp.observation(_check_truth(truth))
    runs = [exp.sample("dps_normalized", N, o, n=n, step_size=e, steps=steps, seed=seed) for e in step_sizes]
    near = np.stack([_np(r.nearest) for r in runs])
    dist = np.stack([_np(r.nearest_dist) for r in runs])
    return StepLengths(N=N, step_sizes=np.array(step_sizes), nearest=near, nearest_dist=dist,
                       same_fraction=float((near == near[0]).all(0).mean()))


@releases_memory
def app_runs(exp: FWIExperiment, *, truth: str = "lens", sizes=None, N: int = 200, step_size: float = 0.05,
             step_sizes=(0.02, 0.07), n: int = 4, steps: int = 25, seed: int = 0) -> dict:
    """Precomputed normalized-DPS runs for the live app (:class:`memprior.widgets.fwi.AppState`).

    Returns ``{(N, noise, step_size): SampleResult}``: the full runs of step length ``step_size`` for every
    size (those of :func:`memorization_sweep`), and short runs (``n`` samples, ``steps`` levels) of the
    other step lengths ``step_sizes`` at ``N`` (those of :func:`step_lengths`).  The noise is the
    configuration's.
    """
    seed = check_seed(seed, "seed")
    exp = _check_exp(exp)
    sizes = exp.cfg.sizes if sizes is None else tuple(_check_size(exp, "sizes", k) for k in sizes)
    N = _check_size(exp, "N", N)
    o = exp.observation(_check_truth(truth))
    noise = exp.cfg.noise
    runs = {(k, noise, step_size): exp.sample("dps_normalized", k, o, step_size=step_size, seed=seed) for k in sizes}
    for e in step_sizes:
        runs[N, noise, e] = exp.sample("dps_normalized", N, o, n=n, step_size=e, steps=steps, seed=seed)
    return runs


# ----------------------------------------------------------------------------- trained priors: the transition
# Diffusion priors trained on the training sets (memprior.trained): memorization at small N, fading as N grows.
__all__ += ["memorization_transition", "MemorizationTransition", "denoiser_gap", "DenoiserGap",
            "memorization_phase", "MemorizationPhase"]

_INITS = ("standard", "marginal")


def _bootstrap(values: np.ndarray, stat, n_boot: int, level: float, seed) -> tuple[float, float]:
    """Percentile bootstrap interval (probability ``level``) of ``stat(values[idx])`` over the first axis.

    ``stat`` maps a resampled array ``[n_boot, n, ...]`` to ``[n_boot]``.
    """
    idx = np.random.default_rng(seed).integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    # resample in blocks of about 2 M numbers: a bootstrap of 32 velocity models x 1000 replicates would
    # otherwise materialize 1000 x 32 x nx x nz values at once
    block = max(1, 2_000_000 // max(1, values.size))
    reps = np.concatenate([stat(values[idx[i:i + block]]) for i in range(0, n_boot, block)])
    return float(np.quantile(reps, (1 - level) / 2)), float(np.quantile(reps, (1 + level) / 2))


def _bootstrap_interval(flags: np.ndarray, n_boot: int, level: float, seed) -> tuple[float, float]:
    """Percentile bootstrap interval (probability ``level``) of the mean of ``flags`` [n]."""
    return _bootstrap(flags, lambda a: a.mean(1), n_boot, level, seed)


def _trained_prior(exp: FWIExperiment, N: int, train_seed: int, hidden, depth, steps):
    return trained.train_prior(N, seed=train_seed, config=exp.cfg, hidden=hidden, depth=depth, steps=steps,
                               show_progress=exp.show_progress)


@dataclass(frozen=True)
class MemorizationTransition:
    """Memorization of unconditional samples of trained priors against the null, per training-set size.

    For each N a prior is trained on the first N models (:func:`memprior.trained.train_prior`, shipped
    weights for the defaults) and ``n_samples`` unconditional samples are scored against its training set in raw
    KL coefficients, beside ``n_fresh`` fresh random-field models (the null: a generator that never saw
    the training set).  ``q = d1/d2`` (memorized below 1/3), ``r = d1 / mean(d2..dk)``, ``k = min(50, N)``
    (the paper's; memorized below 0.7).  Intervals are percentile bootstraps over the samples.

    Attributes
    ----------
    sizes : ndarray of int [K]
    n_samples, n_fresh : int
    level : float
        Probability of the bootstrap intervals.
    frac_q, frac_q_lo, frac_q_hi : ndarray [K]
        Fraction of samples with ``q < 1/3`` and its interval.
    frac_r, frac_r_lo, frac_r_hi : ndarray [K]
        Fraction with ``r < 0.7`` and its interval.
    null_frac_q, null_frac_q_lo, null_frac_q_hi, null_frac_r, null_frac_r_lo, null_frac_r_hi : ndarray [K]
        The same for the fresh models.
    median_q, median_r, null_median_q, null_median_r : ndarray [K]
        Medians of the scores (``numpy.median``).
    q, r, null_q, null_r : tuple of K ndarrays
        Every score: ``[n_samples]`` for the samples, ``[n_fresh]`` for the fresh models.
    samples : tuple of K ndarrays [n_samples, d]
        The samples in raw KL coefficients.
    train_cpu_seconds : ndarray [K]
        CPU time of training each network, one thread (s; as recorded with shipped weights, NaN from the
        cache; see :class:`memprior.trained.TrainedPrior`).
    sources : tuple of str
        Where each network came from (``"shipped"``, ``"cache"``, ``"trained"``).
    settings : dict
        The training settings, the sampler and its start (``sampler``, ``init``) and the seeds.
    """

    sizes: np.ndarray
    n_samples: int
    n_fresh: int
    level: float
    frac_q: np.ndarray
    frac_q_lo: np.ndarray
    frac_q_hi: np.ndarray
    frac_r: np.ndarray
    frac_r_lo: np.ndarray
    frac_r_hi: np.ndarray
    null_frac_q: np.ndarray
    null_frac_q_lo: np.ndarray
    null_frac_q_hi: np.ndarray
    null_frac_r: np.ndarray
    null_frac_r_lo: np.ndarray
    null_frac_r_hi: np.ndarray
    median_q: np.ndarray
    median_r: np.ndarray
    null_median_q: np.ndarray
    null_median_r: np.ndarray
    q: tuple
    r: tuple
    null_q: tuple
    null_r: tuple
    samples: tuple
    train_cpu_seconds: np.ndarray
    sources: tuple
    settings: dict

    _FIELDS = ("frac_q", "frac_q_lo", "frac_q_hi", "frac_r", "frac_r_lo", "frac_r_hi", "null_frac_q",
               "null_frac_q_lo", "null_frac_q_hi", "null_frac_r", "null_frac_r_lo", "null_frac_r_hi", "median_q",
               "median_r", "null_median_q", "null_median_r", "train_cpu_seconds")

    def get(self, name: str, N: int) -> float:
        """The value of ``name`` (a per-N field) at training-set size ``N``."""
        return float(_field(self, name, self._FIELDS)[_index_of(self.sizes, N, "N")])

    def crossing(self, name: str = "frac_q", level: float = 0.5):
        """The smallest size whose ``name`` is below ``level`` (``None`` if none is)."""
        below = np.flatnonzero(_field(self, name, self._FIELDS) < level)
        return int(self.sizes[below[0]]) if below.size else None

    def rows(self) -> list[dict]:
        """One dict per N: the fractions with their intervals, for the samples and the null."""
        return [{"N": int(n), "d1/d2 < 1/3": float(a), "interval": (float(a0), float(a1)),
                 "null d1/d2 < 1/3": float(b), "r < 0.7": float(c), "interval (r)": (float(c0), float(c1)),
                 "null r < 0.7": float(e)}
                for n, a, a0, a1, b, c, c0, c1, e in zip(self.sizes, self.frac_q, self.frac_q_lo, self.frac_q_hi,
                                                         self.null_frac_q, self.frac_r, self.frac_r_lo,
                                                         self.frac_r_hi, self.null_frac_r)]


@releases_memory
def memorization_transition(exp: FWIExperiment, *, sizes=trained.SIZES, n_samples: int = 256, n_fresh: int = 256,
                            fresh_seed: int = 10_000, seed: int = 0, sampler: str = "ddpm", init: str = "standard",
                            train_seed: int = 0,
                            hidden: int | None = None, depth: int | None = None, steps: int | None = None,
                            n_boot: int = 1000, level: float = 0.95, boot_seed: int = 0) -> MemorizationTransition:
    """The memorization transition of trained priors: memorized fractions and the null, per N.

    Parameters
    ----------
    exp : FWIExperiment
        Supplies the configuration (the training sets) and the fresh models.
    sizes : sequence of int >= 2
        Training-set sizes (default :data:`memprior.trained.SIZES`, all shipped).
    n_samples : int >= 1
        Unconditional samples per prior (seed ``seed``, ``sampler`` from the start ``init``, see
        :meth:`memprior.trained.TrainedPrior.sample`: by default ancestral DDPM from N(0, I)).
    n_fresh : int >= 1
        Fresh random-field models for the null (seed ``fresh_seed``).
    train_seed, hidden, depth, steps :
        Passed to :func:`memprior.trained.train_prior` (``None``: its defaults).
    n_boot : int >= 10
        Bootstrap replicates (seeded by ``boot_seed``, N and the statistic).
    level : float in (0, 1)
        Probability of the intervals.
    """
    fresh_seed = check_seed(fresh_seed, "fresh_seed")
    seed = check_seed(seed, "seed")
    train_seed = check_seed(train_seed, "train_seed")
    boot_seed = check_seed(boot_seed, "boot_seed")
    exp = _check_exp(exp)
    sizes = tuple(check_int("sizes", N, low=2) for N in sizes)
    if not sizes:
        raise ValueError("sizes: need at least one training-set size")
    n_samples = check_int("n_samples", n_samples, low=1)
    n_fresh = check_int("n_fresh", n_fresh, low=1)
    if init not in _INITS:
        raise ValueError(f"init: must be one of {_INITS}, got {init!r}")
    if sampler not in trained.SAMPLERS:
        raise ValueError(f"sampler: must be one of {trained.SAMPLERS}, got {sampler!r}")
    n_boot = check_int("n_boot", n_boot, low=10)
    level = check_positive("level", level, upper=1.0)
    if level >= 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    boot_seed = check_seed(boot_seed, "boot_seed")
    fresh = exp.fresh_models(n_fresh, seed=fresh_seed)
    col = {k: [] for k in MemorizationTransition._FIELDS}
    per = {k: [] for k in ("q", "r", "null_q", "null_r", "samples")}
    sources, prior = [], None
    for N in sizes:
        prior = _trained_prior(exp, N, train_seed, hidden, depth, steps)
        z = prior.to_z(prior.sample(n_samples, seed=seed, sampler=sampler, init=init))
        sc = dict(q=metrics.d1_d2(z, prior.z_train), r=metrics.nn_ratio(z, prior.z_train),
                  null_q=metrics.null_baseline(fresh, prior.z_train, "d1_d2"),
                  null_r=metrics.null_baseline(fresh, prior.z_train, "nn_ratio"))
        for j, (name, key, thr) in enumerate((("frac_q", "q", metrics.D1D2_THRESHOLD),
                                              ("frac_r", "r", metrics.PAPER_THRESHOLD),
                                              ("null_frac_q", "null_q", metrics.D1D2_THRESHOLD),
                                              ("null_frac_r", "null_r", metrics.PAPER_THRESHOLD))):
            flags = (_np(sc[key]) < thr).astype(np.float64)
            lo, hi = _bootstrap_interval(flags, n_boot, level, (boot_seed, N, j))
            col[name].append(float(flags.mean()))
            col[name + "_lo"].append(lo)
            col[name + "_hi"].append(hi)
        for key in ("q", "r", "null_q", "null_r"):
            per[key].append(_np(sc[key]))
        for key in ("median_q", "median_r", "null_median_q", "null_median_r"):
            col[key].append(float(np.median(per[key.replace("median_", "")][-1])))
        per["samples"].append(_np(z))
        col["train_cpu_seconds"].append(prior.train_cpu_seconds)
        sources.append(prior.source)
    settings = {k: prior.settings[k] for k in trained.DEFAULTS}
    settings.update(sampler=sampler, init=init, seed=seed, train_seed=train_seed, fresh_seed=fresh_seed)
    return MemorizationTransition(sizes=np.array(sizes), n_samples=n_samples, n_fresh=n_fresh, level=level,
                                  **{k: np.array(v) for k, v in col.items()},
                                  **{k: tuple(v) for k, v in per.items()}, sources=tuple(sources),
                                  settings=settings)


@dataclass(frozen=True)
class DenoiserGap:
    """How far a trained denoiser is from the closed-form memorized one, per N and noise level.

    Both denoisers see the same noised inputs ``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps`` (z-scored
    coordinates, unit variance per coordinate), with ``x_0`` a training model drawn uniformly
    (``*_train``: where the network was trained) or a fresh random-field model (``*_fresh``: where a
    generalizing network and the empirical optimum part ways).

    Attributes
    ----------
    sizes : ndarray of int [K]
    t : ndarray of int [L]
        Diffusion levels (of the 200-step schedule), increasing.
    sigma : ndarray [L]
        Their noise-to-signal ratio ``sqrt((1 - ab_t) / ab_t)``.
    rmse_train, rmse_fresh : ndarray [K, L]
        RMS over inputs and coordinates of ``net.denoise(x_t) - closed_form.denoise(x_t)`` (z-scored units).
    weight_train, weight_fresh : ndarray [K, L]
        Mean largest weight of the closed form (1: it points at one training model).
    n : int
        Inputs per level and kind.
    """

    sizes: np.ndarray
    t: np.ndarray
    sigma: np.ndarray
    rmse_train: np.ndarray
    rmse_fresh: np.ndarray
    weight_train: np.ndarray
    weight_fresh: np.ndarray
    n: int

    def follows(self, where: str = "train", tol: float = 0.1) -> np.ndarray:
        """Boolean ``[K, L]``: the network is within ``tol`` (RMS, z-scored units) of the closed form."""
        if where not in ("train", "fresh"):
            raise ValueError(f"where: must be 'train' or 'fresh', got {where!r}")
        return getattr(self, f"rmse_{where}") <= check_positive("tol", tol)


@releases_memory
def denoiser_gap(exp: FWIExperiment, *, sizes=(10, 50, 200, 1000, 5000), levels=None, n: int = 256, seed: int = 0,
                 fresh_seed: int = 20_000, train_seed: int = 0, hidden: int | None = None, depth: int | None = None,
                 steps: int | None = None) -> DenoiserGap:
    """Distance between each trained prior's denoiser and the closed-form memorized denoiser.

    Parameters
    ----------
    exp : FWIExperiment
    sizes : sequence of int >= 2
    levels : sequence of int, optional
        Diffusion levels (default 12 evenly spaced over the 200-step schedule).
    n : int >= 1
        Inputs per level and kind; the same training draws, fresh models (seed ``fresh_seed``) and
        noise (seed ``seed``) at every level and N.
    train_seed, hidden, depth, steps :
        Passed to :func:`memprior.trained.train_prior`.
    """
    seed = check_seed(seed, "seed")
    fresh_seed = check_seed(fresh_seed, "fresh_seed")
    train_seed = check_seed(train_seed, "train_seed")
    exp = _check_exp(exp)
    sizes = tuple(check_int("sizes", N, low=2) for N in sizes)
    if not sizes:
        raise ValueError("sizes: need at least one training-set size")
    n = check_int("n", n, low=1)
    schedule = diffusion.Schedule.linear(trained.N_STEPS)
    ts = sorted(diffusion.timesteps(schedule, 12)) if levels is None else \
        sorted({check_int("levels", t, low=0, high=schedule.n_steps - 1) for t in levels})
    if not ts:
        raise ValueError("levels: need at least one diffusion level")
    fresh = exp.fresh_models(n, seed=fresh_seed)
    g = torch.Generator().manual_seed(check_seed(seed, "seed"))
    eps = torch.randn((n, exp.cfg.d), generator=g, dtype=torch.float64)
    pick = torch.randint(1 << 30, (n,), generator=g)
    out = {k: np.zeros((len(sizes), len(ts))) for k in ("rmse_train", "rmse_fresh", "weight_train", "weight_fresh")}
    for i, N in enumerate(sizes):
        prior = _trained_prior(exp, N, train_seed, hidden, depth, steps)
        closed = diffusion.MemorizedDenoiser(prior.x_train, prior.schedule)
        x0 = {"train": prior.x_train[pick % N], "fresh": prior.to_u(fresh)}
        for j, t in enumerate(ts):
            for kind, x in x0.items():
                xt = prior.schedule.q_sample(x, t, eps=eps)
                w = closed.weights(xt, t)                      # the closed form is w @ x_train
                with torch.no_grad():
                    diff = prior.denoiser.denoise(xt, t).to(torch.float64) - w @ closed.x_train
                out[f"rmse_{kind}"][i, j] = float(diff.pow(2).mean().sqrt())
                out[f"weight_{kind}"][i, j] = float(w.max(1).values.mean())
    return DenoiserGap(sizes=np.array(sizes), t=np.array(ts), sigma=np.array([schedule.sigma(t) for t in ts]), n=n,
                       **out)


@dataclass(frozen=True)
class MemorizationPhase:
    """Memorized fraction over training-set size N and network width (the training budget).

    Attributes
    ----------
    sizes : ndarray of int [K]
    widths : ndarray of int [W]
    frac_q, frac_q_lo, frac_q_hi : ndarray [W, K]
        Fraction of samples with ``d1/d2 < 1/3`` and its bootstrap interval.
    frac_r, frac_r_lo, frac_r_hi : ndarray [W, K]
        The same for ``r < 0.7``.
    null_frac_q, null_frac_r : ndarray [K]
        The null (fresh models): it does not depend on the network.
    median_q : ndarray [W, K]
    train_cpu_seconds : ndarray [W, K]
    transitions : tuple of W MemorizationTransition
        The transition of each width.
    """

    sizes: np.ndarray
    widths: np.ndarray
    frac_q: np.ndarray
    frac_q_lo: np.ndarray
    frac_q_hi: np.ndarray
    frac_r: np.ndarray
    frac_r_lo: np.ndarray
    frac_r_hi: np.ndarray
    null_frac_q: np.ndarray
    null_frac_r: np.ndarray
    median_q: np.ndarray
    train_cpu_seconds: np.ndarray
    transitions: tuple

    def boundary(self, name: str = "frac_q", level: float = 0.5) -> np.ndarray:
        """Per width, the largest N whose ``name`` is at least ``level`` (0 where none is), ``[W]``."""
        v = _field(self, name, ("frac_q", "frac_r", "median_q"))
        return np.array([int(self.sizes[row >= level].max()) if (row >= level).any() else 0 for row in v])


@releases_memory
def memorization_phase(exp: FWIExperiment, *, sizes=trained.SIZES, widths=trained.WIDTHS, n_samples: int = 256,
                       n_fresh: int = 256, seed: int = 0, train_seed: int = 0, steps: int | None = None,
                       **kw) -> MemorizationPhase:
    """The phase diagram: :func:`memorization_transition` for every network width of ``widths``.

    ``steps`` and ``kw`` (``sampler``, ``init``, ``fresh_seed``, ``n_boot``, ``level``, ``boot_seed``, ``depth``) are
    passed on; the defaults are the shipped networks.
    """
    seed = check_seed(seed, "seed")
    train_seed = check_seed(train_seed, "train_seed")
    widths = tuple(check_int("widths", w, low=1) for w in widths)
    if not widths:
        raise ValueError("widths: need at least one network width")
    runs = tuple(memorization_transition(exp, sizes=sizes, n_samples=n_samples, n_fresh=n_fresh, seed=seed,
                                         train_seed=train_seed, hidden=w, steps=steps, **kw) for w in widths)
    stack = {k: np.stack([getattr(m, k) for m in runs]) for k in
             ("frac_q", "frac_q_lo", "frac_q_hi", "frac_r", "frac_r_lo", "frac_r_hi", "median_q", "train_cpu_seconds")}
    return MemorizationPhase(sizes=runs[0].sizes, widths=np.array(widths), null_frac_q=runs[0].null_frac_q,
                             null_frac_r=runs[0].null_frac_r, transitions=runs, **stack)


# ----------------------------------------------------------------------------- trained priors: DPS on the FWI data
__all__ += ["trained_dps", "TrainedDPS", "write_dps_runs", "dps_runs_dir"]


def _check_level(level) -> float:
    level = check_positive("level", level, upper=1.0)
    if level >= 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    return level


def _mean_std(v: np.ndarray) -> np.ndarray:
    """Grid-averaged pointwise standard deviation (``n - 1``) of velocities ``[..., n, nx, nz]`` -> ``[...]``."""
    return v.std(-3, ddof=1).mean((-2, -1))


@dataclass(frozen=True)
class TrainedDPS:
    """The paper's normalized DPS on the FWI data with the *trained* priors, one row per N.

    Every sample is compared with the exact answer under the memorized prior (the lookup) and
    with the closed-form prior's normalized-DPS run of the same N (:meth:`FWIExperiment.sample`).
    Intervals are percentile bootstraps over the samples.

    Attributes
    ----------
    sizes : ndarray of int [K]
    n, steps, n_steps : int
        Samples per N, levels visited, length of the prior's schedule (200).
    step_size : float
        The normalized step length (z-scored units).
    level : float
        Probability of the intervals.
    dx : float
        Grid spacing (km).
    nearest, rank : ndarray of int [K, n]
        Each sample's nearest training model (z-scored distance) and that model's rank in the
        exact lookup (1 = the best fit to the data).
    nearest_dist : ndarray [K, n]
        Distance to it (z-scored units); ``spacing`` [K] is the median distance between a training
        model and its nearest neighbour, the scale to read it against.
    q : ndarray [K, n]
        ``d1/d2`` in raw KL coefficients (memorized below 1/3).
    misfit_per_datum : ndarray [K, n]
        ``sum |r|^2 / (sigma_d^2 n_data)`` of each sample (1 = the noise level).
    lookup_best, lookup_misfit, lookup_exp_H : ndarray [K]
        The lookup's best model, its misfit per datum and the effective number of components.
    frac_q, frac_q_lo, frac_q_hi : ndarray [K]
        Fraction of samples with ``d1/d2 < 1/3``, and its interval.
    on_best, on_best_lo, on_best_hi : ndarray [K]
        Fraction of samples whose nearest training model is the lookup's best.
    median_dist, median_dist_lo, median_dist_hi : ndarray [K]
    median_misfit, median_misfit_lo, median_misfit_hi : ndarray [K]
    spread, spread_lo, spread_hi : ndarray [K]
        Grid-averaged pointwise standard deviation of the samples' velocity (km/s).
    lookup_spread : ndarray [K]
        The same under the exact lookup posterior (the weighted standard deviation of the training
        models: 0 when the lookup is one-hot).
    cf_spread, cf_misfit : ndarray [K]
        Spread and median misfit of the closed-form prior's normalized-DPS samples (``cf_n`` of them).
    cf_n : int
    v, nearest_v : ndarray [K, k, nx, nz]
        The first ``k`` samples and their nearest training models (km/s).
    snap_levels : ndarray of int [S]
        Diffusion levels of the Tweedie snapshots, noisiest first.
    snapshots : ndarray [K, S, nx, nz]
        The Tweedie estimate ``x0_hat`` of sample 0 along its path (km/s).
    coef : ndarray of int [2]
        The two KL coefficients of the scatter (the largest variances in the pool).
    coef_samples : tuple of K ndarrays [n, 2]; coef_train : tuple of K ndarrays [N, 2]
        Those coefficients (raw) of the samples and of the training set.
    seconds : ndarray [K]
        Wall time of each DPS run (s).
    settings : dict
    """

    sizes: np.ndarray
    n: int
    steps: int
    n_steps: int
    step_size: float
    level: float
    dx: float
    nearest: np.ndarray
    rank: np.ndarray
    nearest_dist: np.ndarray
    spacing: np.ndarray
    q: np.ndarray
    misfit_per_datum: np.ndarray
    lookup_best: np.ndarray
    lookup_misfit: np.ndarray
    lookup_exp_H: np.ndarray
    frac_q: np.ndarray
    frac_q_lo: np.ndarray
    frac_q_hi: np.ndarray
    on_best: np.ndarray
    on_best_lo: np.ndarray
    on_best_hi: np.ndarray
    median_dist: np.ndarray
    median_dist_lo: np.ndarray
    median_dist_hi: np.ndarray
    median_misfit: np.ndarray
    median_misfit_lo: np.ndarray
    median_misfit_hi: np.ndarray
    spread: np.ndarray
    spread_lo: np.ndarray
    spread_hi: np.ndarray
    lookup_spread: np.ndarray
    cf_spread: np.ndarray
    cf_misfit: np.ndarray
    cf_n: int
    v: np.ndarray
    nearest_v: np.ndarray
    snap_levels: np.ndarray
    snapshots: np.ndarray
    coef: np.ndarray
    coef_samples: tuple
    coef_train: tuple
    seconds: np.ndarray
    settings: dict

    _FIELDS = ("spacing", "lookup_best", "lookup_misfit", "lookup_exp_H", "frac_q", "frac_q_lo", "frac_q_hi",
               "on_best", "on_best_lo", "on_best_hi", "median_dist", "median_dist_lo", "median_dist_hi",
               "median_misfit", "median_misfit_lo", "median_misfit_hi", "spread", "spread_lo", "spread_hi",
               "lookup_spread", "cf_spread", "cf_misfit", "seconds")

    def get(self, name: str, N: int) -> float:
        """The value of ``name`` (a per-N field) at training-set size ``N``."""
        return float(_field(self, name, self._FIELDS)[_index_of(self.sizes, N, "N")])

    def rows(self) -> list[dict]:
        """One dict per N: the headline numbers with their intervals (for :func:`memprior.plots.fwi.html_table`)."""
        def iv(a, lo, hi, i, fmt):
            return f"{fmt(a[i])} ({fmt(lo[i])}–{fmt(hi[i])})"
        pct, f2, f0 = (lambda x: f"{x:.0%}"), (lambda x: f"{x:.2f}"), (lambda x: f"{x:.0f}")
        return [{"N": int(N), "d1/d2 < 1/3": iv(self.frac_q, self.frac_q_lo, self.frac_q_hi, i, pct),
                 "on lookup's best": iv(self.on_best, self.on_best_lo, self.on_best_hi, i, pct),
                 "median rank": _median(self.rank[i]),
                 "median distance": iv(self.median_dist, self.median_dist_lo, self.median_dist_hi, i, f2),
                 "NN spacing": float(self.spacing[i]),
                 "median misfit/datum": iv(self.median_misfit, self.median_misfit_lo, self.median_misfit_hi, i, f0),
                 "lookup misfit/datum": float(self.lookup_misfit[i]),
                 "spread (km/s)": iv(self.spread, self.spread_lo, self.spread_hi, i, lambda x: f"{x:.3f}"),
                 "closed-form spread": float(self.cf_spread[i]), "lookup spread": float(self.lookup_spread[i])}
                for i, N in enumerate(self.sizes)]


def dps_runs_dir():
    """The shipped trained-prior DPS runs: ``memprior/data/fwi_dps``."""
    from pathlib import Path
    return Path(trained.__file__).resolve().parent / "data" / "fwi_dps"


def _dps_key(prior, obs: Observation, n, steps, step_size, seed, n_snap) -> str:
    fp = hashlib.sha1(np.round(_np(obs.y), 10).tobytes()).hexdigest()
    text = f"{prior.key}|{fp}|{n}|{steps}|{float(step_size)!r}|{seed}|{n_snap}"
    return hashlib.sha1(text.encode()).hexdigest()[:24]


def _dps_run(exp, prior, fwd, obs, n, steps, step_size, seed, n_snap, directory, write: bool = False) -> dict:
    """One trained-prior normalized-DPS run: samples ``u`` [n, d], Tweedie snapshots of sample 0, wall time.

    Loaded from ``directory`` (default :func:`dps_runs_dir`) when a stored run has the same key;
    with ``write=True`` a computed run is stored there.
    """
    from pathlib import Path
    folder = dps_runs_dir() if directory is None else Path(directory)
    path = folder / f"dps-N{prior.n_train}-n{n}-s{steps}-{_dps_key(prior, obs, n, steps, step_size, seed, n_snap)}.npz"
    if path.exists() and not write:
        with np.load(path) as f:
            return dict(u=torch.from_numpy(f["u"]), snap_x0=torch.from_numpy(f["snap_x0"]),
                        snap_levels=torch.from_numpy(f["snap_levels"]), seconds=float(f["seconds"]))
    g = torch.Generator().manual_seed(check_seed(seed, "seed"))
    x_T = torch.randn((n, exp.cfg.d), generator=g, dtype=torch.float64)
    rec = diffusion.TrajectoryRecorder()
    t0 = time.perf_counter()
    u = guidance.dps_normalized_sample(prior.denoiser, prior.schedule, fwd, obs.y, n, step_size=step_size, x_T=x_T,
                                       steps=steps, callback=rec, show_progress=exp.show_progress)
    secs = time.perf_counter() - t0
    traj = rec.trajectory()
    pick = torch.as_tensor(np.unique(np.linspace(0, traj["t"].numel() - 1, n_snap).round().astype(int)))
    run = dict(u=u.detach().to(torch.float64), snap_x0=traj["x0_hat"][pick, 0].to(torch.float64),
               snap_levels=traj["t"][pick], seconds=secs)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{k: _np(v) for k, v in run.items()})
    return run


def write_dps_runs(directory=None, *, sizes=(50, 200, 1000), n: int = 32, steps: int = 200,
                   step_size: float = 0.05, seed: int = 0, n_snap: int = 5) -> list:
    """Run and store the chapter's trained-prior DPS runs (default configuration, lens data); returns the paths."""
    seed = check_seed(seed, "seed")
    exp = FWIExperiment(FWIConfig(), show_progress=False)
    o = exp.observation("lens")
    out = []
    for N in sizes:
        prior = _trained_prior(exp, N, 0, None, None, None)
        run = _dps_run(exp, prior, exp.forward(N, cached=False), o, n, steps, step_size, seed, n_snap, directory,
                       write=True)
        out.append((N, run["seconds"]))
        print(f"N = {N}: {n} samples x {steps} levels in {run['seconds']:.1f} s", flush=True)
    return out


@releases_memory
def trained_dps(exp: FWIExperiment, *, sizes=(50, 200, 1000), truth: str = "lens", n: int = 32, steps: int = 200,
                step_size: float = 0.05, seed: int = 0, k: int = 4, n_snap: int = 5, n_boot: int = 1000,
                level: float = 0.95, boot_seed: int = 0, train_seed: int = 0, hidden: int | None = None,
                depth: int | None = None, train_steps: int | None = None, directory=None) -> TrainedDPS:
    """Normalized DPS (the paper's variant) with the trained prior of every N, against the lookup.

    For each N the prior of :func:`memprior.trained.train_prior` (shipped weights for the defaults)
    guides ``n`` samples from N(0, I) (seed ``seed``; the paper's comparison script's start) through
    ``steps`` evenly spaced levels of its 200-step schedule, step length ``step_size``.

    Parameters
    ----------
    exp : FWIExperiment
        The data, the training sets, the lookup and the closed-form runs (default configuration:
        the shipped priors match it).
    sizes : sequence of int >= 2
    truth : {"lens", "prior", "ood"}
    n : int >= 2
        Samples per N.
    steps : int, 2..200
        Levels visited (cost is linear in ``n * steps``; about 7 ms per sample and level on one core).
    step_size : float > 0
    k : int >= 1
        Samples kept as velocity models (with their nearest training models).
    n_snap : int >= 2
        Tweedie snapshots of sample 0, evenly spaced along its path.
    n_boot : int >= 10; level : float in (0, 1); boot_seed : int
        Bootstrap replicates, interval probability and seed.
    train_seed, hidden, depth, train_steps :
        Seed and settings of the networks, passed to :func:`memprior.trained.train_prior` as ``seed``,
        ``hidden``, ``depth`` and ``steps`` (``None``: its defaults, the shipped weights).
    directory : path, optional
        Folder of stored runs (default :func:`dps_runs_dir`, the shipped runs of the chapter). A run
        whose key (the prior's key, the data, ``n``, ``steps``, ``step_size``, ``seed``, ``n_snap``)
        has a file there is loaded instead of sampled; ``python -m memprior.experiments.fwi
        --write-dps [DIR]`` writes the chapter's.
    """
    seed = check_seed(seed, "seed")
    boot_seed = check_seed(boot_seed, "boot_seed")
    train_seed = check_seed(train_seed, "train_seed")
    exp = _check_exp(exp)
    sizes = tuple(_check_size(exp, "sizes", N) for N in sizes)
    if not sizes:
        raise ValueError("sizes: need at least one training-set size")
    n = check_int("n", n, low=2)
    steps = check_int("steps", steps, low=2, high=trained.N_STEPS)
    step_size = check_positive("step_size", step_size)
    k = check_int("k", k, low=1, high=n)
    n_snap = check_int("n_snap", n_snap, low=2, high=steps)
    n_boot, level = check_int("n_boot", n_boot, low=10), _check_level(level)
    boot_seed = check_seed(boot_seed, "boot_seed")
    o = exp.observation(_check_truth(truth))
    per = {key: [] for key in ("nearest", "rank", "nearest_dist", "q", "misfit_per_datum", "v", "nearest_v",
                               "snapshots", "coef_samples", "coef_train")}
    col = {key: [] for key in TrainedDPS._FIELDS}
    snap_levels = None
    coef = np.argsort(-_np(exp.pool_z.var(0)))[:2]       # the two coefficients that vary most in the pool
    for i, N in enumerate(sizes):
        prior = _trained_prior(exp, N, train_seed, hidden, depth, train_steps)
        ts, lk = exp.training_set(N), exp.lookup(N, o)
        fwd = exp.forward(N, cached=False)
        run = _dps_run(exp, prior, fwd, o, n, steps, step_size, seed, n_snap, directory)
        col["seconds"].append(run["seconds"])
        u = run["u"]
        z = ts.to_z(u)
        dist, idx = metrics.nearest(u, ts.u)
        mis = complex_nll(to_complex(fwd(u), fwd.n_src, fwd.n_rec), o.d_obs, o.sigma_d) / o.n_data
        v = _np(exp.velocities(N, u))
        per["nearest"].append(_np(idx))
        per["rank"].append(_np(_ranks(lk.nll)[idx]))
        per["nearest_dist"].append(_np(dist))
        per["q"].append(_np(metrics.d1_d2(z, ts.z)))
        per["misfit_per_datum"].append(_np(mis))
        per["v"].append(v[:k])
        per["nearest_v"].append(_np(exp.velocities(N, ts.u[idx[:k]])))
        snap_levels = _np(run["snap_levels"])
        per["snapshots"].append(_np(exp.velocities(N, run["snap_x0"])))
        per["coef_samples"].append(_np(z)[:, coef])
        per["coef_train"].append(_np(ts.z)[:, coef])
        # the lookup's spread: the weighted standard deviation of the training models
        vt = V.m_to_v(ts.m)
        w = lk.weights.to(vt.dtype)[:, None, None]
        vbar = (w * vt).sum(0)
        col["lookup_spread"].append(float(((w * (vt - vbar) ** 2).sum(0)).sqrt().mean()))
        cf = exp.sample("dps_normalized", N, o, step_size=0.05, seed=0)
        col["cf_spread"].append(float(_mean_std(_np(exp.velocities(N, cf.u)))))
        col["cf_misfit"].append(_median(cf.misfit_per_datum))
        uu = ts.u
        col["spacing"].append(_median((torch.cdist(uu, uu, compute_mode="donot_use_mm_for_euclid_dist") + 1e9 * torch.eye(N, dtype=uu.dtype)).min(1).values))
        col["lookup_best"].append(lk.best)
        col["lookup_misfit"].append(lk.misfit_per_datum)
        col["lookup_exp_H"].append(lk.exp_H)
        stats = (("frac_q", per["q"][-1] < metrics.D1D2_THRESHOLD, lambda a: a.mean(-1)),
                 ("on_best", per["nearest"][-1] == lk.best, lambda a: a.mean(-1)),
                 ("median_dist", per["nearest_dist"][-1], lambda a: np.median(a, -1)),
                 ("median_misfit", per["misfit_per_datum"][-1], lambda a: np.median(a, -1)),
                 ("spread", v, _mean_std))
        for j, (name, vals, stat) in enumerate(stats):
            vals = np.asarray(vals, dtype=np.float64)
            col[name].append(float(stat(vals[None])[0]))
            lo, hi = _bootstrap(vals, stat, n_boot, level, (boot_seed, N, j))
            col[name + "_lo"].append(lo)
            col[name + "_hi"].append(hi)
    cf_n = int(exp.sample("dps_normalized", sizes[0], o, step_size=0.05, seed=0).u.shape[0])
    settings = dict(truth=truth, seed=seed, train_seed=train_seed, start="N(0, I)", sampler="dps_normalized",
                    cf_steps=exp.schedule.n_steps, cf_step_size=0.05, **{key: prior.settings[key] for key in trained.DEFAULTS})
    return TrainedDPS(sizes=np.array(sizes), n=n, steps=steps, n_steps=prior.schedule.n_steps, step_size=step_size,
                      level=level, dx=exp.cfg.dx, cf_n=cf_n, snap_levels=snap_levels, coef=coef,
                      **{key: np.stack(v) for key, v in per.items() if key not in ("coef_samples", "coef_train")},
                      coef_samples=tuple(per["coef_samples"]), coef_train=tuple(per["coef_train"]),
                      **{key: np.array(v) for key, v in col.items()}, settings=settings)


# ----------------------------------------------------------------------------- representation error
__all__ += ["representation", "Representation"]


@dataclass(frozen=True)
class Representation:
    """What the basis can represent, kept apart from what a memorized prior returns.

    For each truth: the best velocity reachable in the basis (its least-squares KL projection),
    the homogeneous background (2 km/s) and the lookup's best training model, as RMS velocity errors.
    Then the basis's index range: ``i1, i2 in 1..K`` (the paper's) against ``0..K-1``.

    Attributes
    ----------
    truths : tuple of str [R]
        ``"lens"``, ``"prior"`` (a fresh draw of the training distribution: inside the span), ``"ood"``.
    sizes : ndarray of int [K]
    kl_rmse : ndarray [R]
        RMS velocity error of the KL projection (km/s): the floor in the basis.
    background_rmse : ndarray [R]
        RMS velocity error of the homogeneous 2 km/s background (km/s).
    kl_error : ndarray [R]
        ``||m_KL - m|| / ||m - m_bar||``.
    lookup_rmse : ndarray [R, K]
        RMS velocity error of the lookup's best training model (km/s), per N.
    lost_paper, lost_zero : float
        ``||m_KL - m|| / ||m - m_bar||`` of the lens with ``i in 1..K`` and with ``i in 0..K-1``.
    n_dropped : int
        Modes of ``0..K-1`` with ``i1 = 0`` or ``i2 = 0`` (absent from ``1..K``): ``2K - 1``.
    dropped_share : float
        Share of the lens's ``0..K-1`` projection (squared norm of ``m_KL - m_bar``) carried by those modes.
    """

    truths: tuple
    sizes: np.ndarray
    kl_rmse: np.ndarray
    background_rmse: np.ndarray
    kl_error: np.ndarray
    lookup_rmse: np.ndarray
    lost_paper: float
    lost_zero: float
    n_dropped: int
    dropped_share: float

    def get(self, name: str, truth: str, N: int | None = None) -> float:
        """``kl_rmse``, ``background_rmse``, ``kl_error`` of ``truth``; ``lookup_rmse`` also needs ``N``."""
        col = _field(self, name, ("kl_rmse", "background_rmse", "kl_error", "lookup_rmse"))
        i = _index_of(np.array(self.truths), truth, "truth")
        return float(col[i] if name != "lookup_rmse" else col[i, _index_of(self.sizes, N, "N")])

    def rows(self) -> list[dict]:
        """One dict per truth (for :func:`memprior.plots.fwi.html_table`)."""
        out = []
        for i, t in enumerate(self.truths):
            row = {"truth": t, "KL projection (floor)": float(self.kl_rmse[i]),
                   "2 km/s background": float(self.background_rmse[i])}
            row.update({f"lookup, N = {int(N)}": float(self.lookup_rmse[i, j]) for j, N in enumerate(self.sizes)})
            out.append(row)
        return out


@releases_memory
def representation(exp: FWIExperiment, *, truths=_ALL_TRUTHS, sizes=None) -> Representation:
    """RMS velocity errors (km/s) of the basis's best, the background and the lookup, per truth; the index range.

    Parameters
    ----------
    exp : FWIExperiment
    truths : sequence of {"lens", "prior", "ood"}
    sizes : sequence of int, optional
        Training-set sizes of the lookup (default: the experiment's).
    """
    exp = _check_exp(exp)
    truths = tuple(_check_truth(t) for t in truths)
    sizes = exp.cfg.sizes if sizes is None else tuple(_check_size(exp, "sizes", N) for N in sizes)
    if not truths or not sizes:
        raise ValueError("truths, sizes: need at least one of each")

    def rmse(v, w):
        return float(((v - w) ** 2).mean().sqrt())

    kl, bg, rel, lk = [], [], [], []
    for t in truths:
        o = exp.observation(t)
        tr = o.truth
        kl.append(rmse(V.m_to_v(tr.m_kl), tr.v))
        bg.append(rmse(torch.full_like(tr.v, float(V.M_BAR) ** -0.5), tr.v))
        rel.append(float((tr.m_kl - tr.m).norm() / (tr.m - V.M_BAR).norm()))
        lk.append([exp.lookup(N, o).v_rmse for N in sizes])
    c, lens = exp.cfg, exp.truth("lens")
    dm = lens.m - V.M_BAR
    lost = {}
    for start in (1, 0):
        b = V.KLBasis(c.grid, c.grid, K=c.K, start=start)
        z = b.project(lens.m)
        lost[start] = float((b.reconstruct(z) - lens.m).norm() / dm.norm())
    low = (b.index == 0).any(1)                                    # b: the 0..K-1 basis
    share = float((b.reconstruct(z * low) - V.M_BAR).pow(2).sum() / (b.reconstruct(z) - V.M_BAR).pow(2).sum())
    return Representation(truths=truths, sizes=np.array(sizes), kl_rmse=np.array(kl), background_rmse=np.array(bg),
                          kl_error=np.array(rel), lookup_rmse=np.array(lk), lost_paper=lost[1], lost_zero=lost[0],
                          n_dropped=int(low.sum()), dropped_share=share)



# -- the paper's protocol, side by side
@dataclass(frozen=True)
class Protocol:
    """The paper's FWI protocol against the book's default, with the effects that are cheap to measure.

    Attributes
    ----------
    paper, book : FWIConfig
        ``FWIConfig.paper(64)`` and the experiment's configuration.
    N : int
        Training-set size of the lookup comparison (lens data at the experiment's noise level).
    exp_H, exp_H_half : float
        Effective number of components of the lookup weights ``softmax(-f * nll)`` with the circular
        complex-Gaussian weight ``f = 1`` (the book) and the paper code's ``f = 1/2``.
    gap, gap_half : float
        NLL gap between the best and the second-best training model with each weight (``gap_half = gap / 2``).
    max_over_rms : float
        ``max|d| / rms|d|`` of the lens's clean data: the paper's noise (relative to ``max|d|``) is this many
        times the book's (relative to ``rms|d|``) at the same ``noise``.
    kl_error_book_lens, kl_error_paper_lens : float
        Relative error ``||m_KL - m|| / ||m - m_bar||`` of the KL projection of each lens on the book's grid.
    edge, interior : (int, int)
        The pixels of the gradient check: one on the grid's left edge at mid-depth, one at the centre.
    fd_edge, fd_interior : float
        Central finite-difference derivatives of the misfit (s^2/km^2)^-1, at the 2 km/s background.
    grad_edge, grad_edge_interior_only, grad_interior, grad_interior_interior_only : float
        Adjoint-state derivatives with the PML copies summed onto the pixel (the book's solver) and without
        them (``pml_copies=False``, the paper's solver).
    step : float
        Finite-difference step in s^2/km^2.
    """

    paper: FWIConfig
    book: FWIConfig
    N: int
    exp_H: float
    exp_H_half: float
    gap: float
    gap_half: float
    max_over_rms: float
    kl_error_book_lens: float
    kl_error_paper_lens: float
    edge: tuple
    interior: tuple
    fd_edge: float
    fd_interior: float
    grad_edge: float
    grad_edge_interior_only: float
    grad_interior: float
    grad_interior_interior_only: float
    step: float

    @staticmethod
    def _rel(g: float, fd: float) -> float:
        return abs(g - fd) / abs(fd)

    @property
    def err_edge(self) -> float:
        """Relative error of the book's gradient at the edge pixel against finite differences."""
        return self._rel(self.grad_edge, self.fd_edge)

    @property
    def err_edge_interior_only(self) -> float:
        """Relative error at the edge pixel of the gradient without the PML copies."""
        return self._rel(self.grad_edge_interior_only, self.fd_edge)

    @property
    def err_interior(self) -> float:
        """Relative error of the book's gradient at the interior pixel."""
        return self._rel(self.grad_interior, self.fd_interior)

    @property
    def err_interior_interior_only(self) -> float:
        """Relative error at the interior pixel without the PML copies (none there: the same gradient)."""
        return self._rel(self.grad_interior_interior_only, self.fd_interior)

    def rows(self) -> list[dict]:
        """One dict per setting: paper, book default, what the difference changes (for ``html_table``)."""
        p, b = self.paper, self.book

        def lens(c):
            w = ("15 % of the side, round" if c.lens_width is None
                 else f"σx = {c.lens_width[0]}, σz = {c.lens_width[1]} km")
            return f"{c.lens_v0 + c.lens_dv:.1f} km/s at the centre in {c.lens_v0:.1f} km/s; {w}"

        start = {"noise": "N(0, I)", "background": "background z = 0 noised to step T"}
        return [
            {"setting": "DPS start", "paper": start[p.dps_start] + " (comparison script: N(0, I))",
             "book": start[b.dps_start],
             "what the difference changes": "where the sampler starts; a memorized sampler commits early, so the "
                                            "start can decide the model it lands on"},
            {"setting": "geometry", "paper": f"{p.n_src} sources / {p.n_rec} receivers",
             "book": f"{b.n_src} sources / {b.n_rec} receivers",
             "what the difference changes": f"{p.n_src * p.n_rec / (b.n_src * b.n_rec):.0f}× the data: larger "
                                            "misfit gaps, an even sharper lookup"},
            {"setting": "noise", "paper": f"complex Gaussian, σ_d = noise · {p.noise_ref}|d|",
             "book": f"complex Gaussian, σ_d = noise · {b.noise_ref}|d|",
             "what the difference changes": f"at the same noise level the paper's σ_d is {self.max_over_rms:.2f}× "
                                            "the book's"},
            {"setting": "likelihood", "paper": f"{p.nll_factor:g} Σ|r|²/σ_d²",
             "book": f"{b.nll_factor:g} Σ|r|²/σ_d²",
             "what the difference changes": f"halves the data weight: NLL gap {self.gap:.1f} → {self.gap_half:.1f}, "
                                            f"exp(H) {self.exp_H:.4f} → {self.exp_H_half:.4f} (N = {self.N})"},
            {"setting": "lens", "paper": lens(p), "book": lens(b),
             "what the difference changes": f"KL projection error {self.kl_error_paper_lens:.2f} (paper's lens) "
                                            f"against {self.kl_error_book_lens:.2f} (book's)"},
            {"setting": "edge pixels", "paper": "interior of the padded gradient only",
             "book": "PML copies summed onto the edge pixels",
             "what the difference changes": f"edge-pixel derivative off by {self.err_edge_interior_only:.0%} "
                                            f"(book: {self.err_edge:.1e}; interior pixel {self.err_interior:.1e} "
                                            "either way)"},
        ]


@releases_memory
def protocol(exp: FWIExperiment, *, N: int = 200, step: float = 1e-6) -> Protocol:
    """The paper's FWI protocol side by side with the book's, and the effects of the differences.

    Measured on the experiment: the lookup weights of the lens data at ``N`` with the likelihood weight 1
    and 1/2; ``max|d| / rms|d|`` of the lens data; the KL projection errors of both lenses; and central
    finite differences (step ``step`` in s^2/km^2) of the misfit at the 2 km/s background, at an edge
    pixel and at the centre, against the adjoint gradient with and without the PML copies.
    """
    exp = _check_exp(exp)
    N = _check_size(exp, "N", N)
    step = check_positive("step", step)
    c, paper = exp.cfg, FWIConfig.paper(64)
    obs = exp.observation("lens")
    nll = exp.lookup(N, obs).nll
    srt = torch.sort(nll).values
    half = lookup_from_misfits(nll * paper.nll_factor)
    d = obs.d_clean.abs()
    kl = []
    for w, dv in ((c.lens_width, c.lens_dv), (paper.lens_width, paper.lens_dv)):
        m = V.v_to_m(V.gaussian_lens(c.grid, c.grid, c.dx, v0=c.lens_v0, dv=dv, width=w))
        kl.append(float((exp.basis.reconstruct(exp.basis.project(m)) - m).norm() / (m - V.M_BAR).norm()))
    m0 = np.full((c.grid, c.grid), float(V.M_BAR))
    edge, centre = (0, c.grid // 2), (c.grid // 2, c.grid // 2)

    def misfit(pix, h, copies=True):
        m = m0.copy()
        m[pix] += h
        return exp.solver.misfit_gradient(m, c.freq, exp.acq, obs.d_obs.numpy(), obs.sigma_d, pml_copies=copies)

    _, g, _ = misfit(edge, 0.0)
    _, g_int, _ = misfit(edge, 0.0, copies=False)
    fd = {p: (misfit(p, step)[0] - misfit(p, -step)[0]) / (2 * step) for p in (edge, centre)}
    return Protocol(paper=paper, book=c, N=N, exp_H=exp.lookup(N, obs).exp_H,
                    exp_H_half=posterior.effective_components(half), gap=float(srt[1] - srt[0]),
                    gap_half=float(paper.nll_factor * (srt[1] - srt[0])),
                    max_over_rms=float(d.max() / d.pow(2).mean().sqrt()),
                    kl_error_book_lens=kl[0], kl_error_paper_lens=kl[1], edge=edge, interior=centre,
                    fd_edge=float(fd[edge]), fd_interior=float(fd[centre]), grad_edge=float(g[edge]),
                    grad_edge_interior_only=float(g_int[edge]), grad_interior=float(g[centre]),
                    grad_interior_interior_only=float(g_int[centre]), step=step)


if __name__ == "__main__":      # python -m memprior.experiments.fwi --write-dps [DIR]
    import argparse
    import sys

    from .._cli import EXIT_OK, check_output_dir, run as run_cli
    ap = argparse.ArgumentParser(prog="python -m memprior.experiments.fwi",
                                 description="Write the shipped trained-prior DPS runs of chapter 7.")
    ap.add_argument("--write-dps", nargs="?", const="", metavar="DIR", required=True)
    args = ap.parse_args()
    if args.write_dps:
        check_output_dir(ap, "--write-dps", args.write_dps)
    torch.set_num_threads(1)
    sys.exit(run_cli(ap, lambda: [write_dps_runs(args.write_dps or None), EXIT_OK][1]))

"""The full-waveform-inversion experiment of chapter 7, as library code.

Siahkoohi & Sabeddu (2026) put a diffusion prior, trained on N velocity models,
under a frequency-domain FWI and ask how memorization shapes the posterior
samples.  This module builds every piece of that experiment so the chapter can
stay thin:

* :class:`FWIConfig`: grid, frequency, geometry, noise, training-set sizes; the
  book's small default and the paper-scale settings (:meth:`FWIConfig.paper`).
* :class:`FWIExperiment`: the KL basis, the Helmholtz solver, a transmission
  geometry, a seeded pool of random-field training models with their forward data
  (one LU per model, computed once), true models *not* in the training set (a
  Gaussian lens and an out-of-distribution random field), noisy data with the
  complex-Gaussian likelihood, and methods for the exact lookup, the samplers
  (DPS, the paper's normalized variant, the exact reweighted sampler), the
  linearized Gaussian-mixture posterior and the memorization metrics with their
  null baselines.
* :class:`KLForward`: the forward map from z-scored KL coefficients to data, a
  batched torch callable (complex data stacked as real and imaginary parts) that
  autograd can differentiate through the solver.

Likelihood convention
---------------------
Complex data ``d = F(m) + e`` with circular Gaussian noise of variance
``sigma_d^2`` per entry (``E|e|^2 = sigma_d^2``: real and imaginary parts each have
variance ``sigma_d^2 / 2``) have negative log-likelihood
``sum |d - F(m)|^2 / sigma_d^2``.  Stacked as a real vector
``[Re d, Im d]`` this is the ordinary Gaussian ``||y - F||^2 / (2 gamma^2)`` with
``gamma = sigma_d / sqrt(2)``, which is the ``gamma`` handed to the samplers and
posteriors of :mod:`memprior.posterior` and :mod:`memprior.guidance`.

Noise level: ``noise = 0.05`` means ``sigma_d = 0.05 * rms(|d_clean|)``, so that
``||e|| / ||d_clean|| ~ 0.05``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from . import velocity as V
from ._checks import as_tensor, check_int, check_positive, progress

__all__ = [
    "FWIConfig", "FWIExperiment", "TrainingSet", "Truth", "Observation", "KLForward",
    "LookupResult", "SampleResult", "RecordingDenoiser", "run_pipeline",
    "make_training_set", "random_field_models", "zscore", "complex_noise", "complex_nll", "gamma_of",
    "to_real", "to_complex", "lookup_from_misfits", "commitment_steps", "commitment_curves", "schedule_for",
]


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class FWIConfig:
    """Sizes and settings of the FWI experiment.

    Parameters
    ----------
    n : int
        Grid points per side (the model is ``n x n``).
    extent : float
        Side of the square model in km; ``dx = extent / n``.
    npml : int
        PML cells on each side.
    freq : float
        Frequency in Hz.
    n_src, n_rec : int
        Sources on the top row, receivers on the bottom row (transmission).
    K : int
        KL modes per direction, ``d = K^2``.
    noise : float
        Relative noise level (``sigma_d = noise * rms|d_clean|``), > 0.
    sizes : tuple of int
        Training-set sizes N (each >= 2); the sets are nested.
    seed : int
        Seed of the training pool (the truths and noise use their own seeds).
    n_samples : int
        Posterior samples per sampler run.
    n_steps : int
        Diffusion steps T.  The betas are the paper's linear schedule (1e-4..0.02 over
        200 steps) rescaled to ``T`` steps, so the terminal noise level is the paper's.
    order : int
        Stencil order of the Helmholtz solver.
    """

    n: int = 32
    extent: float = 2.0
    npml: int = 8
    freq: float = 2.5
    n_src: int = 5
    n_rec: int = 24
    K: int = 10
    noise: float = 0.05
    sizes: tuple = (50, 200, 1000)
    seed: int = 0
    n_samples: int = 8
    n_steps: int = 100
    order: int = 2

    def __post_init__(self):
        check_int("n", self.n, low=8)
        check_positive("extent", self.extent)
        check_int("npml", self.npml, low=5)
        check_positive("freq", self.freq)
        check_int("n_src", self.n_src, low=1)
        check_int("n_rec", self.n_rec, low=1)
        check_int("K", self.K, low=1)
        if self.K + 1 > self.n:
            raise ValueError(f"K: the {self.n}x{self.n} grid resolves at most {self.n - 1} modes per direction, "
                             f"got K={self.K} (basis/grid mismatch)")
        check_positive("noise", self.noise)
        if len(self.sizes) < 1:
            raise ValueError("sizes: need at least one training-set size N")
        for N in self.sizes:
            check_int("sizes", N, low=2)
        check_int("seed", self.seed, low=0)
        check_int("n_samples", self.n_samples, low=1)
        check_int("n_steps", self.n_steps, low=2)
        check_int("order", self.order, low=2)

    @property
    def dx(self) -> float:
        """Grid spacing in km."""
        return self.extent / self.n

    @property
    def d(self) -> int:
        """Number of KL coefficients."""
        return self.K ** 2

    @classmethod
    def paper(cls, grid: int = 64, **kw) -> "FWIConfig":
        """The paper's settings (Siahkoohi & Sabeddu 2026).

        ``grid=64``: 64^2, dx = 2/64 km, 10 PML cells, 4 Hz, 5 sources / 40 receivers
        (pass ``n_src=50, n_rec=200`` for the denser variant).  ``grid=200``: 200^2,
        dx = 10 m, 30 PML cells, 6 Hz, 15 sources / 196 receivers.  Both use N in
        {50, 200, 1000} and 200 diffusion steps; ``**kw`` overrides any field.
        """
        if grid == 64:
            base = dict(n=64, extent=2.0, npml=10, freq=4.0, n_src=5, n_rec=40, n_steps=200, n_samples=16)
        elif grid == 200:
            base = dict(n=200, extent=2.0, npml=30, freq=6.0, n_src=15, n_rec=196, n_steps=200, n_samples=16)
        else:
            raise ValueError(f"grid: the paper's settings exist for 64 or 200, got {grid!r}")
        base.update(kw)
        return cls(**base)


def schedule_for(n_steps: int):
    """The paper's linear DDPM schedule (betas 1e-4..0.02 over 200 steps) rescaled to ``n_steps``.

    Scaling the betas by ``200 / n_steps`` keeps ``sum(beta)``, hence the terminal
    level ``alpha_bar[T-1] ~ 0.13``, close to the paper's.
    """
    from .diffusion import Schedule
    n_steps = check_int("n_steps", n_steps, low=2)
    f = 200.0 / n_steps
    return Schedule.linear(n_steps=n_steps, beta_start=min(1e-4 * f, 0.5), beta_end=min(0.02 * f, 0.9))


# ----------------------------------------------------------------------------- training sets
def zscore(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-dimension z-scoring ``u = (z - mu) / s``; returns ``(u, mu, s)``.

    Parameters
    ----------
    z : Tensor [N, d], N >= 2

    Raises
    ------
    ValueError
        If N < 2 (no spread to scale by) or a coordinate is constant.
    """
    z = as_tensor("z", z, ndim=2)
    if z.shape[0] < 2:
        raise ValueError(f"z: need N >= 2 models to z-score, got N = {z.shape[0]}")
    mu = z.mean(0)
    s = z.std(0)
    if not bool((s > 0).all()):
        raise ValueError("z: a coefficient is constant over the training set; cannot z-score it")
    return (z - mu) / s, mu, s


@dataclass
class TrainingSet:
    """N training models in KL space.

    Attributes
    ----------
    z : Tensor [N, d]
        Raw KL coefficients (least-squares projections of random-field models).
    u : Tensor [N, d]
        z-scored coefficients, ``u = (z - mu) / s``: what the prior is trained on.
    mu, s : Tensor [d]
        The z-scoring statistics of *this* set.
    m : Tensor [N, nx, nz]
        Reconstructed squared slowness (s^2/km^2) of each model.
    index : LongTensor [N]
        Positions in the experiment's pool (nested sets share a prefix).
    """

    z: torch.Tensor
    u: torch.Tensor
    mu: torch.Tensor
    s: torch.Tensor
    m: torch.Tensor
    index: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.z.shape[0])

    def to_z(self, u) -> torch.Tensor:
        """Raw coefficients of z-scored ``u [B, d]``."""
        return self.mu + self.s * u

    def to_u(self, z) -> torch.Tensor:
        """z-scored coordinates of raw coefficients ``z [B, d]``."""
        return (z - self.mu) / self.s


def random_field_models(basis: V.KLBasis, n: int, seed: int, alpha: float = 3.0, tau: float = 5.0,
                        vmin: float = 1.5, vmax: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-field velocity models projected onto the KL basis.

    GRF (periodic, spectrum ``(4 pi^2 |k|^2 + tau^2)^(-alpha/2)``) -> rescaled to
    ``[vmin, vmax]`` km/s -> squared slowness -> least-squares KL coefficients.

    Returns
    -------
    (z [n, d] raw coefficients, m [n, nx, nz] their reconstructions in s^2/km^2)
    """
    if not isinstance(basis, V.KLBasis):
        raise TypeError(f"basis: expected a memprior.velocity.KLBasis, got {type(basis).__name__}")
    n = check_int("n", n, low=1)
    seed = check_int("seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    f = V.grf(n, basis.nx, basis.nz, alpha=alpha, tau=tau, generator=g)
    m_full = V.v_to_m(V.rescale(f, vmin, vmax))
    z = basis.project(m_full)
    return z, basis.reconstruct(z)


def make_training_set(basis: V.KLBasis, N: int, seed: int = 0) -> TrainingSet:
    """A seeded training set of ``N >= 2`` random-field models in KL space (z-scored)."""
    N = check_int("N", N, low=2)
    z, m = random_field_models(basis, N, seed)
    u, mu, s = zscore(z)
    return TrainingSet(z=z, u=u, mu=mu, s=s, m=m, index=torch.arange(N))


# ----------------------------------------------------------------------------- noise and likelihood
def complex_noise(shape, sigma_d: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Circular complex Gaussian noise with ``E|e|^2 = sigma_d^2`` per entry (complex128).

    Real and imaginary parts are independent with variance ``sigma_d^2 / 2`` each.
    """
    sigma_d = check_positive("sigma_d", sigma_d)
    re = torch.randn(*shape, dtype=torch.float64, generator=generator)
    im = torch.randn(*shape, dtype=torch.float64, generator=generator)
    return (sigma_d / math.sqrt(2.0)) * torch.complex(re, im)


def complex_nll(d_pred, d_obs, sigma_d: float) -> torch.Tensor:
    """Negative log-likelihood ``sum |d_obs - d_pred|^2 / sigma_d^2`` (constants dropped).

    ``d_pred`` may carry leading batch dimensions; the sum runs over the dimensions of
    ``d_obs``.  Returns a float64 Tensor of the batch shape.
    """
    sigma_d = check_positive("sigma_d", sigma_d)
    dp = torch.as_tensor(d_pred)
    do = torch.as_tensor(d_obs)
    k = dp.dim() - do.dim()
    if k < 0 or tuple(dp.shape[k:]) != tuple(do.shape):
        raise ValueError(f"d_pred: trailing shape must match d_obs {list(do.shape)}, got {list(dp.shape)}")
    r = (do - dp).abs() ** 2
    return r.reshape(*dp.shape[:k], -1).sum(-1).to(torch.float64) / sigma_d ** 2


def to_real(d: torch.Tensor) -> torch.Tensor:
    """Stack complex data ``[..., ns, nr]`` as a real vector ``[..., 2 ns nr]`` (real parts first)."""
    flat = d.reshape(*d.shape[:-2], -1)
    return torch.cat([flat.real, flat.imag], dim=-1)


def to_complex(y: torch.Tensor, n_src: int, n_rec: int) -> torch.Tensor:
    """Inverse of :func:`to_real`: ``[..., 2 ns nr] -> [..., ns, nr]`` complex."""
    M = n_src * n_rec
    if y.shape[-1] != 2 * M:
        raise ValueError(f"y: expected last dimension 2 * {n_src} * {n_rec} = {2 * M}, got {y.shape[-1]}")
    return torch.complex(y[..., :M], y[..., M:]).reshape(*y.shape[:-1], n_src, n_rec)


def gamma_of(sigma_d: float) -> float:
    """Per-component standard deviation of real-stacked data, ``sigma_d / sqrt(2)``.

    With it, ``||y - F||^2 / (2 gamma^2) = sum |d - F|^2 / sigma_d^2``.
    """
    return check_positive("sigma_d", sigma_d) / math.sqrt(2.0)


def lookup_from_misfits(nll) -> torch.Tensor:
    """Lookup weights ``softmax(-nll)`` from per-model negative log-likelihoods ``[N]``."""
    nll = as_tensor("nll", nll, ndim=1)
    if nll.shape[0] < 1:
        raise ValueError("nll: need at least one model")
    return torch.softmax(-nll.to(torch.float64), 0)


# ----------------------------------------------------------------------------- the forward map
class KLForward:
    """Forward map from z-scored KL coefficients to real-stacked complex data.

    ``u [B, d] -> z = mu + s * u -> m = m_bar + sigma_m sum_a z_a lam_a phi_a -> d = F(m)``
    (complex ``[n_src, n_rec]``) ``-> [Re d, Im d]`` flattened: ``[B, 2 n_src n_rec]``.
    One sparse LU per distinct model (the solver caches factorizations, so a model met
    again, e.g. a committed sampler's repeated estimate, costs only solves).  When ``u``
    requires grad the map is differentiable through the solver (adjoint state, via
    :class:`memprior.wave.HelmholtzData`).  Use it with ``gamma = sigma_d / sqrt(2)``.

    Parameters
    ----------
    solver : memprior.wave.Helmholtz2D
    acq : memprior.wave.Acquisition
    freq : float
        Hz.
    basis : memprior.velocity.KLBasis
        Must live on the solver's grid.
    mu, s : Tensor [d], optional
        z-scoring statistics (default 0 and 1: raw coefficients).
    cache : (Tensor [N, d], Tensor [N, 2M]), optional
        Known inputs and their data (the training set), returned without solving.

    Attributes
    ----------
    n_calls : int
        Models sent to the solver so far (cache hits excluded).
    """

    def __init__(self, solver, acq, freq: float, basis: V.KLBasis, mu=None, s=None, cache=None):
        if not isinstance(basis, V.KLBasis):
            raise TypeError(f"basis: expected a memprior.velocity.KLBasis, got {type(basis).__name__}")
        if (solver.nx, solver.nz) != (basis.nx, basis.nz):
            raise ValueError(f"basis: grid {basis.nx}x{basis.nz} does not match the solver's "
                             f"{solver.nx}x{solver.nz} (basis/grid mismatch)")
        solver.check_acquisition(acq)
        self.solver, self.acq, self.basis = solver, acq, basis
        self.freq = check_positive("freq", freq)
        d = basis.d
        self.mu = torch.zeros(d, dtype=torch.float64) if mu is None else as_tensor("mu", mu, ndim=1)
        self.s = torch.ones(d, dtype=torch.float64) if s is None else as_tensor("s", s, ndim=1)
        if self.mu.shape[0] != d or self.s.shape[0] != d:
            raise ValueError(f"mu, s: expected shape [{d}] (d of the basis)")
        if not bool((self.s > 0).all()):
            raise ValueError("s: z-scoring scales must be > 0")
        self.n_src, self.n_rec = acq.n_src, acq.n_rec
        self.m = 2 * self.n_src * self.n_rec
        self.dim = d
        self._cache: dict[bytes, torch.Tensor] = {}
        if cache is not None:
            keys, vals = cache
            keys = as_tensor("cache", keys, ndim=2)
            vals = as_tensor("cache", vals, ndim=2)
            if keys.shape[0] != vals.shape[0] or keys.shape[1] != d or vals.shape[1] != self.m:
                raise ValueError(f"cache: expected ([N, {d}], [N, {self.m}]), got "
                                 f"({list(keys.shape)}, {list(vals.shape)})")
            for k, v in zip(keys, vals):
                self._cache[self._key(k)] = v.to(torch.float64).clone()
        self.n_calls = 0

    @staticmethod
    def _key(row: torch.Tensor) -> bytes:
        return row.detach().to(torch.float64).contiguous().numpy().tobytes()

    def _check_u(self, u) -> torch.Tensor:
        if not isinstance(u, torch.Tensor):
            u = as_tensor("u", u)
        if u.dim() != 2 or u.shape[1] != self.dim:
            raise ValueError(f"u: expected shape [B, {self.dim}], got {list(u.shape)}")
        if not torch.isfinite(u).all():
            raise ValueError("u: contains NaN or inf")
        return u

    def models(self, u) -> torch.Tensor:
        """Squared slowness ``[B, nx, nz]`` (s^2/km^2) of ``u [B, d]``; differentiable in ``u``."""
        u = self._check_u(u)
        return self.basis.coeffs_to_m(self.mu + self.s * u.to(torch.float64))

    def complex_data(self, m) -> torch.Tensor:
        """Complex data ``[B, n_src, n_rec]`` of models ``m [B, nx, nz]`` (no autograd)."""
        m = as_tensor("m", m)
        if m.dim() == 2:
            m = m[None]
        out = []
        for mb in m:
            out.append(torch.as_tensor(self.solver.forward(mb.detach(), self.freq, self.acq)))
            self.n_calls += 1
        return torch.stack(out)

    def __call__(self, u) -> torch.Tensor:
        """Data ``[B, 2 n_src n_rec]`` of ``u [B, d]``; differentiable when ``u`` requires grad."""
        u = self._check_u(u)
        if not u.requires_grad:
            hits = [self._cache.get(self._key(r)) for r in u] if self._cache else [None] * u.shape[0]
            miss = [i for i, h in enumerate(hits) if h is None]
            if miss:
                new = to_real(self.complex_data(self.models(u[miss])))
                for j, i in enumerate(miss):
                    hits[i] = new[j]
            return torch.stack(hits).to(u.dtype)
        m = self.models(u)
        out = []
        for mb in m:
            out.append(to_real(self.solver.torch_forward(mb, self.freq, self.acq)))
            self.n_calls += 1
        return torch.stack(out).to(u.dtype)

    def jacobian(self, u) -> torch.Tensor:
        """Jacobians ``[B, 2M, d]`` of the real-stacked data in ``u``.

        Computed with :meth:`memprior.wave.Helmholtz2D.jacobian` (multi-RHS solves with one
        factorization per model; the receiver-reciprocity variant, which needs
        ``n_src + n_rec`` solves instead of ``n_src * d``).
        """
        u = self._check_u(u)
        m = self.models(u.detach())
        cols = self.basis.dm_dz() * self.s[:, None, None]  # dm/du_a
        out = []
        for mb in m:
            Jc = torch.as_tensor(self.solver.jacobian(mb, self.freq, self.acq, cols, method="reciprocal"))
            out.append(torch.cat([Jc.real, Jc.imag], 0).to(torch.float64))
            self.n_calls += 1
        return torch.stack(out)


# ----------------------------------------------------------------------------- truths and data
@dataclass
class Truth:
    """A true model used to make data; it is not one of the training models.

    Attributes
    ----------
    name : str
    v : Tensor [nx, nz]
        Velocity in km/s on the grid (the data are made from this full-grid model).
    m : Tensor [nx, nz]
        Squared slowness in s^2/km^2.
    z : Tensor [d]
        Least-squares KL coefficients of ``m`` (raw): the truth as the prior can represent it.
    m_kl : Tensor [nx, nz]
        The KL reconstruction of ``z``.
    """

    name: str
    v: torch.Tensor
    m: torch.Tensor
    z: torch.Tensor
    m_kl: torch.Tensor


@dataclass
class Observation:
    """Noisy complex data and the matching likelihood scales.

    Attributes
    ----------
    truth : Truth
    d_clean, d_obs : Tensor [n_src, n_rec], complex128
    noise : float
        Relative noise level.
    sigma_d : float
        Complex noise standard deviation, ``noise * rms|d_clean|``.
    gamma : float
        ``sigma_d / sqrt(2)``, the standard deviation of each real-stacked component.
    y : Tensor [2 n_src n_rec]
        ``[Re d_obs, Im d_obs]``.
    nll_truth : float
        ``sum |d_obs - d_clean|^2 / sigma_d^2`` (about the number of complex data).
    """

    truth: Truth
    d_clean: torch.Tensor
    d_obs: torch.Tensor
    noise: float
    sigma_d: float
    gamma: float
    y: torch.Tensor
    nll_truth: float

    @property
    def n_data(self) -> int:
        """Number of complex data."""
        return int(self.d_obs.numel())


@dataclass
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


@dataclass
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
        The recorded iterates ``{"t", "x", "x0_hat"}`` (DPS variants), see :class:`RecordingDenoiser`.
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


class RecordingDenoiser:
    """Wrap a denoiser and record the iterate at every level it is called on.

    The samplers of :mod:`memprior.guidance` call ``denoise(x_t, t)`` once per level; the
    record (last call per level) gives the trajectory that
    :func:`memprior.diffusion.commitment_step` needs.  Everything else is delegated.
    """

    def __init__(self, inner):
        self.inner = inner
        self.record: dict[int, torch.Tensor] = {}
        self.record_x0: dict[int, torch.Tensor] = {}

    def __getattr__(self, name):
        if name in ("inner", "record", "record_x0"):  # not set yet (e.g. during copying)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def denoise(self, x_t, t):
        out = self.inner.denoise(x_t, t)
        self.record[int(t)] = x_t.detach().to(torch.float64).clone()
        self.record_x0[int(t)] = out.detach().to(torch.float64).clone()
        return out

    def eps(self, x_t, t):
        return self.inner.eps(x_t, t)

    def trajectory(self) -> dict:
        """``{"t": LongTensor[S], "x": Tensor[S, n, d], "x0_hat": Tensor[S, n, d]}``, noisiest first."""
        if not self.record:
            raise ValueError("record: the denoiser has not been called yet")
        ts = sorted(self.record, reverse=True)
        return {"t": torch.tensor(ts, dtype=torch.long), "x": torch.stack([self.record[t] for t in ts]),
                "x0_hat": torch.stack([self.record_x0[t] for t in ts])}


def commitment_curves(denoiser, trajectory: dict) -> torch.Tensor:
    """Closed-form weight of each sample's final training model at every recorded level.

    Parameters
    ----------
    denoiser : memprior.diffusion.MemorizedDenoiser
    trajectory : dict
        ``{"t", "x", "x0_hat"}`` as from :meth:`RecordingDenoiser.trajectory`.

    Returns
    -------
    Tensor [S, n]: ``w_k(x_t)`` with ``k`` the training point nearest to the last ``x0_hat``;
    1 means the sample is locked on ``k``.
    """
    from .diffusion import MemorizedDenoiser
    if not isinstance(denoiser, MemorizedDenoiser):
        raise TypeError("denoiser: expected a MemorizedDenoiser")
    if not isinstance(trajectory, dict) or not {"t", "x", "x0_hat"} <= set(trajectory):
        raise TypeError("trajectory: expected a dict with keys 't', 'x', 'x0_hat'")
    target = torch.cdist(trajectory["x0_hat"][-1].to(torch.float64), denoiser.x_train).argmin(1)
    return torch.stack([denoiser.weights(x, int(t)).gather(1, target[:, None])[:, 0]
                        for t, x in zip(trajectory["t"], trajectory["x"])])


def commitment_steps(denoiser, trajectory: dict, threshold: float = 0.9) -> torch.Tensor:
    """Level at which each sample commits to one training example (see :func:`memprior.diffusion.commitment_step`)."""
    from .diffusion import commitment_step
    return commitment_step(denoiser, trajectory, threshold=threshold)


# ----------------------------------------------------------------------------- the experiment
_METHODS = ("dps", "dps_normalized", "exact")


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
        from .wave import Acquisition, Helmholtz2D
        cfg = FWIConfig() if config is None else config
        if not isinstance(cfg, FWIConfig):
            raise TypeError(f"config: expected an FWIConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.show_progress = bool(show_progress)
        self.basis = V.KLBasis(cfg.n, cfg.n, K=cfg.K)
        # cache enough factorizations for a batch of committed samples (one LU per distinct model)
        self.solver = Helmholtz2D(cfg.n, cfg.n, cfg.dx, npml=cfg.npml, order=cfg.order,
                                  cache_size=max(16, 2 * cfg.n_samples + 4))
        self.acq = Acquisition.transmission(cfg.n, cfg.n, cfg.dx, cfg.n_src, cfg.n_rec)
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
        self.timings: dict[str, float] = {}

    def __repr__(self) -> str:
        c = self.cfg
        return (f"FWIExperiment(n={c.n}, dx={c.dx:.4g} km, freq={c.freq} Hz, {c.n_src} sources / {c.n_rec} "
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
        seed = check_int("seed", seed, low=0)
        if seed == self.cfg.seed:
            raise ValueError(f"seed: must differ from the training pool's seed {self.cfg.seed}")
        return random_field_models(self.basis, n, seed)[0]

    # -- truths and data
    def truth(self, kind: str = "lens", seed: int = 777) -> Truth:
        """A true model that is not in the training set.

        ``"lens"``: a slow Gaussian lens (2 km/s background, -0.4 km/s at the centre, width
        15 % of the side).  ``"ood"``: an out-of-distribution random field (alpha = 2,
        tau = 3: rougher and longer-range than the training fields' alpha = 3, tau = 5),
        rescaled to 1.7-2.7 km/s.
        """
        c = self.cfg
        if kind == "lens":
            v = V.gaussian_lens(c.n, c.n, c.dx, v0=2.0, dv=-0.4)
        elif kind == "ood":
            g = torch.Generator().manual_seed(check_int("seed", seed, low=0))
            v = V.rescale(V.grf(1, c.n, c.n, alpha=2.0, tau=3.0, generator=g)[0], 1.7, 2.7)
        else:
            raise ValueError(f"kind: must be 'lens' or 'ood', got {kind!r}")
        m = V.v_to_m(v)
        z = self.basis.project(m)
        return Truth(name=kind, v=v, m=m, z=z, m_kl=self.basis.reconstruct(z))

    def observe(self, truth: Truth, noise: float | None = None, seed: int = 1) -> Observation:
        """Noisy data of ``truth``: ``d_obs = d_clean + e``, ``E|e|^2 = sigma_d^2``, ``sigma_d = noise * rms|d_clean|``.

        The same seed gives the same standard-normal draw at every noise level.
        """
        if not isinstance(truth, Truth):
            raise TypeError(f"truth: expected a Truth (from FWIExperiment.truth), got {type(truth).__name__}")
        noise = self.cfg.noise if noise is None else check_positive("noise", noise)
        d = torch.as_tensor(self.solver.forward(truth.m, self.cfg.freq, self.acq))
        sigma_d = noise * float(d.abs().pow(2).mean().sqrt())
        g = torch.Generator().manual_seed(check_int("seed", seed, low=0))
        e = complex_noise(d.shape, 1.0, g) * sigma_d
        d_obs = d + e
        return Observation(truth=truth, d_clean=d, d_obs=d_obs, noise=noise, sigma_d=sigma_d,
                           gamma=gamma_of(sigma_d), y=to_real(d_obs),
                           nll_truth=float(complex_nll(d, d_obs, sigma_d)))

    # -- the theory: exact lookup
    def lookup(self, N: int, obs: Observation) -> LookupResult:
        """The posterior under the memorized prior of training set ``N``: a likelihood-weighted lookup."""
        from .posterior import effective_components
        ts = self.training_set(N)
        nll = complex_nll(self.pool_data_upto(N), obs.d_obs, obs.sigma_d)
        w = lookup_from_misfits(nll)
        order = torch.argsort(nll)
        best = int(order[0])
        gap = float(nll[order[1]] - nll[order[0]])
        t = obs.truth
        dm = t.m - V.M_BAR
        vb = V.m_to_v(ts.m[best])
        return LookupResult(
            N=N, nll=nll, weights=w, exp_H=effective_components(w), best=best,
            misfit_per_datum=float(nll[best]) / obs.n_data,
            truth_misfit_per_datum=obs.nll_truth / obs.n_data, gap=gap,
            v_rmse=float(((vb - t.v) ** 2).mean().sqrt()),
            rel_error=float((ts.m[best] - t.m).norm() / dm.norm()),
            rel_error_kl=float((t.m_kl - t.m).norm() / dm.norm()),
            u_dist=float((ts.u[best] - ts.to_u(t.z)).norm()))

    # -- samplers
    def denoiser(self, N: int):
        """The closed-form memorized denoiser of training set ``N`` (z-scored coordinates)."""
        from .diffusion import MemorizedDenoiser
        return MemorizedDenoiser(self.training_set(N).u, self.schedule)

    def sample(self, method: str, N: int, obs: Observation, n: int | None = None, *, seed: int = 0,
               zeta: float = 1.0, eta: float = 0.05, steps: int | None = None, denoiser=None,
               rule: str = "chung", cached: bool = True) -> SampleResult:
        """Run one posterior sampler.

        Parameters
        ----------
        method : {"dps", "dps_normalized", "exact"}
            DPS of Chung et al. (autograd through the denoiser, step ``zeta``), the paper's
            normalized variant (step length ``eta``), or the exact reweighted sampler of the
            memorized prior.
        N : int
            Training-set size.
        obs : Observation
        n : int, optional
            Number of samples (default ``cfg.n_samples``).
        seed : int
            Seeds the sampler's generator.
        zeta, eta, rule : sampler settings (see :mod:`memprior.guidance`).
        steps : int, optional
            Visit only ``steps`` evenly spaced levels of the schedule.
        denoiser : optional
            Any denoiser in these coordinates (default: the closed-form memorized one).
        cached : bool
            Precompute the training models' data (needed by ``"exact"``); see :meth:`forward`.
        """
        from . import guidance
        from .diffusion import MemorizedDenoiser
        from .metrics import nearest
        if method not in _METHODS:
            raise ValueError(f"method: must be one of {_METHODS}, got {method!r}")
        if not isinstance(obs, Observation):
            raise TypeError(f"obs: expected an Observation, got {type(obs).__name__}")
        n = self.cfg.n_samples if n is None else check_int("n", n, low=1)
        ts = self.training_set(N)
        if method == "exact" and not cached:
            raise ValueError("cached: the exact sampler needs the training models' data (cached=True)")
        fwd = self.forward(N, cached=cached)
        closed = self.denoiser(N)
        den = closed if denoiser is None else denoiser
        rec = RecordingDenoiser(den)
        g = torch.Generator().manual_seed(check_int("seed", seed, low=0))
        calls0 = fwd.n_calls
        lu0 = self.solver.n_factorizations
        t0 = time.perf_counter()
        T = self.schedule.n_steps
        if method == "dps":
            u = guidance.dps_sample(rec, self.schedule, fwd, obs.y, obs.gamma, n, zeta=zeta, generator=g,
                                    steps=steps, rule=rule)
        elif method == "dps_normalized":
            u = guidance.dps_normalized_sample(rec, self.schedule, fwd, obs.y, n, eta=eta, generator=g,
                                               steps=steps)
        else:
            u, _ = guidance.exact_posterior_sample(ts.u, fwd, obs.y, obs.gamma, self.schedule, n, generator=g,
                                                   steps=steps, return_index=True)
        secs = time.perf_counter() - t0
        u = u.detach().to(torch.float64)
        traj = None
        if method == "exact":
            commit = torch.full((n,), T - 1, dtype=torch.long)
        else:
            traj = rec.trajectory()
            commit = commitment_steps(closed if not isinstance(den, MemorizedDenoiser) else den, traj)
        dist, idx = nearest(u, ts.u)
        calls = fwd.n_calls - calls0
        lus = self.solver.n_factorizations - lu0
        data = to_complex(fwd(u), fwd.n_src, fwd.n_rec)
        mis = complex_nll(data, obs.d_obs, obs.sigma_d) / obs.n_data
        return SampleResult(method=method, N=N, u=u, z=ts.to_z(u), nearest=idx, nearest_dist=dist, commit=commit,
                            misfit_per_datum=mis, n_solver_calls=calls, n_factorizations=lus, seconds=secs,
                            settings=dict(zeta=zeta, eta=eta, steps=steps, seed=seed, rule=rule, n=n),
                            trajectory=traj)

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
        from .posterior import linearized_mixture
        sigma = check_positive("sigma", sigma)
        N = check_int("N", N, low=2, high=self.n_max)
        top = min(16, N) if top is None else check_int("top", top, low=1, high=N)
        lk = self.lookup(N, obs)
        idx = torch.argsort(lk.nll)[:top]
        J = self.jacobians(N, idx)
        mix = linearized_mixture(self.forward(N), self.training_set(N).u[idx], obs.y, sigma, obs.gamma,
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
        from .metrics import D1D2_THRESHOLD, PAPER_THRESHOLD, d1_d2, memorized_fraction, nn_ratio, null_baseline
        ts = self.training_set(N)
        if space not in ("raw", "zscored"):
            raise ValueError(f"space: must be 'raw' or 'zscored', got {space!r}")
        tr = ts.z if space == "raw" else ts.u
        zs = as_tensor("z_samples", z_samples, ndim=2)
        fz = as_tensor("fresh_z", fresh_z, ndim=2)
        if space == "zscored":
            zs, fz = ts.to_u(zs), ts.to_u(fz)
        r, q = nn_ratio(zs, tr), d1_d2(zs, tr)
        nr, nq = null_baseline(fz, tr, "nn_ratio"), null_baseline(fz, tr, "d1_d2")
        out = dict(N=N, r=r, q=q, null_r=nr, null_q=nq)
        for key, s, thr in (("frac_r", r, PAPER_THRESHOLD), ("frac_q", q, D1D2_THRESHOLD),
                            ("null_frac_r", nr, PAPER_THRESHOLD), ("null_frac_q", nq, D1D2_THRESHOLD)):
            out[key], out[key + "_se"] = memorized_fraction(s, thr)
        return out

    # -- a trained network at reduced dimension
    def train_mlp(self, N: int, *, steps: int = 1500, hidden: int = 128, depth: int = 3, seed: int = 0,
                  cache: bool = True):
        """Train a small MLP denoiser on training set ``N`` (z-scored coordinates).

        Meant for a reduced basis (e.g. ``K = 4``, ``d = 16``): see
        :func:`memprior.diffusion.train_denoiser` for the loss, EMA and caching.
        """
        from .diffusion import train_denoiser
        t0 = time.perf_counter()
        net = train_denoiser(self.training_set(N).u, self.schedule, steps=steps, hidden=hidden, depth=depth,
                             seed=seed, cache=cache, show_progress=self.show_progress)
        self.timings[f"train_mlp N={N}"] = time.perf_counter() - t0
        return net


def run_pipeline(exp: FWIExperiment, truth: str = "lens", sizes=None, methods=_METHODS, n: int | None = None,
                 n_fresh: int = 200, sigma: float = 0.05, top: int = 8, seed: int = 0, zeta: float = 1.0,
                 eta: float = 0.05) -> dict:
    """The whole experiment for one truth: lookup, samplers, linearized mixture, memorization, per N.

    Used for the paper-scale run (``benchmarks/bench_fwi.py``).  Returns a dict with the
    per-N results and the wall time of each stage.
    """
    if not isinstance(exp, FWIExperiment):
        raise TypeError(f"exp: expected an FWIExperiment, got {type(exp).__name__}")
    sizes = exp.cfg.sizes if sizes is None else tuple(sizes)
    for m in methods:
        if m not in _METHODS:
            raise ValueError(f"methods: each must be one of {_METHODS}, got {m!r}")
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
        samples = {m: exp.sample(m, N, obs, n, seed=seed, zeta=zeta, eta=eta) for m in methods}
        mix, idx = exp.linearized(N, obs, sigma, top=min(top, N))
        mem = {m: exp.memorization(s.z, N, fresh) for m, s in samples.items()}
        res[N] = dict(lookup=lk, samples=samples, linearized=mix, linearized_index=idx, memorization=mem)
        stage[f"N={N}"] = time.perf_counter() - t0
    stage["total"] = time.perf_counter() - t_all
    return dict(config=exp.cfg, observation=obs, results=res, seconds=stage)

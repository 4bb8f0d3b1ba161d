"""The full-waveform-inversion problem of chapter 7: configuration, forward map, likelihood, training sets.

Siahkoohi & Sabeddu (2026) put a diffusion prior, trained on N velocity models,
under a frequency-domain FWI and ask how memorization shapes the posterior
samples.  This module defines that inverse problem:

* :class:`FWIConfig`: grid, frequency, geometry, noise, training-set sizes; the
  book's small default and the paper-scale settings (:meth:`FWIConfig.paper`).
* training sets of random-field models in a KL basis (:func:`random_field_models`,
  :func:`make_training_set`, :class:`TrainingSet`), z-scored per dimension;
* :class:`KLForward`: the forward map from z-scored KL coefficients to data, a
  batched torch callable (complex data stacked as real and imaginary parts) that
  autograd can differentiate through the solver;
* the complex-Gaussian likelihood (:func:`complex_noise`, :func:`complex_nll`,
  :func:`gamma_of`), true models and their noisy data (:class:`Truth`,
  :class:`Observation`), the lookup weights (:func:`lookup_from_misfits`);
* tools to follow a sampler (:func:`commitment_curves`, :func:`commitment_steps`, on the
  trajectories that :class:`memprior.diffusion.TrajectoryRecorder` records).

The experiment built on it (the seeded pool with its forward data, the samplers, the
linearized mixture, the memorization metrics, and the chapter's sweeps) is
:mod:`memprior.experiments.fwi`.

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
from dataclasses import dataclass

import torch

from . import velocity as V
from ._checks import as_tensor, check_generator, check_int, check_positive, check_seed
from .mixture import gaussian_logits

__all__ = [
    "FWIConfig", "TrainingSet", "Truth", "Observation", "KLForward",
    "make_training_set", "random_field_models", "zscore", "complex_noise", "complex_nll", "gamma_of",
    "to_real", "to_complex", "lookup_from_misfits", "commitment_steps", "commitment_curves", "schedule_for",
]


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class FWIConfig:
    """Sizes and settings of the FWI experiment.

    Parameters
    ----------
    grid : int
        Grid points per side (the model is ``grid x grid``).
    extent : float
        Side of the square model in km; ``dx = extent / grid``.
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
    noise_ref : {"rms", "max"}
        What ``noise`` is relative to: ``sigma_d = noise * rms|d_clean|`` (the book) or
        ``noise * max|d_clean|`` (the paper).
    lens_v0, lens_dv : float
        The lens truth's background velocity and its anomaly at the centre in km/s (book 2.0 and -0.4, so
        1.6 km/s at the centre; paper 2.0 and -0.5, 1.5 km/s at the centre).
    lens_width : (float, float) or None
        The lens's widths ``(sigma_x, sigma_z)`` in km; ``None`` (the book): 15 % of the side, round.
    nll_factor : float
        Weight of the data in the negative log-likelihood, ``nll_factor * sum |r|^2 / sigma_d^2``: 1 is the
        circular complex Gaussian (the book); the paper's code uses 1/2.  Applied by the experiment
        (:class:`memprior.experiments.fwi.FWIExperiment`): the lookup weights, the exact sampler's likelihood
        and DPS's guidance step are those of ``nll_factor * sum |r|^2 / sigma_d^2``; the normalized DPS
        variant steps along a unit direction, which the factor does not change.
    dps_start : {"noise", "background"}
        Start of DPS: "noise", the samplers' default, a draw of the memorized prior's terminal marginal
        (near N(0, I), with ``alpha_bar[T-1] ~ 0.13``; the book, and the paper's comparison script starts
        from N(0, I)), or "background", the background ``z = 0`` noised to step T (the paper's FWI script).
        Applied by the experiment's DPS samplers (:meth:`memprior.experiments.fwi.FWIExperiment.start_points`).
    """

    grid: int = 32
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
    noise_ref: str = "rms"
    lens_v0: float = 2.0
    lens_dv: float = -0.4
    lens_width: tuple | None = None
    nll_factor: float = 1.0
    dps_start: str = "noise"

    def __post_init__(self):
        check_int("grid", self.grid, low=8)
        check_positive("extent", self.extent)
        check_int("npml", self.npml, low=5)
        check_positive("freq", self.freq)
        check_int("n_src", self.n_src, low=1)
        check_int("n_rec", self.n_rec, low=1)
        check_int("K", self.K, low=1)
        if self.K + 1 > self.grid:
            raise ValueError(f"K: the {self.grid}x{self.grid} grid resolves at most {self.grid - 1} modes per "
                             f"direction, got K={self.K} (basis/grid mismatch)")
        check_positive("noise", self.noise)
        if not isinstance(self.sizes, (tuple, list)):
            raise TypeError(f"sizes: expected a tuple of training-set sizes N, got {type(self.sizes).__name__}")
        if len(self.sizes) < 1:
            raise ValueError("sizes: need at least one training-set size N")
        for N in self.sizes:
            check_int("sizes", N, low=2)
        check_seed(self.seed, "seed")
        check_int("n_samples", self.n_samples, low=1)
        check_int("n_steps", self.n_steps, low=2)
        if check_int("order", self.order, low=2, high=4) not in (2, 4):
            raise ValueError(f"order: must be 2 (5-point) or 4 (9-point cross), got {self.order}")
        if self.noise_ref not in ("rms", "max"):
            raise ValueError(f"noise_ref: must be 'rms' or 'max', got {self.noise_ref!r}")
        if self.dps_start not in ("noise", "background"):
            raise ValueError(f"dps_start: must be 'noise' or 'background', got {self.dps_start!r}")
        check_positive("lens_v0", self.lens_v0)
        if isinstance(self.lens_dv, bool) or not isinstance(self.lens_dv, (int, float)):
            raise TypeError(f"lens_dv: expected a number in km/s, got {type(self.lens_dv).__name__}")
        if not -self.lens_v0 < self.lens_dv < math.inf:
            raise ValueError(f"lens_dv: must be a number > -lens_v0 = {-self.lens_v0} km/s, got {self.lens_dv!r}")
        check_positive("nll_factor", self.nll_factor)
        if self.lens_width is not None:
            if len(self.lens_width) != 2:
                raise ValueError(f"lens_width: expected (sigma_x, sigma_z) in km or None, got {self.lens_width!r}")
            for w in self.lens_width:
                check_positive("lens_width", w)

    @property
    def dx(self) -> float:
        """Grid spacing in km."""
        return self.extent / self.grid

    @property
    def d(self) -> int:
        """Number of KL coefficients."""
        return self.K ** 2

    @classmethod
    def paper(cls, grid: int = 64, **kw) -> "FWIConfig":
        """The paper's settings and DPS protocol (Siahkoohi & Sabeddu 2026).

        ``grid=64``: 64^2, dx = 2/64 km, 10 PML cells, 4 Hz, and the geometry of its DPS runs,
        50 sources / 200 receivers (pass ``n_src=5, n_rec=40`` for its sparse variant).  ``grid=200``:
        200^2, dx = 10 m, 30 PML cells, 6 Hz, 15 sources / 196 receivers, noise 5.5 %.  Both use N in
        {50, 200, 1000}, 200 diffusion steps and the paper code's protocol: noise relative to max|d|,
        the likelihood weight 1/2, DPS from the noised background, and the lens of 1.5 km/s at its centre
        in 2 km/s with widths 0.25 x 0.15 km.  ``**kw`` overrides any field.
        """
        protocol = dict(noise_ref="max", nll_factor=0.5, dps_start="background", lens_v0=2.0, lens_dv=-0.5,
                        lens_width=(0.25, 0.15), n_steps=200, n_samples=16, extent=2.0)
        if grid == 64:
            base = dict(grid=64, npml=10, freq=4.0, n_src=50, n_rec=200, **protocol)
        elif grid == 200:
            base = dict(grid=200, npml=30, freq=6.0, n_src=15, n_rec=196, noise=0.055, **protocol)
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
    seed = check_seed(seed, "seed")
    g = torch.Generator().manual_seed(seed)
    f = V.grf(n, basis.nx, basis.nz, alpha=alpha, tau=tau, generator=g)
    m_full = V.v_to_m(V.rescale(f, vmin, vmax))
    z = basis.project(m_full)
    return z, basis.reconstruct(z)


def make_training_set(basis: V.KLBasis, N: int, seed: int = 0) -> TrainingSet:
    """A seeded training set of ``N >= 2`` random-field models in KL space (z-scored)."""
    seed = check_seed(seed, "seed")
    N = check_int("N", N, low=2)
    z, m = random_field_models(basis, N, seed)
    u, mu, s = zscore(z)
    return TrainingSet(z=z, u=u, mu=mu, s=s, m=m, index=torch.arange(N))


# ----------------------------------------------------------------------------- noise and likelihood
def complex_noise(shape, sigma_d: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Circular complex Gaussian noise with ``E|e|^2 = sigma_d^2`` per entry (complex128).

    Real and imaginary parts are independent with variance ``sigma_d^2 / 2`` each.
    """
    check_generator(generator)
    sigma_d = check_positive("sigma_d", sigma_d, square=True)
    re = torch.randn(*shape, dtype=torch.float64, generator=generator)
    im = torch.randn(*shape, dtype=torch.float64, generator=generator)
    return (sigma_d / math.sqrt(2.0)) * torch.complex(re, im)


def complex_nll(d_pred, d_obs, sigma_d: float) -> torch.Tensor:
    """Negative log-likelihood ``sum |d_obs - d_pred|^2 / sigma_d^2`` (constants dropped).

    ``d_pred`` may carry leading batch dimensions; the sum runs over the dimensions of
    ``d_obs``.  Computed as the Gaussian misfit ``||y - F||^2 / (2 gamma^2)`` of the real-stacked
    data (``gamma^2 = sigma_d^2 / 2``) by :func:`memprior.mixture.gaussian_logits`, the library's
    one Gaussian likelihood.  Returns a float64 Tensor of the batch shape.
    """
    sigma_d = check_positive("sigma_d", sigma_d, square=True)
    dp = torch.as_tensor(d_pred)
    do = torch.as_tensor(d_obs)
    k = dp.dim() - do.dim()
    if k < 0 or tuple(dp.shape[k:]) != tuple(do.shape):
        raise ValueError(f"d_pred: trailing shape must match d_obs {list(do.shape)}, got {list(dp.shape)}")

    def stacked(z, rows):
        z = z.reshape(rows, -1)
        return (torch.cat([z.real, z.imag], 1) if z.is_complex() else z).to(torch.float64)

    batch = dp.shape[:k]
    nll = -gaussian_logits(stacked(do, 1), stacked(dp, math.prod(batch)), sigma_d ** 2 / 2, name="sigma_d")[0]
    return nll.reshape(batch)


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
    return check_positive("sigma_d", sigma_d, square=True) / math.sqrt(2.0)


def lookup_from_misfits(nll) -> torch.Tensor:
    """Lookup weights ``softmax(-nll)`` from per-model negative log-likelihoods ``[N]`` (:func:`complex_nll`)."""
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
    cache : (Tensor [N, d], Tensor [N, data_dim]), optional
        Known inputs and their data (the training set), returned without solving.

    Attributes
    ----------
    dim : int
        Length ``d`` of an input ``u`` (KL coefficients).
    data_dim : int
        Length ``2 n_src n_rec`` of a real-stacked output (twice the number of complex data,
        :attr:`Observation.n_data`).
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
        self.data_dim = 2 * self.n_src * self.n_rec
        self.dim = d
        self._cache: dict[bytes, torch.Tensor] = {}
        if cache is not None:
            keys, vals = cache
            keys = as_tensor("cache", keys, ndim=2)
            vals = as_tensor("cache", vals, ndim=2)
            if keys.shape[0] != vals.shape[0] or keys.shape[1] != d or vals.shape[1] != self.data_dim:
                raise ValueError(f"cache: expected ([N, {d}], [N, {self.data_dim}]), got "
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


def commitment_curves(denoiser, trajectory: dict) -> torch.Tensor:
    """Closed-form weight of each sample's final training model at every recorded level.

    Parameters
    ----------
    denoiser : memprior.diffusion.MemorizedDenoiser
    trajectory : dict
        ``{"t", "x", "x0_hat"}`` as from :meth:`memprior.diffusion.TrajectoryRecorder.trajectory`.

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
    target = torch.cdist(trajectory["x0_hat"][-1].to(torch.float64), denoiser.x_train,
                         compute_mode="donot_use_mm_for_euclid_dist").argmin(1)
    return torch.stack([denoiser.weights(x, int(t)).gather(1, target[:, None])[:, 0]
                        for t, x in zip(trajectory["t"], trajectory["x"])])


def commitment_steps(denoiser, trajectory: dict, threshold: float = 0.9) -> torch.Tensor:
    """Level at which each sample commits to one training example (see :func:`memprior.diffusion.commitment_step`)."""
    from .diffusion import commitment_step
    return commitment_step(denoiser, trajectory, threshold=threshold)


from .trained import TrainedPrior, train_prior  # noqa: E402,F401  (re-exported: trained priors on these training sets)

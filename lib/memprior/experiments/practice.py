"""Chapter 8 (practice): detect memorization in a small trained prior, measure it on the posterior, mitigate it.

The test bed: examples drawn from :math:`\\mathcal N(0, I_2)`, two training sets (``N = 8`` and
``N = 512``), fresh draws (the null of every score) and held-out draws, and one linear datum
:math:`y = a^\\top x + e` with :math:`e \\sim \\mathcal N(0, \\gamma^2)`.  The reference posterior, under the true
prior, is Gaussian in closed form.  The chapter runs these steps, one function each:

==========================  ===========================================================================
:func:`toy_problem`         the data sets, the datum, the reference posterior and the lookup weights
:func:`train_priors`        the memorizing network (with snapshots), the network trained on 512 examples
                            and a smaller network, all with :func:`memprior.diffusion.train_denoiser`
:func:`detect`              prior samples and their nearest-neighbour scores next to the null
:func:`loss_gap`            training against held-out denoising loss over the snapshots
:func:`truncation_check`    importance posterior of the truncated closed-form prior against the exact mixture
:func:`posterior_checks`    the posterior-side report of three priors
:func:`mitigations`         early stopping, a smaller network, a larger sigma_min and more data, scored
:func:`training_snapshots`  prior and posterior samples over one training run (the slider)
:func:`datum_sweep`         the posterior of three priors as the datum moves (the slider)
==========================  ===========================================================================

Every function returns a frozen dataclass of numpy arrays and numbers (float64; lengths in the units of the
data, which are normalized) and is reproducible from its seeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ._common import check_result, generator
from .. import diffusion as dif
from .. import metrics as met
from .. import practice as prac
from .._checks import as_tensor, check_generator, check_int, check_positive, check_seed as _seed
from ..posterior import linearized_mixture, lookup_weights

__all__ = [
    "ToyProblem", "toy_problem", "Priors", "train_priors", "Detection", "detect", "mean_denoising_loss", "LossGap",
    "loss_gap", "TruncationCheck", "truncation_check", "PosteriorRow", "PosteriorChecks", "posterior_checks",
    "Mitigations", "mitigations", "Snapshots", "training_snapshots", "DatumSweep", "datum_sweep",
]

_F64 = torch.float64
_D = 2   # the dimension of the toy problem


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def _np(x) -> np.ndarray:
    return x.detach().to(_F64).cpu().numpy()


# ============================================================================ the test bed
@dataclass(frozen=True)
class ToyProblem:
    """The data sets, the datum and the reference posterior of the chapter.

    Attributes
    ----------
    x_small, x_large : ndarray[8, 2], ndarray[512, 2]
        The two training sets.
    fresh : ndarray[2000, 2]
        Fresh draws from the true distribution: the null of every nearest-neighbour score.
    held_out : ndarray[512, 2]
        Held-out draws: the validation set of the denoising loss.
    a : ndarray[2]
        Weights of the datum :math:`y = a^\\top x + e`.
    y, gamma : float
        Observed datum and noise standard deviation.
    reference : ndarray[2000, 2]
        Samples of the reference posterior (the posterior under the true prior).
    ref_mean, ref_cov : ndarray[2], ndarray[2, 2]
        Its mean and covariance, from :func:`memprior.posterior.linearized_mixture` with one component at the
        origin and bandwidth 1.
    lookup_weights : ndarray[8]
        The lookup weights of ``x_small`` for the datum.
    spacing : float
        :math:`\\delta`, the median distance from an example of ``x_small`` to its nearest neighbour (the
        lower median, ``torch.median``, for an even number of examples).
    """

    x_small: np.ndarray
    x_large: np.ndarray
    fresh: np.ndarray
    held_out: np.ndarray
    a: np.ndarray
    y: float
    gamma: float
    reference: np.ndarray
    ref_mean: np.ndarray
    ref_cov: np.ndarray
    lookup_weights: np.ndarray
    spacing: float

    @property
    def y_obs(self) -> torch.Tensor:
        """The datum as a float64 tensor of shape [1]."""
        return torch.tensor([self.y], dtype=_F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The forward map ``[B, 2] -> [B, 1]``, :math:`x \\mapsto a^\\top x`."""
        return x @ _t(self.a).to(x.dtype)[:, None]

    def reference_sampler(self, y: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples (Tensor[n, 2]) of the reference posterior for the datum ``y``."""
        check_generator(generator)
        yt = torch.tensor([float(y)], dtype=_F64)
        mix = linearized_mixture(self.forward, torch.zeros(1, _D, dtype=_F64), yt, 1.0, self.gamma)
        return mix.sample(n, generator=generator)

    @property
    def w_max(self) -> float:
        """The largest lookup weight of ``x_small``."""
        return float(self.lookup_weights.max())

    @property
    def n_eff_lookup(self) -> float:
        """Effective number of components of the lookup posterior, :math:`1/\\sum_n w_n^2`."""
        return float(1.0 / (self.lookup_weights ** 2).sum())

    @property
    def ref_sd_null(self) -> float:
        """Standard deviation of the reference posterior along :math:`(x_1 - x_2)/\\sqrt2`, the null direction."""
        u = np.array([1.0, -1.0]) / math.sqrt(2.0)
        return float(math.sqrt(u @ self.ref_cov @ u))


def toy_problem(*, n_small: int = 8, n_large: int = 512, n_fresh: int = 2000, n_held_out: int = 512,
             y: float = 1.5, gamma: float = 0.3, n_reference: int = 2000, seed: int = 0) -> ToyProblem:
    """Draw the chapter's data sets and compute its reference posterior.

    Parameters
    ----------
    n_small, n_large : int >= 2
        Sizes of the two training sets.
    n_fresh, n_held_out : int >= 1
        Fresh draws (the null) and held-out draws (validation).
    y : float
        The observed datum.
    gamma : float > 0
        Noise standard deviation of the datum.
    n_reference : int >= 1
        Samples of the reference posterior.
    seed : int
        The data sets are drawn in this order from one generator seeded with ``seed``; the reference
        samples from ``seed + 1``.

    Returns
    -------
    ToyProblem
    """
    seed = _seed(seed, "seed")
    n_small = check_int("n_small", n_small, low=2)
    n_large = check_int("n_large", n_large, low=2)
    n_fresh = check_int("n_fresh", n_fresh, low=1)
    n_held_out = check_int("n_held_out", n_held_out, low=1)
    n_reference = check_int("n_reference", n_reference, low=1)
    gamma = check_positive("gamma", gamma, square=True)
    if isinstance(y, bool) or not isinstance(y, (int, float, np.integer, np.floating)) or not math.isfinite(y):
        raise ValueError(f"y: must be a finite real number, got {y!r}")
    y = float(y)
    seed = _seed(seed, "seed")
    g = generator(seed)
    d = _D
    x_small, x_large, fresh, held_out = (torch.randn(n, d, generator=g, dtype=_F64)
                                         for n in (n_small, n_large, n_fresh, n_held_out))
    a = torch.ones(d, dtype=_F64)

    def forward(x):
        return x @ a[:, None]

    yt = torch.tensor([y], dtype=_F64)
    ref = linearized_mixture(forward, torch.zeros(1, d, dtype=_F64), yt, 1.0, gamma)
    reference = ref.sample(n_reference, generator=generator(seed + 1))
    w = lookup_weights(forward, x_small, yt, gamma)
    spacing = (torch.cdist(x_small, x_small, compute_mode="donot_use_mm_for_euclid_dist") + 1e9 * torch.eye(n_small, dtype=_F64)).min(1).values.median()
    return ToyProblem(x_small=_np(x_small), x_large=_np(x_large), fresh=_np(fresh), held_out=_np(held_out),
                   a=_np(a), y=y, gamma=gamma, reference=_np(reference), ref_mean=_np(ref.means[0]),
                   ref_cov=_np(ref.covs[0]), lookup_weights=_np(w), spacing=float(spacing))


# ============================================================================ the trained priors
@dataclass(frozen=True)
class Priors:
    """Three trained denoisers (:class:`memprior.diffusion.MLPDenoiser`, frozen) and their schedule.

    Attributes
    ----------
    schedule : memprior.diffusion.Schedule
    mem : MLPDenoiser
        Trained on ``x_small``; ``mem.snapshots[s]`` is the network after ``s`` steps.
    gen : MLPDenoiser
        Same architecture, trained on ``x_large``.
    small : MLPDenoiser
        A smaller network trained on ``x_small`` as long as ``mem``.
    snapshot_steps : tuple of int
        The steps of ``mem.snapshots``, increasing; the last is the length of training.
    """

    schedule: dif.Schedule
    mem: dif.MLPDenoiser
    gen: dif.MLPDenoiser
    small: dif.MLPDenoiser
    snapshot_steps: tuple


def train_priors(bed: ToyProblem, *, snapshot_steps: Sequence[int] = (100, 200, 400, 800, 1500),
                 steps_large: int = 800, hidden: int = 64, depth: int = 3, small_hidden: int = 8,
                 small_depth: int = 1, batch_size: int = 64, lr: float = 1e-2, seed: int = 1,
                 n_levels: int = 200, cache: bool = True) -> Priors:
    """Train the chapter's three networks (loaded from the disk cache when they were trained before).

    Parameters
    ----------
    bed : ToyProblem
    snapshot_steps : sequence of int >= 1
        Snapshots of the memorizing network; it trains for ``max(snapshot_steps)`` steps, and so does the
        smaller network.
    steps_large : int >= 1
        Training steps of the network trained on ``x_large``.
    hidden, depth : int
        Width and residual blocks of the two large networks; ``small_hidden``, ``small_depth`` of the small one.
    batch_size : int >= 1
    lr : float > 0
        Adam's learning rate.
    seed : int
        Seeds the initialization and the minibatches (the same for the three networks).
    n_levels : int >= 2
        Levels of the paper's linear schedule (betas from 1e-4 to 0.02).
    cache : bool
        Use the disk cache of :func:`memprior.diffusion.train_denoiser`.

    Returns
    -------
    Priors
    """
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    snaps = tuple(sorted({check_int("snapshot_steps", s, low=1) for s in snapshot_steps}))
    if not snaps:
        raise ValueError("snapshot_steps: need at least one step")
    n_levels = check_int("n_levels", n_levels, low=2)
    lin = dif.Schedule.linear(n_levels, 1e-4, 0.02)
    common = dict(batch_size=batch_size, lr=lr, seed=seed, cache=cache)
    x_small, x_large = _t(bed.x_small), _t(bed.x_large)
    mem = dif.train_denoiser(x_small, lin, steps=snaps[-1], hidden=hidden, depth=depth, snapshot_steps=snaps,
                             **common)
    gen = dif.train_denoiser(x_large, lin, steps=steps_large, hidden=hidden, depth=depth, **common)
    small = dif.train_denoiser(x_small, lin, steps=snaps[-1], hidden=small_hidden, depth=small_depth, **common)
    return Priors(schedule=lin, mem=mem, gen=gen, small=small, snapshot_steps=snaps)


# ============================================================================ step 1: detect
_REPORT_NAMES = ("N = 8, 1500 steps", "N = 512, 800 steps")


@dataclass(frozen=True)
class Detection:
    """Prior samples of the memorizing and the 512-example networks, and their memorization reports.

    Attributes
    ----------
    prior_mem, prior_gen : ndarray[M, 2]
        DDIM samples of the memorizing network and of the network trained on 512 examples.
    report_mem, report_gen : memprior.metrics.MemorizationReport
        :func:`memprior.metrics.memorization_report` of the first ``n_scored`` samples against the prior's
        training set, with the fresh draws as the null: ``rows[0]`` the generated samples, ``rows[1]`` the
        fresh draws.  Figures: :func:`memprior.plots.practice.fig_report`.
    """

    prior_mem: np.ndarray
    prior_gen: np.ndarray
    report_mem: met.MemorizationReport
    report_gen: met.MemorizationReport

    q_mem = property(lambda s: s.report_mem.rows[0]["d1/d2 < 1/3"], doc="d1/d2 < 1/3 fraction, memorizing prior")
    q0_mem = property(lambda s: s.report_mem.rows[1]["d1/d2 < 1/3"], doc="its null (fresh draws)")
    q_gen = property(lambda s: s.report_gen.rows[0]["d1/d2 < 1/3"], doc="d1/d2 < 1/3 fraction, N = 512 prior")
    q0_gen = property(lambda s: s.report_gen.rows[1]["d1/d2 < 1/3"], doc="its null (fresh draws)")
    qse_gen = property(lambda s: s.report_gen.rows[0]["d1/d2 < 1/3 s.e."], doc="standard error of q_gen")
    q0se_gen = property(lambda s: s.report_gen.rows[1]["d1/d2 < 1/3 s.e."], doc="standard error of q0_gen")
    r_mem = property(lambda s: s.report_mem.rows[0]["r < 0.7"], doc="r < 0.7 fraction, memorizing prior")
    r0_mem = property(lambda s: s.report_mem.rows[1]["r < 0.7"], doc="its null (fresh draws)")
    d1_mem = property(lambda s: s.report_mem.rows[0]["median d1"], doc="median d1, memorizing prior")
    d10_mem = property(lambda s: s.report_mem.rows[1]["median d1"], doc="median d1 of the fresh draws")

    @property
    def r_min(self) -> float:
        """The smallest ``r < 0.7`` fraction of the four rows (generated and fresh, both priors)."""
        return min(r["r < 0.7"] for rep in (self.report_mem, self.report_gen) for r in rep.rows)

    def table(self) -> list[dict]:
        """The report table: the rows of both reports, each with the name of its prior."""
        return [{"prior": name, **r} for name, rep in zip(_REPORT_NAMES, (self.report_mem, self.report_gen))
                for r in rep.rows]


def _sample(net, schedule, n: int, seed: int, steps: int) -> torch.Tensor:
    return dif.ddim_sample(net, schedule, n, generator=generator(seed), steps=steps).double()


def detect(bed: ToyProblem, priors: Priors, *, n_samples: int = 4000, n_scored: int = 1000, ddim_steps: int = 100,
           seed: int = 5) -> Detection:
    """Sample the two networks and report their memorization against their training sets, next to the null.

    Parameters
    ----------
    bed : ToyProblem
    priors : Priors
    n_samples : int >= 1
        DDIM samples of each network (``M``).
    n_scored : int in [1, n_samples]
        The first ``n_scored`` samples are scored (:func:`memprior.metrics.memorization_report`).
    ddim_steps : int >= 1
        DDIM steps.
    seed : int
        Seeds the sampler (the same for both networks).

    Returns
    -------
    Detection
    """
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    check_result("priors", priors, Priors)
    n_samples = check_int("n_samples", n_samples, low=1)
    n_scored = check_int("n_scored", n_scored, low=1, high=n_samples)
    ddim_steps = check_int("ddim_steps", ddim_steps, low=1)
    z_mem, z_gen = (_sample(net, priors.schedule, n_samples, seed, ddim_steps) for net in (priors.mem, priors.gen))
    fresh = _t(bed.fresh)
    return Detection(prior_mem=_np(z_mem), prior_gen=_np(z_gen),
                     report_mem=met.memorization_report(z_mem[:n_scored], _t(bed.x_small), fresh=fresh),
                     report_gen=met.memorization_report(z_gen[:n_scored], _t(bed.x_large), fresh=fresh))


# ============================================================================ step 1b: held-out loss
def mean_denoising_loss(denoiser, data, schedule: dif.Schedule, *, level_every: int = 10, n: int = 1024,
                        seed: int = 3) -> float:
    """The denoising loss :math:`E\\|\\hat x_0(x_t) - x_0\\|^2` averaged over every ``level_every``-th level.

    The same Monte Carlo draws (``seed``) for every denoiser and data set, so differences are paired.

    Parameters
    ----------
    denoiser : denoiser (``.denoise``, ``.eps``, ``.dim``)
    data : array[K, d]
        The examples the loss is evaluated on (training set or held-out draws).
    schedule : memprior.diffusion.Schedule
    level_every : int >= 1
    n : int >= 1
        Monte Carlo draws per level.
    seed : int

    Returns
    -------
    float, in squared units of the data.
    """
    seed = _seed(seed, "seed")
    level_every = check_int("level_every", level_every, low=1)
    x = as_tensor("data", data, ndim=2).to(_F64)
    ts = list(range(0, schedule.n_steps, level_every))
    return float(dif.denoising_loss(denoiser, x, schedule, t=ts, n=n, generator=generator(seed)).mean())


@dataclass(frozen=True)
class LossGap:
    """Training and held-out denoising loss of the memorizing network over its snapshots.

    Attributes
    ----------
    steps : ndarray[S] of int
        Snapshot steps.
    train, held_out : ndarray[S]
        :func:`mean_denoising_loss` on ``x_small`` and on the held-out draws (squared data units).
    best : int
        The snapshot step with the lowest held-out loss.
    gap_mem, gap_gen : float
        Held-out minus training loss at the end of training, for the memorizing network and for the
        network trained on 512 examples.
    """

    steps: np.ndarray
    train: np.ndarray
    held_out: np.ndarray
    best: int
    gap_mem: float
    gap_gen: float


def loss_gap(bed: ToyProblem, priors: Priors, *, level_every: int = 10, n: int = 1024, seed: int = 3) -> LossGap:
    """Training against held-out loss at each snapshot, and the final gaps (see :func:`mean_denoising_loss`)."""
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    check_result("priors", priors, Priors)
    kw = dict(level_every=level_every, n=n, seed=seed)
    lin, steps = priors.schedule, priors.snapshot_steps

    def loss(net, data):
        return mean_denoising_loss(net, data, lin, **kw)

    train = np.array([loss(priors.mem.snapshots[s], bed.x_small) for s in steps])
    held = np.array([loss(priors.mem.snapshots[s], bed.held_out) for s in steps])
    gap_gen = loss(priors.gen, bed.held_out) - loss(priors.gen, bed.x_large)
    return LossGap(steps=np.array(steps), train=train, held_out=held, best=int(steps[int(np.argmin(held))]),
                   gap_mem=float(held[-1] - train[-1]), gap_gen=float(gap_gen))


# ============================================================================ step 2: the posterior
@dataclass(frozen=True)
class TruncationCheck:
    """The importance posterior of the truncated closed-form memorized prior against the exact mixture.

    Attributes
    ----------
    sigma : float
        The noise level the sampler stops at, :math:`\\sigma_{t_0} \\ge \\sigma_{\\min}`.
    level : int
        Its level :math:`t_0`.
    e_check : float
        Energy distance between the importance posterior and samples of the exact mixture posterior.
    e_floor : float
        Energy distance between two independent samples of the exact mixture posterior (the noise level).
    ess : float
        Effective sample size of the importance weights.
    """

    sigma: float
    level: int
    e_check: float
    e_floor: float
    ess: float


def truncation_check(bed: ToyProblem, schedule: dif.Schedule, *, sigma_min: float | None = None, n: int = 4000,
                     n_post: int = 1000, seed: int = 7) -> TruncationCheck:
    """Check the importance posterior where the answer is known (chapter 8's proposition on truncation).

    The closed-form memorized denoiser of ``x_small``, stopped at ``sigma_min``
    (:func:`memprior.practice.truncated_sample`), samples the mixture :math:`p_\\sigma`; its posterior is the
    linearized mixture, exact for the linear datum.

    Parameters
    ----------
    bed : ToyProblem
    schedule : memprior.diffusion.Schedule
    sigma_min : float > 0, optional
        Default: half the median spacing of ``x_small``.
    n : int >= 1
        Truncated prior samples.
    n_post : int >= 1
        Posterior samples compared.
    seed : int
        Seeds ``seed`` to ``seed + 4`` draw the prior samples, the resampling, and three mixture samples.

    Returns
    -------
    TruncationCheck
    """
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    sigma_min = bed.spacing / 2 if sigma_min is None else check_positive("sigma_min", sigma_min, square=True)
    n, n_post = check_int("n", n, low=1), check_int("n_post", n_post, low=1)
    t0 = prac.level_for_sigma(schedule, sigma_min)
    s_eff = schedule.sigma(t0)
    x_small = _t(bed.x_small)
    z = prac.truncated_sample(dif.MemorizedDenoiser(x_small, schedule), schedule, n, sigma_min,
                              generator=generator(seed))
    exact = linearized_mixture(bed.forward, x_small, bed.y_obs, s_eff, bed.gamma)
    post = prac.importance_posterior(z, bed.forward, bed.y_obs, bed.gamma, n_post, generator=generator(seed + 1))
    e_check = prac.energy_distance(post.samples, exact.sample(n_post, generator=generator(seed + 2)))
    e_floor = prac.energy_distance(exact.sample(n_post, generator=generator(seed + 3)),
                                   exact.sample(n_post, generator=generator(seed + 4)))
    return TruncationCheck(sigma=float(s_eff), level=int(t0), e_check=e_check, e_floor=e_floor, ess=post.ess)


@dataclass(frozen=True)
class PosteriorRow:
    """One row of the posterior-side report (:func:`memprior.practice.posterior_check`).

    Attributes
    ----------
    ess : float
        Effective sample size of the importance weights.
    tv_lookup, tv_se, tv_floor : float
        Total variation between nearest-example frequencies and lookup weights, its bootstrap standard error,
        and the value an exact lookup sampler would show.
    on_training, on_training_reference : float
        Fraction of posterior samples with :math:`d_1/d_2 < 1/3`, and the same for the reference (its null).
    energy : float
        Energy distance to the reference posterior.
    samples : ndarray[n, 2]
        The posterior samples.
    """

    ess: float
    tv_lookup: float
    tv_se: float
    tv_floor: float
    on_training: float
    on_training_reference: float
    energy: float
    samples: np.ndarray


def _check_row(bed: ToyProblem, prior, x_train, *, n: int = 1000, seed: int = 6, n_boot: int = 200) -> PosteriorRow:
    c = prac.posterior_check(prior, _t(x_train), bed.forward, bed.y_obs, bed.gamma, _t(bed.reference), n=n,
                             generator=generator(seed), n_boot=n_boot)
    return PosteriorRow(ess=c["ess"], tv_lookup=c["tv lookup"], tv_se=c["tv se"], tv_floor=c["tv floor"],
                        on_training=c["on training"], on_training_reference=c["on training (reference)"],
                        energy=c["energy"], samples=_np(c["samples"]))


@dataclass(frozen=True)
class PosteriorChecks:
    """The posterior-side report of the memorizing prior (``mem``), of the prior trained on 512 examples
    (``gen``) and of the fresh draws, samples of the true prior (``true``, scored against ``x_small``)."""

    mem: PosteriorRow
    gen: PosteriorRow
    true: PosteriorRow


def posterior_checks(bed: ToyProblem, det: Detection, *, n: int = 1000, seed: int = 6) -> PosteriorChecks:
    """Importance posteriors of the two networks' samples and of the fresh draws, checked against the lookup
    and the reference (:func:`memprior.practice.posterior_check`; ``n`` posterior samples, seeded by ``seed``)."""
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    check_result("det", det, Detection)
    n = check_int("n", n, low=1)
    return PosteriorChecks(mem=_check_row(bed, _t(det.prior_mem), bed.x_small, n=n, seed=seed),
                           gen=_check_row(bed, _t(det.prior_gen), bed.x_large, n=n, seed=seed),
                           true=_check_row(bed, _t(bed.fresh), bed.x_small, n=n, seed=seed))


# ============================================================================ step 3: mitigations
KEYS = ("mem", "best", "early", "small", "s1", "s2", "data", "true")


@dataclass(frozen=True)
class MitigationRow:
    """The scores of one prior of :class:`Mitigations` (fields as there, for one prior)."""

    name: str
    flagged: float
    flagged_se: float
    null: float
    tv_lookup: float
    tv_se: float
    on_training: float
    energy: float
    ess: float


@dataclass(frozen=True)
class Mitigations:
    """Prior-side and posterior-side scores of the memorizing prior, its mitigations, and two references.

    The priors, in the order of ``keys``: ``mem`` (memorizing), ``best`` and ``early`` (snapshots),
    ``small`` (smaller network), ``s1`` and ``s2`` (sampler stopped at :math:`\\sigma_{\\min} = \\delta/2`
    and :math:`\\delta`), ``data`` (trained on 512 examples) and ``true`` (fresh draws of the true prior).

    Attributes
    ----------
    keys, names : tuple of str [P]
        Short keys and display names.
    flagged, flagged_se, null : ndarray[P]
        Fraction of prior samples with :math:`d_1/d_2 < 1/3`, its standard error, and the fraction of the fresh
        draws (the null), both against the prior's training set.
    tv_lookup, tv_se, on_training, energy, ess : ndarray[P]
        The posterior-side scores of :class:`PosteriorRow`.
    large_train : ndarray[P] of bool
        Whether the prior's training set is ``x_large`` (else ``x_small``).
    prior_samples : ndarray[P, M, 2]
    posterior_samples : ndarray[P, n, 2]
    best_step, early_step : int
        The snapshots used for early stopping.
    delta : float
        The median spacing of ``x_small``.
    """

    keys: tuple
    names: tuple
    flagged: np.ndarray
    flagged_se: np.ndarray
    null: np.ndarray
    tv_lookup: np.ndarray
    tv_se: np.ndarray
    on_training: np.ndarray
    energy: np.ndarray
    ess: np.ndarray
    large_train: np.ndarray
    prior_samples: np.ndarray
    posterior_samples: np.ndarray
    best_step: int
    early_step: int
    delta: float

    def at(self, key: str) -> MitigationRow:
        """The scores of the prior ``key`` (one of ``keys``)."""
        if key not in self.keys:
            raise ValueError(f"key: must be one of {self.keys}, got {key!r}")
        i = self.keys.index(key)
        return MitigationRow(self.names[i], *(float(getattr(self, f)[i]) for f in (
            "flagged", "flagged_se", "null", "tv_lookup", "tv_se", "on_training", "energy", "ess")))

    def rows(self) -> list[dict]:
        """One dict per prior, keys as :func:`memprior.plots.practice.fig_mitigation` reads them."""
        return [{"prior": r.name, "flagged": r.flagged, "flagged se": r.flagged_se, "null": r.null,
                 "tv lookup": r.tv_lookup, "tv se": r.tv_se, "on training": r.on_training, "energy": r.energy,
                 "ess": r.ess} for r in map(self.at, self.keys)]

    def table(self) -> list[dict]:
        """The chapter's table: one row per prior, with readable column names."""
        return [{"prior": r["prior"], "flagged d1/d2 < 1/3": r["flagged"], "null": r["null"],
                 "posterior: TV to lookup": r["tv lookup"], "posterior on training points": r["on training"],
                 "posterior: energy distance to reference": r["energy"], "ESS": r["ess"]} for r in self.rows()]

    def panels(self, bed: ToyProblem, n_prior: int = 800, n_post: int = 500) -> dict:
        """``name -> (x_train, prior samples, posterior samples)`` for
        :func:`memprior.plots.practice.fig_variants`."""
        return {nm: (bed.x_large if big else bed.x_small, z[:n_prior], p[:n_post]) for nm, big, z, p in
                zip(self.names, self.large_train, self.prior_samples, self.posterior_samples)}


def mitigations(bed: ToyProblem, priors: Priors, det: Detection, *, best_step: int, early_step: int | None = None,
                n_samples: int = 4000, n_scored: int = 1000, ddim_steps: int = 100, seed: int = 5,
                check_seed: int = 6, fresh_seed: int = 12) -> Mitigations:
    """Apply the four mitigations to the memorizing prior and score every prior on both sides.

    Parameters
    ----------
    bed : ToyProblem
    priors : Priors
    det : Detection
        Supplies the samples of the memorizing network and of the network trained on 512 examples.
    best_step : int
        A snapshot step of ``priors.mem`` (the lowest held-out loss, ``LossGap.best``).
    early_step : int, optional
        An earlier snapshot (default: the second snapshot).
    n_samples, n_scored, ddim_steps : int
        Prior samples per prior (as ``det``'s), how many are scored, DDIM steps.
    seed : int
        Seeds the samplers; ``check_seed`` the posterior checks; ``fresh_seed`` the fresh draws of the true prior.

    Returns
    -------
    Mitigations
    """
    seed = _seed(seed, "seed")
    check_seed = _seed(check_seed, "check_seed")
    fresh_seed = _seed(fresh_seed, "fresh_seed")
    check_result("bed", bed, ToyProblem)
    check_result("priors", priors, Priors)
    check_result("det", det, Detection)
    steps = priors.snapshot_steps
    early_step = steps[1 if len(steps) > 1 else 0] if early_step is None else early_step
    for name, s in (("best_step", best_step), ("early_step", early_step)):
        if check_int(name, s) not in steps:
            raise ValueError(f"{name}: must be one of the snapshot steps {steps}, got {s}")
    n_samples = check_int("n_samples", n_samples, low=1)
    n_scored = check_int("n_scored", n_scored, low=1, high=n_samples)
    lin, delta = priors.schedule, bed.spacing

    def ddim(net):
        return _sample(net, lin, n_samples, seed, ddim_steps)

    def trunc(s):
        return prac.truncated_sample(priors.mem, lin, n_samples, s, generator=generator(seed)).double()

    variants = [
        ("memorizing: N = 8, 1500 steps", _t(det.prior_mem), False),
        (f"early stopping: step {best_step}", ddim(priors.mem.snapshots[best_step]), False),
        (f"early stopping: step {early_step}", ddim(priors.mem.snapshots[early_step]), False),
        ("smaller network: width 8, 1 block", ddim(priors.small), False),
        ("larger σ_min = δ/2", trunc(delta / 2), False),
        ("larger σ_min = δ", trunc(delta), False),
        ("more data: N = 512", _t(det.prior_gen), True),
        ("true prior (fresh draws)", torch.randn(n_samples, _D, generator=generator(fresh_seed), dtype=_F64),
         False),
    ]
    cols = {k: [] for k in ("flagged", "flagged_se", "null", "tv_lookup", "tv_se", "on_training", "energy", "ess")}
    post = []
    for _, z, big in variants:
        xt = _t(bed.x_large if big else bed.x_small)
        q, q_se = met.memorized_fraction(met.d1_d2(z[:n_scored], xt), met.D1D2_THRESHOLD)
        q0, _ = met.memorized_fraction(met.d1_d2(_t(bed.fresh), xt), met.D1D2_THRESHOLD)
        c = _check_row(bed, z, xt.numpy(), seed=check_seed)
        for k, v in (("flagged", q), ("flagged_se", q_se), ("null", q0), ("tv_lookup", c.tv_lookup),
                     ("tv_se", c.tv_se), ("on_training", c.on_training), ("energy", c.energy), ("ess", c.ess)):
            cols[k].append(v)
        post.append(c.samples)
    return Mitigations(keys=KEYS, names=tuple(v[0] for v in variants), **{k: np.array(v) for k, v in cols.items()},
                       large_train=np.array([v[2] for v in variants]),
                       prior_samples=np.stack([_np(v[1]) for v in variants]), posterior_samples=np.stack(post),
                       best_step=int(best_step), early_step=int(early_step), delta=float(delta))


# ============================================================================ sliders
@dataclass(frozen=True)
class Snapshots:
    """Prior and posterior samples of the memorizing network at each snapshot of training.

    Attributes
    ----------
    steps : ndarray[S] of int
    flagged : ndarray[S]
        Fraction of prior samples with :math:`d_1/d_2 < 1/3`.
    on_training, energy : ndarray[S]
        Fraction of posterior samples on training points, and energy distance to the reference.
    prior_samples : ndarray[S, n_shown, 2]
    posterior_samples : ndarray[S, n_post, 2]
    """

    steps: np.ndarray
    flagged: np.ndarray
    on_training: np.ndarray
    energy: np.ndarray
    prior_samples: np.ndarray
    posterior_samples: np.ndarray


def training_snapshots(bed: ToyProblem, priors: Priors, *, n: int = 1500, n_scored: int = 1000, n_shown: int = 600,
                       n_post: int = 400, n_boot: int = 50, ddim_steps: int = 100, seed: int = 13) -> Snapshots:
    """Sample each snapshot of the memorizing network (``n`` samples, seed ``seed``) and check its posterior
    (``n_post`` samples, ``n_boot`` bootstrap replicates, seed ``seed + 1``)."""
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    check_result("priors", priors, Priors)
    n = check_int("n", n, low=1)
    n_scored = check_int("n_scored", n_scored, low=1, high=n)
    n_shown = check_int("n_shown", n_shown, low=1, high=n)
    xt = _t(bed.x_small)
    out = {k: [] for k in ("flagged", "on_training", "energy", "prior_samples", "posterior_samples")}
    for s in priors.snapshot_steps:
        z = _sample(priors.mem.snapshots[s], priors.schedule, n, seed, ddim_steps)
        c = _check_row(bed, z, bed.x_small, n=n_post, seed=seed + 1, n_boot=n_boot)
        out["flagged"].append(met.memorized_fraction(met.d1_d2(z[:n_scored], xt), met.D1D2_THRESHOLD)[0])
        out["on_training"].append(c.on_training)
        out["energy"].append(c.energy)
        out["prior_samples"].append(_np(z[:n_shown]))
        out["posterior_samples"].append(c.samples)
    return Snapshots(steps=np.array(priors.snapshot_steps), **{k: np.array(v) for k, v in out.items()})


@dataclass(frozen=True)
class DatumSweep:
    """The posterior of three priors for each datum of a sweep.

    Attributes
    ----------
    names, short : tuple of str [3]
        Panel names and the short names used in titles.
    y_values : ndarray[Y]
    x_train : tuple of ndarray[N_k, 2]
        Each prior's training set.
    prior_samples : ndarray[3, M, 2]
    posterior_samples : ndarray[Y, 3, n, 2]
    distance : ndarray[Y, 3]
        Energy distance of each posterior to the reference posterior of that datum.
    """

    names: tuple
    short: tuple
    y_values: np.ndarray
    x_train: tuple
    prior_samples: np.ndarray
    posterior_samples: np.ndarray
    distance: np.ndarray

    mem_min = property(lambda s: float(s.distance[:, 0].min()), doc="smallest distance, memorizing prior")
    mem_max = property(lambda s: float(s.distance[:, 0].max()), doc="largest distance, memorizing prior")
    data_max = property(lambda s: float(s.distance[:, 2].max()), doc="largest distance, prior trained on 512")

    def priors(self) -> dict:
        """``name -> (x_train, prior samples)``: the ``priors`` of :func:`memprior.widgets.practice.datum_app`."""
        return {nm: (x, z) for nm, x, z in zip(self.names, self.x_train, self.prior_samples)}


def datum_sweep(bed: ToyProblem, det: Detection, mit: Mitigations, *,
                y_values: Sequence[float] = (-2.0, -1.0, 0.0, 0.75, 1.5, 2.25, 3.0), n: int = 300,
                n_prior: int = 1500, seed: int = 0) -> DatumSweep:
    """Posteriors of the memorizing prior, of the same network stopped at :math:`\\sigma_{\\min} = \\delta`, and of
    the network trained on 512 examples, for each datum (:func:`memprior.practice.datum_posteriors`: ``n``
    posterior samples from the first ``n_prior`` prior samples, seeded by ``seed``)."""
    seed = _seed(seed, "seed")
    check_result("bed", bed, ToyProblem)
    check_result("det", det, Detection)
    check_result("mit", mit, Mitigations)
    ys = np.asarray(y_values, dtype=np.float64).ravel()
    if ys.size < 1 or not np.isfinite(ys).all():
        raise ValueError(f"y_values: need at least one finite value, got {y_values!r}")
    n_prior = check_int("n_prior", n_prior, low=1)
    priors = {"memorizing, N = 8": (bed.x_small, det.prior_mem[:n_prior]),
              "σ_min = δ, N = 8": (bed.x_small, mit.prior_samples[mit.keys.index("s2")][:n_prior]),
              "more data, N = 512": (bed.x_large, det.prior_gen[:n_prior])}
    tp = {k: (_t(x), _t(z)) for k, (x, z) in priors.items()}
    post, dist = [], []
    for yv in ys:
        pan, dd = prac.datum_posteriors(tp, _t(bed.a), float(yv), bed.gamma, bed.reference_sampler, n=n, seed=seed)
        post.append(np.stack([_np(p) for _, _, p in pan]))
        dist.append(dd)
    return DatumSweep(names=tuple(priors), short=("memorizing", "σ_min = δ", "N = 512"), y_values=ys,
                      x_train=tuple(x for x, _ in priors.values()),
                      prior_samples=np.stack([z for _, z in priors.values()]), posterior_samples=np.stack(post),
                      distance=np.array(dist))

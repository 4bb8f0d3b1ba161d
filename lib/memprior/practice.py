"""Practice: checking a trained prior for memorization, and mitigating it.

The chapter "Practice" applies the library to a small *trained* diffusion prior, the way
one would check one's own prior before using it for inversion.  This module holds the
few numerics that chapter needs beyond :mod:`memprior.diffusion`, :mod:`memprior.metrics`
and :mod:`memprior.guidance`:

:func:`level_for_sigma`, :func:`truncated_sample`
    Stop the sampler at a larger smallest noise level :math:`\\sigma_{\\min}` (a mitigation).
    With the closed-form memorized denoiser, the noisy output of a truncated sampler is
    distributed as the Gaussian-mixture prior :math:`p_\\sigma` of bandwidth
    :math:`\\sigma = \\sigma_{\\min}` (:class:`memprior.mixture.GaussianMixturePrior`).
:func:`importance_posterior`
    The posterior under *any* prior one can sample, by self-normalized importance
    resampling of prior samples with the Gaussian likelihood.  In low dimension this is a
    sampler-free reference for the posterior that a given prior implies.
:func:`energy_distance`
    A two-sample distance between point clouds (the energy distance of Székely and Rizzo),
    to compare a posterior with a reference posterior.
:func:`datum_posteriors`
    The importance posterior of several priors for one linear datum, and the energy distance of each to
    a reference posterior (the live app of the chapter recomputes it as the datum moves).
:func:`posterior_check`
    One row of the posterior-side report: the importance posterior of a prior compared with
    the lookup posterior (total variation of nearest-training-point frequencies) and with
    a reference posterior (energy distance), and the fraction of posterior samples that
    sit on training points, next to the same fraction for the reference (its null).

All functions take and return torch tensors, validate their input, and are seeded by a
``torch.Generator``.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import torch

from ._checks import as_tensor, check_generator, check_int, check_positive, check_seed
from .diffusion import Schedule, check_schedule, ddim_sample, ddpm_sample

__all__ = [
    "level_for_sigma",
    "truncated_sample",
    "ImportancePosterior",
    "importance_posterior",
    "energy_distance",
    "posterior_check",
    "datum_posteriors",
]

Forward = Callable[[torch.Tensor], torch.Tensor]
_F64 = torch.float64


# ============================================================================ truncation
def level_for_sigma(schedule: Schedule, sigma_min: float) -> int:
    """The first level whose noise-to-signal ratio reaches ``sigma_min``.

    Parameters
    ----------
    schedule : Schedule
    sigma_min : float
        Target smallest noise level, in the units of the data (the variance-exploding
        :math:`\\sigma_t = \\sqrt{(1-\\bar\\alpha_t)/\\bar\\alpha_t}`, :meth:`~memprior.diffusion.Schedule.sigma`), in
        ``(0, sigma(T-1)]``.

    Returns
    -------
    int
        The smallest ``t`` with ``schedule.sigma(t) >= sigma_min`` (``0`` when ``sigma_min``
        is at or below the schedule's own smallest level).
    """
    schedule = check_schedule(schedule)
    s_max = schedule.sigma(schedule.n_steps - 1)
    sigma_min = check_positive("sigma_min", sigma_min, square=True)
    if sigma_min > s_max * (1 + 1e-12):
        raise ValueError(f"sigma_min: must be in (0, {s_max:.4g}] (the schedule's largest noise level), "
                         f"got {sigma_min!r}")
    sig = ((1 - schedule.alpha_bar) / schedule.alpha_bar).sqrt()  # increasing in t
    idx = torch.nonzero(sig >= sigma_min * (1 - 1e-12))
    return int(idx[0]) if idx.numel() else schedule.n_steps - 1


class _Shifted:
    """A denoiser seen through a schedule that starts at level ``t0`` of the original one."""

    def __init__(self, base, t0: int):
        self.base, self.t0 = base, t0
        self.dim = base.dim
        self.dtype = getattr(base, "dtype", _F64)
        self.x_train = getattr(base, "x_train", None)

    def denoise(self, x_t, t):
        return self.base.denoise(x_t, int(t) + self.t0)

    def eps(self, x_t, t):
        return self.base.eps(x_t, int(t) + self.t0)


def _shifted_schedule(schedule: Schedule, t0: int) -> Schedule:
    # alpha_bar'[k] = alpha_bar[t0 + k]: the first step absorbs all the noise up to level t0
    first = (1 - schedule.alpha_bar[t0]).reshape(1)
    return Schedule(torch.cat([first, schedule.betas[t0 + 1:]]), name=f"{schedule.name} from t={t0}")


def truncated_sample(denoiser, schedule: Schedule, n: int, sigma_min: float,
                     generator: torch.Generator | None = None, *, output: str = "noisy",
                     sampler: str = "ddim", x_T=None) -> torch.Tensor:
    """Sample a diffusion prior, stopping at the noise level ``sigma_min``.

    The sampler runs from the noisiest level down to ``t0 = level_for_sigma(schedule,
    sigma_min)`` instead of down to ``t = 0``.

    * ``output="noisy"`` returns the last iterate rescaled to data units,
      :math:`x_{t_0}/\\sqrt{\\bar\\alpha_{t_0}}`, a draw of the model's distribution smoothed
      by Gaussian noise of standard deviation :math:`\\sigma_{t_0} \\ge \\sigma_{\\min}`.  For the
      closed-form memorized denoiser this is the Gaussian-mixture prior
      :math:`p_\\sigma = \\frac1N\\sum_n\\mathcal N(x_n, \\sigma^2 I)` with
      :math:`\\sigma = \\sigma_{t_0}` (up to the sampler's discretization error).
    * ``output="denoised"`` returns the denoiser's estimate :math:`\\hat x_0` at ``t0``
      (the common practice of a final denoising step from :math:`\\sigma_{\\min}`).

    Parameters
    ----------
    denoiser : object with ``.denoise(x_t, t)``, ``.eps(x_t, t)``, ``.dim``
        (and ``.x_train`` unless ``x_T`` is given).
    schedule : Schedule
    n : int >= 1
    sigma_min : float
        Smallest noise level, in ``(0, schedule.sigma(T-1)]``.
    generator : torch.Generator, optional
    output : {"noisy", "denoised"}
    sampler : {"ddim", "ddpm"}
        Deterministic DDIM or ancestral DDPM steps.
    x_T : Tensor[n, d], optional
        Start at the noisiest level (default: the training data's terminal marginal).

    Returns
    -------
    Tensor[n, d] in the denoiser's dtype.
    """
    check_generator(generator)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    if output not in ("noisy", "denoised"):
        raise ValueError(f"output: must be 'noisy' or 'denoised', got {output!r}")
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler: must be 'ddim' or 'ddpm', got {sampler!r}")
    t0 = level_for_sigma(schedule, sigma_min)
    shifted = _Shifted(denoiser, t0)
    sched = _shifted_schedule(schedule, t0)
    run = ddim_sample if sampler == "ddim" else ddpm_sample
    x0, traj = run(shifted, sched, n, generator=generator, x_T=x_T, return_trajectory=True)
    if output == "denoised":
        return x0
    x_last = traj["x"][-1]
    return (x_last.to(_F64) / schedule.alpha_bar[t0].sqrt()).to(x_last.dtype)


# ============================================================================ posterior
class ImportancePosterior(NamedTuple):
    """Result of :func:`importance_posterior`.

    Attributes
    ----------
    samples : Tensor[n, d]
        Posterior samples (prior samples resampled by their likelihood, with replacement).
    ess : float
        Effective sample size of the weights, :math:`1/\\sum_i w_i^2`, in ``[1, M]``.
    weights : Tensor[M]
        Normalized importance weights of the ``M`` prior samples.
    """

    samples: torch.Tensor
    ess: float
    weights: torch.Tensor


def importance_posterior(prior_samples, forward: Forward, y, gamma: float, n: int,
                         generator: torch.Generator | None = None) -> ImportancePosterior:
    """Posterior under the distribution of ``prior_samples``, by importance resampling.

    Each prior sample :math:`x_i` gets the weight :math:`w_i \\propto \\mathcal N(y; F(x_i),
    \\gamma^2 I)` (computed in log-space); ``n`` posterior samples are drawn from the weighted
    prior samples.  As the number ``M`` of prior samples grows this samples the posterior
    of the prior they came from, whatever that prior is: a trained network, a truncated
    sampler, or fresh draws from the true distribution.  Check ``ess``: with few effective
    samples the result is poor.

    Parameters
    ----------
    prior_samples : Tensor[M, d]
    forward : callable ``[B, d] -> [B, m]``
    y : Tensor[m]
    gamma : float > 0
        Noise standard deviation (units of ``y``).
    n : int >= 1
        Number of posterior samples.
    generator : torch.Generator, optional

    Returns
    -------
    ImportancePosterior
    """
    check_generator(generator)
    from .guidance import log_likelihoods

    x = as_tensor("prior_samples", prior_samples, ndim=2).to(_F64)
    if x.shape[0] < 1:
        raise ValueError(f"prior_samples: need at least one row, got shape {list(x.shape)}")
    n = check_int("n", n, low=1)
    ll = log_likelihoods(forward, x, y, gamma)
    w = torch.softmax(ll, 0)
    ess = float(1.0 / (w ** 2).sum())
    idx = torch.multinomial(w, n, replacement=True, generator=generator)
    return ImportancePosterior(samples=x[idx], ess=ess, weights=w)


def energy_distance(a, b) -> float:
    """Energy distance between two samples (Székely and Rizzo).

    .. math::

        D(a, b) = \\big(2\\,\\overline{\\|a_i - b_j\\|} - \\overline{\\|a_i - a_{i'}\\|}
        - \\overline{\\|b_j - b_{j'}\\|}\\big)^{1/2},

    the averages running over all pairs (V-statistics).  It is zero when the two empirical
    distributions are equal and positive otherwise, and in one dimension it equals
    :math:`\\sqrt{2}` times the :math:`L^2` distance between the empirical CDFs (as in
    ``scipy.stats.energy_distance``).

    Parameters
    ----------
    a : Tensor[A, d]
    b : Tensor[B, d]

    Returns
    -------
    float, >= 0, in the units of the data.
    """
    x = as_tensor("a", a, ndim=2).to(_F64)
    z = as_tensor("b", b, ndim=2).to(_F64)
    if x.shape[0] < 1 or z.shape[0] < 1:
        raise ValueError(f"a, b: need at least one row each, got shapes {list(x.shape)} and {list(z.shape)}")
    if x.shape[1] != z.shape[1]:
        raise ValueError(f"b: expected shape [B, {x.shape[1]}] (d of a), got {list(z.shape)}")

    def mean_dist(p, q):
        tot = 0.0
        for i in range(0, p.shape[0], 2048):
            tot += float(torch.cdist(p[i:i + 2048], q, compute_mode="donot_use_mm_for_euclid_dist").sum())
        return tot / (p.shape[0] * q.shape[0])

    e = 2 * mean_dist(x, z) - mean_dist(x, x) - mean_dist(z, z)
    return math.sqrt(max(e, 0.0))


def posterior_check(prior_samples, x_train, forward: Forward, y, gamma: float, reference, n: int = 1000,
                    generator: torch.Generator | None = None, n_boot: int = 200) -> dict:
    """Compare the posterior a prior implies with the lookup posterior and with a reference.

    The posterior is :func:`importance_posterior` of ``prior_samples``.  It is compared with

    * the **lookup posterior** (:func:`memprior.posterior.lookup_weights`): the total variation
      between the frequencies of the posterior samples' nearest training points and the
      lookup weights (:func:`memprior.guidance.tv_to_weights`), with its bootstrap error and the
      value an exact lookup sampler would show with as many samples (``floor``).  Near the
      floor: the prior's posterior is a lookup.
    * a **reference posterior** (``reference``, samples of the posterior under the true data
      distribution, or under any prior that generalizes): their :func:`energy_distance`.
    * the **training points themselves**: the fraction of posterior samples flagged by the
      rule :math:`d_1/d_2 < 1/3` (:func:`memprior.metrics.d1_d2`), next to the same fraction
      for the reference samples, its null.

    Parameters
    ----------
    prior_samples : Tensor[M, d]
        Samples of the prior under test.
    x_train : Tensor[N, d]
        Its training set (N >= 2).
    forward : callable ``[B, d] -> [B, m]``
    y : Tensor[m]
    gamma : float > 0
    reference : Tensor[R, d]
        Samples of the reference posterior.
    n : int >= 1
        Number of posterior samples drawn from the prior samples.
    generator : torch.Generator, optional
    n_boot : int >= 2
        Bootstrap replicates for the total-variation error.

    Returns
    -------
    dict
        ``"ess"``, ``"tv lookup"``, ``"tv se"``, ``"tv floor"``, ``"on training"``,
        ``"on training (reference)"``, ``"energy"`` (distance to the reference) and
        ``"samples"`` (Tensor[n, d], the posterior samples).
    """
    check_generator(generator)
    from .guidance import tv_to_weights
    from .metrics import D1D2_THRESHOLD, d1_d2, memorized_fraction
    from .posterior import lookup_weights

    xtr = as_tensor("x_train", x_train, ndim=2).to(_F64)
    ref = as_tensor("reference", reference, ndim=2).to(_F64)
    if ref.shape[1] != xtr.shape[1]:
        raise ValueError(f"reference: expected shape [R, {xtr.shape[1]}] (d of x_train), got {list(ref.shape)}")
    ps = as_tensor("prior_samples", prior_samples, ndim=2)
    if ps.shape[1] != xtr.shape[1]:
        raise ValueError(f"prior_samples: expected shape [M, {xtr.shape[1]}] (d of x_train), got {list(ps.shape)}")
    post = importance_posterior(ps, forward, y, gamma, n, generator=generator)
    w = lookup_weights(forward, xtr, y, gamma)
    tv = tv_to_weights(post.samples, xtr, w, n_boot=n_boot, generator=generator)
    on, _ = memorized_fraction(d1_d2(post.samples, xtr), D1D2_THRESHOLD)
    on_ref, _ = memorized_fraction(d1_d2(ref, xtr), D1D2_THRESHOLD)
    return {"ess": post.ess, "tv lookup": tv.tv, "tv se": tv.se, "tv floor": tv.floor,
            "on training": on, "on training (reference)": on_ref,
            "energy": energy_distance(post.samples, ref), "samples": post.samples}


def datum_posteriors(priors: Mapping[str, tuple], a, y: float, gamma: float, reference: Callable, n: int = 300,
                     seed: int = 0):
    """Posterior samples of each prior for the datum ``y = a · x + e``, and their distance to a reference.

    Parameters
    ----------
    priors : mapping name -> (x_train Tensor[N, 2], prior_samples Tensor[M, 2])
    a : Tensor[2]
        Weights of the linear datum.
    y : float
        Observed datum.
    gamma : float > 0
        Noise standard deviation.
    reference : callable ``(y, n, generator) -> Tensor[n, 2]``
        Samples of the reference posterior for datum ``y``.
    n : int >= 1
        Posterior samples per prior.
    seed : int
        Seeds the resampling (``seed + 10 + k`` for the ``k``-th prior) and the reference draws
        (``seed + 1``), the same for every ``y``.

    Returns
    -------
    (list of (x_train, prior_samples, posterior_samples), list of float)
        The panels for :func:`memprior.plots.practice.datum_traces`, and each posterior's
        :func:`~memprior.practice.energy_distance` to the reference.
    """
    seed = check_seed(seed, "seed")
    a = as_tensor("a", a, ndim=1).to(_F64)
    if a.shape[0] != 2:
        raise ValueError(f"a: expected 2 weights (d = 2), got shape {list(a.shape)}")
    gamma = check_positive("gamma", gamma, square=True)
    n = check_int("n", n, low=1)
    yt = torch.tensor([float(y)], dtype=_F64)

    def forward(x):
        return x @ a[:, None]

    ref = reference(float(y), n, torch.Generator().manual_seed(seed + 1))
    panels, dist = [], []
    for k, (x_train, prior) in enumerate(priors.values()):
        post = importance_posterior(prior, forward, yt, gamma, n,
                                    generator=torch.Generator().manual_seed(seed + 10 + k)).samples
        panels.append((x_train, prior, post))
        dist.append(energy_distance(post, ref))
    return panels, dist

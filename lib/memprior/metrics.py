"""Memorization metrics: nearest-neighbour distances to the training set, and their null.

Two scores are common.  Both look at the Euclidean distances
:math:`d_1 \\le d_2 \\le \\dots` from a generated sample to the training points,
sorted increasingly.

* The paper's ratio (Siahkoohi & Sabeddu 2026):
  :math:`r = d_1 / \\operatorname{mean}(d_2, \\dots, d_k)` with :math:`k = \\min(50, N)`;
  a sample counts as *memorized* when :math:`r < 0.7`.
* The rule from the literature (Yoon et al. 2023; Gu et al. 2023):
  memorized when :math:`d_1 / d_2 < 1/3`.

A threshold on either score means little on its own: in a sparse training set fresh
draws from the data distribution can also sit much closer to one training point than
to the others.  :func:`null_baseline` scores such fresh draws against the same
training set, and :func:`memorized_fraction` turns scores into a flagged fraction
with a binomial standard error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ._checks import as_tensor, as_train, check_int, check_positive
from .mixture import pairwise_sq_dists

__all__ = [
    "PAPER_THRESHOLD",
    "D1D2_THRESHOLD",
    "sorted_distances",
    "Nearest",
    "nearest",
    "nn_ratio",
    "d1_d2",
    "null_baseline",
    "memorized_fraction",
    "MemorizationReport",
    "memorization_report",
]

#: The paper's threshold on :func:`nn_ratio`.
PAPER_THRESHOLD = 0.7
#: The literature's threshold on :func:`d1_d2`.
D1D2_THRESHOLD = 1.0 / 3.0

_CHUNK = 4096


def _pair(samples, x_train, name: str = "samples"):
    s = as_tensor(name, samples, ndim=2)
    x = as_tensor("x_train", x_train, ndim=2)
    if s.shape[0] < 1:
        raise ValueError(f"{name}: need at least one row, got shape {list(s.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"x_train: need N >= 2 training points for a neighbour ratio, got N = {x.shape[0]}")
    if s.shape[1] != x.shape[1]:
        raise ValueError(f"{name}: expected shape [B, {x.shape[1]}] (d of x_train), got {list(s.shape)}")
    return s.to(torch.float64), x.to(torch.float64)


def sorted_distances(samples, x_train, k: int) -> torch.Tensor:
    """The ``k`` smallest Euclidean distances from each sample to the training set.

    Parameters
    ----------
    samples : Tensor[B, d]
    x_train : Tensor[N, d]
    k : int in [1, N]

    Returns
    -------
    Tensor[B, k], float64, increasing along each row.
    """
    s, x = _pair(samples, x_train)
    k = check_int("k", k, low=1, high=x.shape[0])
    out = []
    for i in range(0, s.shape[0], _CHUNK):
        d = torch.cdist(s[i:i + _CHUNK], x, compute_mode="donot_use_mm_for_euclid_dist")
        out.append(torch.topk(d, k, dim=1, largest=False, sorted=True).values)
    return torch.cat(out)


class Nearest(NamedTuple):
    """Each sample's nearest training point: what :func:`nearest` returns.

    A named tuple, so ``distance, index = nearest(samples, x_train)`` unpacks in this order.

    Attributes
    ----------
    distance : Tensor[B], float64
        Euclidean distance from each sample to its nearest training point (units of the data).
    index : LongTensor[B]
        Row of ``x_train`` holding that point (the first such row on a tie).
    """

    distance: torch.Tensor
    index: torch.Tensor


def nearest(samples, x_train) -> Nearest:
    """Nearest training point of each sample, and the distance to it.

    The one nearest-neighbour search of the library (the memorization metrics, the samplers'
    assignments in :mod:`memprior.guidance` and the experiments all use it).  Distances are computed
    from coordinate differences, not from the expansion ``|s|^2 + |x|^2 - 2 s.x``, so that a sample
    on a training point gets distance exactly 0.

    Parameters
    ----------
    samples : Tensor[B, d], B >= 1
    x_train : Tensor[N, d], N >= 1

    Returns
    -------
    Nearest
        ``(distance [B] float64, index [B] long)``, in this order; also ``.distance`` and ``.index``.

    Raises
    ------
    ValueError
        If either set is empty or not two-dimensional, or the dimensions ``d`` differ.
    """
    x = as_train(x_train).to(torch.float64)
    s = as_tensor("samples", samples, ndim=2).to(torch.float64)
    if s.shape[0] < 1:
        raise ValueError(f"samples: need at least one row, got shape {list(s.shape)}")
    if s.shape[1] != x.shape[1]:
        raise ValueError(f"samples: expected shape [B, {x.shape[1]}] (d of x_train), got {list(s.shape)}")
    d2, idx = pairwise_sq_dists(s, x).min(1)
    return Nearest(distance=d2.clamp(min=0).sqrt(), index=idx)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # 0/0 (a sample at a point whose other neighbours coincide with it) counts as fully memorized (0)
    out = torch.where(den > 0, num / den.clamp(min=torch.finfo(den.dtype).tiny), torch.zeros_like(num))
    return out


def nn_ratio(samples, x_train, k: int | None = None) -> torch.Tensor:
    """The paper's memorization ratio :math:`r = d_1 / \\operatorname{mean}(d_2..d_k)`.

    Parameters
    ----------
    samples : Tensor[B, d]
    x_train : Tensor[N, d], N >= 2
    k : int, optional
        Number of nearest neighbours used, ``2 <= k <= N``.  Default ``min(50, N)``, as in
        the paper.  (``k = 2`` gives :math:`d_1/d_2`.)

    Returns
    -------
    Tensor[B], float64, in [0, 1].  Small values mean the sample sits on one training point.

    Raises
    ------
    ValueError
        If ``k`` is outside ``[2, N]`` (i.e. more than the ``N - 1`` other neighbours are
        requested), if ``N < 2``, or if the dimensions differ.
    """
    s, x = _pair(samples, x_train)
    n = x.shape[0]
    if k is None:
        k = min(50, n)
    k = check_int("k", k, low=2, high=n)
    d = sorted_distances(s, x, k)
    return _ratio(d[:, 0], d[:, 1:].mean(1))


def d1_d2(samples, x_train) -> torch.Tensor:
    """Ratio of the nearest to the second-nearest training distance, :math:`d_1/d_2`.

    Memorized when below 1/3 (Yoon et al. 2023; Gu et al. 2023).

    Returns
    -------
    Tensor[B], float64, in [0, 1].
    """
    d = sorted_distances(samples, x_train, 2)
    return _ratio(d[:, 0], d[:, 1])


_METRICS = {"nn_ratio": nn_ratio, "d1_d2": d1_d2}


def null_baseline(fresh, x_train, metric: str = "nn_ratio", **kw) -> torch.Tensor:
    """Score fresh draws from the data distribution against the same training set.

    The null distribution of a memorization score: what a perfect generator (one that
    samples the data distribution and has never seen the training set) would get.

    Parameters
    ----------
    fresh : Tensor[B, d]
        Independent draws from the data distribution (not the training points).
    x_train : Tensor[N, d]
    metric : {"nn_ratio", "d1_d2"}
    **kw
        Passed to the metric (``k`` for ``nn_ratio``).

    Returns
    -------
    Tensor[B]
    """
    if metric not in _METRICS:
        raise ValueError(f"metric: must be one of {sorted(_METRICS)}, got {metric!r}")
    return _METRICS[metric](fresh, x_train, **kw)


def memorized_fraction(scores, threshold: float = PAPER_THRESHOLD):
    """Fraction of scores below ``threshold`` and its binomial standard error.

    Returns
    -------
    (float fraction, float standard error)
    """
    r = as_tensor("scores", scores, ndim=1)
    if r.numel() < 1:
        raise ValueError("scores: need at least one score")
    threshold = check_positive("threshold", threshold)
    p = float((r < threshold).to(torch.float64).mean())
    return p, math.sqrt(max(p * (1 - p), 0.0) / r.numel())


@dataclass(frozen=True)
class MemorizationReport:
    """The numbers behind a memorization report (:func:`memorization_report`).

    Attributes
    ----------
    rows : tuple of dict
        One row per set (``"generated"`` and, if fresh draws were given, ``"fresh (null)"``) with keys
        ``"set"``, ``"n"``, ``"median r"``, ``"r < 0.7"``, ``"r < 0.7 s.e."``, ``"d1/d2 < 1/3"``,
        ``"d1/d2 < 1/3 s.e."`` and ``"median d1"`` (distances in the units of the data).
    scores : dict
        Set name -> ``(r, q)``: arrays ``[B]`` of :func:`nn_ratio` and :func:`d1_d2` scores.
    pair_samples : ndarray [P, d]
        The gallery: the most and the least memorized generated samples (by ``r``).
    pair_neighbours : ndarray [P, d]
        Their nearest training points.
    pair_ratios : ndarray [P]
        Their ``r`` scores.
    """

    rows: tuple
    scores: dict
    pair_samples: np.ndarray
    pair_neighbours: np.ndarray
    pair_ratios: np.ndarray


def memorization_report(samples, x_train, fresh=None, k: int | None = None,
                        n_pairs: int = 6) -> MemorizationReport:
    """Memorization table and nearest-pair gallery for a set of generated samples.

    The figure is drawn by :func:`memprior.plots.diffusion.fig_memorization_report`.

    Parameters
    ----------
    samples : Tensor[B, d]
        Generated samples.
    x_train : Tensor[N, d]
        The training set (N >= 2).
    fresh : Tensor[M, d], optional
        Fresh draws from the data distribution: adds the null-baseline row.
    k : int, optional
        Neighbours for :func:`nn_ratio` (default ``min(50, N)``).
    n_pairs : int >= 1
        Number of (sample, nearest training point) pairs in the gallery; the most and
        least memorized samples are kept.

    Returns
    -------
    MemorizationReport
        The table rows (median ratio, the fractions flagged by ``r < 0.7`` and ``d1/d2 < 1/3``
        with their standard errors, the median nearest distance), the scores of each set, and
        the gallery pairs.
    """
    s, x = _pair(samples, x_train)
    n_pairs = check_int("n_pairs", n_pairs, low=1)
    sets = [("generated", s)]
    if fresh is not None:
        f, _ = _pair(fresh, x, name="fresh")
        sets.append(("fresh (null)", f))
    rows, scores = [], {}
    for name, z in sets:
        r = nn_ratio(z, x, k=k)
        q = d1_d2(z, x)
        d1 = nearest(z, x).distance
        fr, fr_se = memorized_fraction(r, PAPER_THRESHOLD)
        fq, fq_se = memorized_fraction(q, D1D2_THRESHOLD)
        rows.append({"set": name, "n": int(z.shape[0]), "median r": float(r.median()),
                     "r < 0.7": fr, "r < 0.7 s.e.": fr_se, "d1/d2 < 1/3": fq, "d1/d2 < 1/3 s.e.": fq_se,
                     "median d1": float(d1.median())})
        scores[name] = (r, q)
    r, _ = scores["generated"]
    idx = nearest(s, x).index
    order = torch.argsort(r)
    m = min(n_pairs, s.shape[0])
    pick = torch.cat([order[: (m + 1) // 2], order[len(order) - m // 2:]]) if m > 1 else order[:1]
    pick = torch.unique_consecutive(pick)
    return MemorizationReport(
        rows=tuple(rows), scores={name: (v[0].numpy(), v[1].numpy()) for name, v in scores.items()},
        pair_samples=s[pick].numpy(), pair_neighbours=x[idx[pick]].numpy(), pair_ratios=r[pick].numpy())

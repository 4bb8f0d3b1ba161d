"""Tests for memprior.metrics: nearest-neighbour ratios, the d1/d2 rule, null baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memprior.metrics import (D1D2_THRESHOLD, PAPER_THRESHOLD, Nearest, d1_d2, memorized_fraction, nearest, nn_ratio,
                              null_baseline, sorted_distances)

X = torch.tensor([[0.0], [1.0], [3.0], [6.0]], dtype=torch.float64)


def test_hand_computed_values():
    s = torch.tensor([[0.1], [0.5], [3.0]], dtype=torch.float64)
    # distances from 0.1: 0.1, 0.9, 2.9, 5.9
    r = nn_ratio(s, X)  # k = min(50, 4) = 4
    assert float(r[0]) == pytest.approx(0.1 / ((0.9 + 2.9 + 5.9) / 3))
    # from 0.5: 0.5, 0.5, 2.5, 5.5
    assert float(r[1]) == pytest.approx(0.5 / ((0.5 + 2.5 + 5.5) / 3))
    assert float(r[2]) == 0.0  # exactly on a training point
    r3 = nn_ratio(s, X, k=3)
    assert float(r3[0]) == pytest.approx(0.1 / 1.9)
    q = d1_d2(s, X)
    np.testing.assert_allclose(q.numpy(), [0.1 / 0.9, 1.0, 0.0])
    np.testing.assert_allclose(nn_ratio(s, X, k=2).numpy(), q.numpy())
    d, i = nearest(s, X)
    np.testing.assert_allclose(d.numpy(), [0.1, 0.5, 0.0])
    assert i.tolist()[0] == 0 and i.tolist()[2] == 2


def test_against_brute_force_sort():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=g, dtype=torch.float64)
    s = torch.randn(30, 5, generator=g, dtype=torch.float64)
    d = np.sort(np.linalg.norm(s.numpy()[:, None] - x.numpy()[None], axis=-1), axis=1)
    np.testing.assert_allclose(sorted_distances(s, x, 7).numpy(), d[:, :7], rtol=1e-12)
    np.testing.assert_allclose(nn_ratio(s, x).numpy(), d[:, 0] / d[:, 1:50].mean(1), rtol=1e-12)
    np.testing.assert_allclose(d1_d2(s, x).numpy(), d[:, 0] / d[:, 1], rtol=1e-12)
    # invariant under a common rotation, translation and scaling
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    t = torch.randn(5, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(nn_ratio(3 * s @ Q + t, 3 * x @ Q + t).numpy(), nn_ratio(s, x).numpy(), rtol=1e-9)


def test_null_baseline_and_fraction():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    fresh = torch.randn(400, 2, generator=g, dtype=torch.float64)
    r0 = null_baseline(fresh, x)
    np.testing.assert_allclose(r0.numpy(), nn_ratio(fresh, x).numpy())
    q0 = null_baseline(fresh, x, metric="d1_d2")
    np.testing.assert_allclose(q0.numpy(), d1_d2(fresh, x).numpy())
    np.testing.assert_allclose(null_baseline(fresh, x, k=5).numpy(), nn_ratio(fresh, x, k=5).numpy())
    # in 2-D the paper's threshold flags nearly every fresh draw: d1 is small next to mean(d2..d50)
    p, se = memorized_fraction(r0, PAPER_THRESHOLD)
    assert p > 0.9 and se == pytest.approx(math.sqrt(p * (1 - p) / 400))
    # copies of training points plus tiny noise are flagged by both rules
    copies = x[:20] + 1e-4 * torch.randn(20, 2, generator=g, dtype=torch.float64)
    assert memorized_fraction(nn_ratio(copies, x))[0] == 1.0
    assert memorized_fraction(d1_d2(copies, x), D1D2_THRESHOLD)[0] == 1.0


def test_d1_d2_null_for_a_poisson_cloud():
    """For locally uniform points in R^d, (d1/d2)^d ~ U(0,1), so P(d1/d2 < 1/3) = 3^-d."""
    g = torch.Generator().manual_seed(2)
    for d in (1, 2):
        x = torch.rand(4000, d, generator=g, dtype=torch.float64)
        fresh = 0.3 + 0.4 * torch.rand(3000, d, generator=g, dtype=torch.float64)  # away from the edges
        q = null_baseline(fresh, x, metric="d1_d2")
        p, se = memorized_fraction(q, D1D2_THRESHOLD)
        assert abs(p - 3.0 ** -d) < 4 * math.sqrt(3.0 ** -d * (1 - 3.0 ** -d) / 3000), (d, p)
        # and the whole distribution: Kolmogorov-Smirnov against U(0,1)
        from scipy import stats
        assert stats.kstest((q ** d).numpy(), "uniform").pvalue > 1e-3


def test_nearest_order_exactness_and_errors():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    s = torch.randn(25, 3, generator=g, dtype=torch.float64)
    out = nearest(s, x)
    assert isinstance(out, Nearest) and out._fields == ("distance", "index")
    d, i = out  # unpacks as (distance, index)
    assert d is out.distance and i is out.index and i.dtype == torch.long
    ref = np.linalg.norm(s.numpy()[:, None] - x.numpy()[None], axis=-1)  # independent brute force
    np.testing.assert_array_equal(i.numpy(), ref.argmin(1))
    np.testing.assert_allclose(d.numpy(), ref.min(1), rtol=1e-13)
    # far from the origin, a sample on a training point is at distance exactly 0 (differences, not the
    # expansion |s|^2 + |x|^2 - 2 s.x, which loses everything to cancellation there)
    far = 1e4 + x
    d0, i0 = nearest(far[[7, 3]], far)
    assert d0.tolist() == [0.0, 0.0] and i0.tolist() == [7, 3]
    # ties go to the first row; one training point is enough; int input is accepted
    d1, i1 = nearest([[0.5]], [[0.0], [1.0]])
    assert i1.tolist() == [0] and d1.tolist() == [0.5]
    assert nearest(s, x[:1]).index.eq(0).all()
    with pytest.raises(ValueError, match=r"samples: expected shape \[B, 3\]"):
        nearest(torch.zeros(2, 2), x)
    with pytest.raises(ValueError, match="samples: need at least one row"):
        nearest(torch.zeros(0, 3), x)
    with pytest.raises(ValueError, match="x_train: the training set is empty"):
        nearest(s, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="samples"):
        nearest(torch.zeros(3), x)


def test_extremes_no_nan():
    x = torch.zeros(3, 2, dtype=torch.float64)  # all training points coincide
    r = nn_ratio(torch.zeros(2, 2, dtype=torch.float64), x)
    assert torch.isfinite(r).all() and float(r.max()) == 0.0
    big = torch.tensor([[1e150, 0.0], [-1e150, 0.0]], dtype=torch.float64)
    assert torch.isfinite(d1_d2(torch.tensor([[1e150, 1.0]], dtype=torch.float64), big)).all()


def test_bad_input():
    s = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"k: must be an integer in \[2, 4\]"):
        nn_ratio(s, X, k=5)
    with pytest.raises(ValueError, match="k"):
        nn_ratio(s, X, k=1)
    with pytest.raises(TypeError, match="k"):
        nn_ratio(s, X, k=2.5)
    with pytest.raises(ValueError, match="N >= 2"):
        nn_ratio(s, X[:1])
    with pytest.raises(ValueError, match="N >= 2"):
        d1_d2(s, X[:1])
    with pytest.raises(ValueError, match=r"samples: expected shape \[B, 1\]"):
        nn_ratio(torch.zeros(2, 3), X)
    with pytest.raises(ValueError, match="samples"):
        d1_d2(torch.zeros(3), X)
    with pytest.raises(ValueError, match="metric"):
        null_baseline(s, X, metric="fid")
    with pytest.raises(ValueError, match="scores"):
        memorized_fraction(torch.zeros(0))
    with pytest.raises(ValueError, match="threshold"):
        memorized_fraction(torch.zeros(3), threshold=-1.0)
    with pytest.raises(ValueError, match="samples"):
        nn_ratio(torch.tensor([[float("nan")]]), X)


def test_memorization_report():
    from memprior.metrics import MemorizationReport, memorization_report
    from memprior.plots.diffusion import fig_memorization_report

    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    copies = x[:12] + 1e-3 * torch.randn(12, 6, generator=g, dtype=torch.float64)
    fresh = torch.randn(300, 6, generator=g, dtype=torch.float64)
    rep = memorization_report(copies, x, fresh=fresh, n_pairs=4)
    assert isinstance(rep, MemorizationReport)
    rows = rep.rows
    assert [r["set"] for r in rows] == ["generated", "fresh (null)"]
    gen, nul = rows
    assert gen["r < 0.7"] == 1.0 and gen["d1/d2 < 1/3"] == 1.0 and gen["median d1"] < 5e-3
    # the null row is the metrics on the fresh draws
    p, se = memorized_fraction(d1_d2(fresh, x), D1D2_THRESHOLD)
    assert nul["d1/d2 < 1/3"] == pytest.approx(p) and nul["d1/d2 < 1/3 s.e."] == pytest.approx(se)
    assert nul["median r"] == pytest.approx(float(nn_ratio(fresh, x).median()))
    np.testing.assert_allclose(rep.scores["fresh (null)"][1], d1_d2(fresh, x).numpy())
    # the gallery: the 2 most and the 2 least memorized samples, each with its nearest training point
    r = nn_ratio(copies, x).numpy()
    np.testing.assert_allclose(np.sort(rep.pair_ratios), np.sort(np.concatenate([np.sort(r)[:2], np.sort(r)[-2:]])))
    fig = fig_memorization_report(rep)
    pairs = [tr for tr in fig.data if tr.type == "scatter"]
    assert len(pairs) == 8
    for a, b in zip(pairs[0::2], pairs[1::2]):
        d, i = nearest(torch.as_tensor(np.asarray(a.y, dtype=np.float64))[None], x)
        np.testing.assert_allclose(np.asarray(b.y), x[int(i)].numpy(), rtol=1e-6)
    # images instead of profiles, and no null
    rep = memorization_report(copies, x, n_pairs=2)
    fig = fig_memorization_report(rep, image_shape=(2, 3))
    assert len(rep.rows) == 1 and sum(tr.type == "heatmap" for tr in fig.data) == 2
    with pytest.raises(ValueError, match="image_shape"):
        fig_memorization_report(rep, image_shape=(4, 4))
    with pytest.raises(ValueError, match="fresh"):
        memorization_report(copies, x, fresh=torch.zeros(3, 5))

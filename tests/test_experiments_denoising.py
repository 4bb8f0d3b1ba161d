"""Tests of memprior.experiments.denoising (chapter 4: diffusion models memorize)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import stats

from memprior import diffusion, metrics
from memprior.experiments import denoising


@pytest.fixture(autouse=True)
def _one_thread_and_tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPRIOR_CACHE", str(tmp_path))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _lower_median(v: np.ndarray) -> float:
    return float(np.sort(v)[(len(v) - 1) // 2])  # torch's median of an even count


# ------------------------------------------------------------------------------------- schedules
def test_paper_schedule_closed_form():
    lin, cos = denoising.paper_schedule(), diffusion.Schedule.cosine(200)
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 200))  # alpha-bar by hand
    np.testing.assert_allclose(lin.alpha_bar.numpy(), ab, rtol=1e-12)
    # the chapter's claims: about 13 % of the signal variance is left at the last step, none with cosine;
    # the smallest noise level is sqrt(beta_0) = 0.01; SNR_{T-1} = ab/(1 - ab)
    assert 0.12 < lin.terminal_alpha_bar() < 0.14 and cos.terminal_alpha_bar() < 1e-6
    assert lin.std(0) == pytest.approx(0.01, abs=1e-12)
    assert float(lin.snr()[-1]) == pytest.approx(ab[-1] / (1 - ab[-1]), rel=1e-10)


def test_twin_noising_at_the_chapter_settings_is_small():
    from memprior.plots import figure_bytes
    from memprior.plots.diffusion import twin_noising

    x1 = torch.tensor([-1.5, -0.4, 0.4, 1.2, 2.5], dtype=torch.float64)[:, None]
    fig = twin_noising(diffusion.MemorizedDenoiser(x1, denoising.paper_schedule()),
                       [0, 5, 15, 30, 50, 80, 120, 160, 199], np.linspace(-4.0, 5.0, 300))
    assert len(fig.frames) == 9 and figure_bytes(fig) < 1_500_000


# ------------------------------------------------------------------------------------ optimality
def test_optimality_check_chapter_claims():
    res = denoising.optimality_check()
    assert res.jac_err < 1e-9
    # a tempered softmax never lowers the loss significantly at a step, and raises it overall
    assert res.taus.tolist() == [0.8, 1.25]
    assert np.all(res.z_min > -3) and np.all(res.z_all > 4)


def test_optimal_denoiser_minimizes_the_loss_by_quadrature():
    # independent of the Monte Carlo of the experiment: in d = 1 the loss is an integral over x_t
    sch = denoising.paper_schedule()
    x = np.array([-1.0, 0.3, 1.1])
    t = 60
    a, s2 = float(sch.alpha_bar[t]), 1 - float(sch.alpha_bar[t])
    g = np.linspace(-6, 6, 24001)
    phi = np.exp(-(g[:, None] - math.sqrt(a) * x) ** 2 / (2 * s2)) / math.sqrt(2 * math.pi * s2)  # [G, N]

    def loss(tau):
        lg = -tau * (g[:, None] - math.sqrt(a) * x) ** 2 / (2 * s2)
        w = np.exp(lg - lg.max(1, keepdims=True))
        d = (w / w.sum(1, keepdims=True)) @ x
        return np.trapezoid((phi * (d[:, None] - x) ** 2).mean(1), g)

    opt = loss(1.0)
    assert loss(0.8) > opt and loss(1.25) > opt
    den = diffusion.MemorizedDenoiser(torch.as_tensor(x)[:, None], sch)
    mc = diffusion.denoising_loss(den, den.x_train, sch, t=[t], n=20000, generator=torch.Generator().manual_seed(0),
                                  reduction="none")[0]
    assert abs(float(mc.mean()) - opt) < 4 * float(mc.std()) / math.sqrt(20000)


# --------------------------------------------------------------------------------------- landing
def test_landing_2d_lands_on_training_points():
    res = denoising.landing_2d()
    assert res.x_train.shape == (12, 2) and res.samples.shape == (400, 2) and res.paths.shape == (201, 25, 2)
    d1 = _pairwise(res.samples, res.x_train).min(1)
    assert abs(res.max_d1 - d1.max()) < 1e-7 and res.max_d1 < 1e-6  # torch.cdist rounds to ~1e-8
    sep = _pairwise(res.x_train, res.x_train)[~np.eye(12, dtype=bool)].min()
    assert res.min_separation == pytest.approx(sep, rel=1e-12) and res.min_separation > 0.01
    np.testing.assert_array_equal(res.paths[-1], res.samples[:25])
    # the paths start from the terminal marginal: sqrt(ab) x_m + noise of std sqrt(1 - ab) ~ 0.93
    assert 0.5 < np.std(res.paths[0] - res.paths[0].mean(0)) < 3
    again, other = denoising.landing_2d(), denoising.landing_2d(seed=6)
    np.testing.assert_array_equal(again.samples, res.samples)
    assert not np.allclose(other.x_train, res.x_train)


# ----------------------------------------------------------------------------------- frequencies
def test_frequency_test_chapter_claims_and_chi_square():
    res = denoising.frequency_test()
    assert res.counts.shape == (2, 10) and np.all(res.counts.sum(1) == 2000) and res.max_d1 < 1e-6
    # chi-square re-derived by hand
    e = 2000 / 10
    chi = ((res.counts - e) ** 2 / e).sum(1)
    np.testing.assert_allclose(res.p_values, stats.chi2.sf(chi, 9), rtol=1e-10)
    assert res.p_value("marginal") > 0.01 and res.p_value("standard") < 1e-6
    # the standard start favours the training points of small norm
    norms = np.linalg.norm(res.x_train, axis=1)
    assert stats.spearmanr(norms, res.counts[1]).statistic < -0.5
    # the cosine schedule ends in noise: there the standard start is right (exercise ch4-ex-cosine)
    cos = denoising.frequency_test(schedule=diffusion.Schedule.cosine(200), inits=("standard",), seed=21)
    assert cos.inits == ("standard",) and cos.p_value("standard") > 0.001


# ------------------------------------------------------------------------------------ commitment
def test_commitment_sweep_chapter_claims():
    res = denoising.commitment_sweep()
    T = res.n_steps
    assert res.median.shape == (3, 4) and T == 200
    assert np.all(res.lo <= res.median) and np.all(res.median <= res.hi) and np.all(res.hi <= T - 1)
    # commitment moves earlier (larger t*) as d grows, for every N ...
    assert np.all(np.diff(res.median, axis=1) > 0)
    # ... and in d = 128 the median path has committed within the first 3 steps, for every N
    assert np.all(res.median[:, -1] >= T - 3)
    assert res.median_at(10, 2) == res.median[0, 0] and res.median_at(1000, 32) == res.median[2, 2]


def test_commitment_matches_a_brute_force_reference():
    sch = denoising.paper_schedule()
    res = denoising.commitment_sweep(dims=(3,), ns=(4,), n_paths=16, seed=3)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(10 * 4 + 3), dtype=torch.float64)
    den = diffusion.MemorizedDenoiser(x, sch)
    _, tr = diffusion.ddim_sample(den, sch, 16, generator=torch.Generator().manual_seed(3), return_trajectory=True)
    # by hand: the last step (counting from the noisiest) at which the final point's weight is <= 0.9
    w = np.stack([den.weights(xx, int(t)).numpy() for t, xx in zip(tr["t"], tr["x"])])  # [S, n, N]
    final = w[-1].argmax(1)
    ok = w[:, np.arange(16), final] > 0.9  # [S, n]
    ts = tr["t"].numpy()
    tstar = np.array([ts[np.max(np.nonzero(~ok[:, j])[0]) + 1] if (~ok[:, j]).any() else ts[0] for j in range(16)])
    assert res.median[0, 0] == pytest.approx(np.quantile(tstar, 0.5))
    assert res.lo[0, 0] == pytest.approx(np.quantile(tstar, 0.1))


# -------------------------------------------------------------------------------- trained networks
def test_mlp_gap_identities_and_optimality():
    sch = denoising.paper_schedule()
    res = denoising.mlp_gap(snapshots=(100, 200), t_stride=20, n_mc=1500, n_samples=200)
    assert res.ts.tolist() == list(range(0, 200, 20)) and res.t_end == 180
    np.testing.assert_allclose(res.excess, res.x0_mlp - res.x0_mem)
    ab = float(sch.alpha_bar[180])
    assert res.inv_snr_end == pytest.approx((1 - ab) / ab)
    # the closed form predicts the noise exactly at t = 0, and no network beats it (MC tolerance 2 %)
    assert res.eps_mem[0] < 1e-3
    assert np.all(res.x0_mlp >= 0.98 * res.x0_mem)
    mid = res.excess[(res.ts > 20) & (res.ts < 150)]
    assert res.excess_mid == pytest.approx(np.median(mid)) and res.excess_end == res.excess[-1]
    d1 = _pairwise(res.samples, res.x_train).min(1)
    assert res.median_d1 == pytest.approx(_lower_median(d1), rel=1e-6)
    # reproducible from the seeds (the second call reads the cached network)
    again = denoising.mlp_gap(snapshots=(100, 200), t_stride=20, n_mc=1500, n_samples=200)
    np.testing.assert_array_equal(again.samples, res.samples)
    np.testing.assert_array_equal(again.loss_history, res.loss_history)


def test_memorization_sweep_against_numpy():
    res = denoising.memorization_sweep(ns=(3, 6), snapshots=(100, 400), n_samples=120, n_fresh=150)
    assert res.frac.shape == (2, 2, 2) and res.null.shape == (2, 2) and res.rules == denoising.RULES
    np.testing.assert_allclose(res.se, np.sqrt(res.frac * (1 - res.frac) / 120))
    # the null, re-derived with numpy from the same fresh draws and training sets
    fresh = torch.randn(150, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64).numpy()
    for i, n in enumerate((3, 6)):
        x = torch.randn(n, 2, generator=torch.Generator().manual_seed(100 + n), dtype=torch.float64).numpy()
        d = np.sort(_pairwise(fresh, x), axis=1)
        assert res.null[1, i] == pytest.approx(np.mean(d[:, 0] / d[:, 1] < 1 / 3))
        assert res.null[0, i] == pytest.approx(np.mean(d[:, 0] / d[:, 1:].mean(1) < 0.7))
        assert res.null_median_d1[i] == pytest.approx(_lower_median(d[:, 0]))
        assert res.null_flagged(n) == res.null[1, i] and res.flagged(n, 100, rule=0) == res.frac[0, i, 0]
    assert np.all(res.loss_end < res.loss_start)


# --------------------------------------------------------------------------------- null vs. dim
def test_null_vs_dimension_chapter_claims():
    res = denoising.null_vs_dimension()
    fr, fq = res.frac_r, res.frac_q
    # the paper's rule flags nearly all fresh draws in d = 2 and none in d = 100; so does d1/d2 at d = 100
    assert fr[0, 1] > 0.9 and np.all(fr[:, -1] < 0.01) and np.all(fq[:, -1] < 0.01)
    # the dense-data limit 3^-d of the d1/d2 null, in d = 1 with N = 1000
    assert abs(res.at(1000, 1)[1] - 1 / 3) < 4 * math.sqrt(2 / 9 / 1000)
    # one entry re-derived with numpy
    g = torch.Generator().manual_seed(1000 * 50 + 8)
    x = torch.randn(50, 8, generator=g, dtype=torch.float64).numpy()
    z = torch.randn(1000, 8, generator=g, dtype=torch.float64).numpy()
    d = np.sort(_pairwise(z, x), axis=1)
    assert res.at(50, 8) == pytest.approx((np.mean(d[:, 0] / d[:, 1:].mean(1) < 0.7),
                                           np.mean(d[:, 0] / d[:, 1] < 1 / 3)))


def test_dense_data_limit_of_the_d1_d2_null():
    # exercise ch4-ex-null: uniform training points, fresh draws away from the edges: 3^-d
    for d in (1, 2):
        g = torch.Generator().manual_seed(30 + d)
        xu = torch.rand(4000, d, generator=g, dtype=torch.float64)
        fu = 0.3 + 0.4 * torch.rand(2000, d, generator=g, dtype=torch.float64)
        p, _ = metrics.memorized_fraction(metrics.d1_d2(fu, xu), 1 / 3)
        assert abs(p - 3.0 ** -d) < 4 * math.sqrt(3.0 ** -d * (1 - 3.0 ** -d) / 2000)


def test_null_kl_against_numpy_and_the_isotropic_null():
    from memprior import velocity
    from memprior.fwi import random_field_models
    kw = dict(ns=(20, 60), n_fresh=200, grid=16, K=4)  # d = 16, small and quick
    res = denoising.null_kl(**kw)
    assert res.spaces == ("raw", "z-scored", "gaussian", "diagonal", "isotropic") and res.d == 16
    assert res.frac_r.shape == res.frac_q.shape == (5, 2)
    basis = velocity.KLBasis(16, 16, K=4)
    pool = random_field_models(basis, 60, 0)[0].numpy()
    fresh = random_field_models(basis, 200, 10_000)[0].numpy()
    for j, n in enumerate((20, 60)):
        x = pool[:n]
        mu, sd = x.mean(0), x.std(0, ddof=1)
        for i, (f, t) in enumerate(((fresh, x), ((fresh - mu) / sd, (x - mu) / sd))):  # raw, then z-scored
            d = np.sort(_pairwise(f, t), axis=1)
            k = min(50, n)
            assert res.frac_r[i, j] == pytest.approx(np.mean(d[:, 0] / d[:, 1:k].mean(1) < 0.7))
            assert res.frac_q[i, j] == pytest.approx(np.mean(d[:, 0] / d[:, 1] < 1 / 3))
    # the isotropic row is null_vs_dimension's, in the same dimension
    iso = denoising.null_vs_dimension(dims=(16,), ns=(20, 60), n_fresh=200)
    np.testing.assert_array_equal(res.frac_r[4], iso.frac_r[:, 0])
    np.testing.assert_array_equal(res.frac_q[4], iso.frac_q[:, 0])
    # participation ratios: d for isotropic points, (sum s^2)^2 / sum s^4 for independent coefficients
    s2 = pool.var(0, ddof=1)
    assert res.effective_dim[4] == 16 and res.effective_dim[3] == pytest.approx(s2.sum() ** 2 / (s2 ** 2).sum())
    ev = np.linalg.eigvalsh(np.cov(pool.T))
    assert res.effective_dim[0] == pytest.approx(ev.sum() ** 2 / (ev ** 2).sum(), rel=1e-9)
    assert 1 <= res.effective_dim[0] < res.effective_dim[3] <= 16  # correlations shrink the spread
    assert res.std_range == pytest.approx((np.sqrt(s2).min(), np.sqrt(s2).max()))
    assert res.at("raw", 60) == (res.frac_r[0, 1], res.frac_q[0, 1])


def test_null_kl_chapter_claims():
    res = denoising.null_kl()  # the chapter's: d = 100, N = 50, 200, 1000, 1000 fresh models (0.4 s)
    fr = dict(zip(res.spaces, res.frac_r))
    assert np.all(fr["isotropic"] == 0) and np.all(res.frac_q == 0)
    assert fr["raw"][0] > 0.5 and fr["z-scored"][0] > 0.5 and fr["raw"][-1] > 0.05
    assert np.all(fr["raw"] > fr["z-scored"]) and fr["diagonal"].max() < 0.05
    assert fr["gaussian"][0] > 0.3 and np.all(fr["raw"][1:] > 3 * fr["gaussian"][1:])
    assert res.effective_dim[0] < 20 and res.effective_dim[1] < 20


# ------------------------------------------------------------------------ results and bad input
def test_results_are_frozen_and_read_only():
    res = denoising.null_vs_dimension(dims=(1, 2), ns=(5,), n_fresh=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.n_fresh = 3
    with pytest.raises(ValueError):
        res.frac_r[0, 0] = 1.0


@pytest.mark.parametrize("call, err, name", [
    (lambda: denoising.landing_2d(schedule="linear"), TypeError, "schedule"),
    (lambda: denoising.landing_2d(n_train=1), ValueError, "n_train"),
    (lambda: denoising.landing_2d(n_samples=10, n_paths=11), ValueError, "n_paths"),
    (lambda: denoising.landing_2d(scale=-1.0), ValueError, "scale"),
    (lambda: denoising.frequency_test(inits=("uniform",)), ValueError, "inits"),
    (lambda: denoising.commitment_sweep(dims=(8, 2)), ValueError, "dims"),
    (lambda: denoising.commitment_sweep(threshold=1.5), ValueError, "threshold"),
    (lambda: denoising.commitment_sweep(ns=3), TypeError, "ns"),
    (lambda: denoising.optimality_check(taus=(0.8, -1.0)), ValueError, "taus"),
    (lambda: denoising.optimality_check(steps=(10, 200)), ValueError, "steps"),
    (lambda: denoising.mlp_gap(t_stride=0), ValueError, "t_stride"),
    (lambda: denoising.memorization_sweep(snapshots=()), ValueError, "snapshots"),
    (lambda: denoising.null_vs_dimension(ns=(1,)), ValueError, "ns"),
    (lambda: denoising.null_vs_dimension(seed=1.5), TypeError, "seed"),
    (lambda: denoising.null_kl(ns=(2, 10)), ValueError, "ns"),
    (lambda: denoising.null_kl(seed=3, fresh_seed=3), ValueError, "fresh_seed"),
    (lambda: denoising.null_kl(grid=8, K=10), ValueError, "grid"),
    (lambda: denoising.null_kl(ns=(20,), n_fresh=5, grid=16, K=4).at("whitened", 20), ValueError, "space"),
    (lambda: denoising.null_kl(ns=(20,), n_fresh=5, grid=16, K=4).at("raw", 21), ValueError, "n"),
])
def test_bad_input_names_the_parameter(call, err, name):
    with pytest.raises(err, match=name):
        call()

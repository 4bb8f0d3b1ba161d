"""Tests for memprior.experiments.fwi (chapter 7): the FWI experiment and the chapter's computations.

Small grid and training sets where a property does not depend on size; the chapter's own settings for its
claims that are cheap to check (the lookup).  Independent references: brute-force solves and numpy softmaxes,
least squares on the basis functions, numpy re-derivations of ranks, medians, distance ratios and binomial
errors; reproducibility from the seed; bad input.
"""
import math
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest
import torch

from memprior import fwi, metrics, posterior
from memprior import velocity as V
from memprior.experiments import fwi as X

torch.set_num_threads(1)

# 16 x 16 grid, 1.2 Hz: ~9.7 points per wavelength at 1.45 km/s; d = 16
SMALL = dict(grid=16, npml=6, freq=1.2, n_src=3, n_rec=8, K=4, sizes=(12, 30), n_samples=4, n_steps=20)


@pytest.fixture(scope="module")
def exp():
    return X.FWIExperiment(fwi.FWIConfig(**SMALL), show_progress=False)


@pytest.fixture(scope="module")
def obs(exp):
    return exp.observation("lens")


@pytest.fixture(scope="module")
def cmp(exp):
    return X.compare_samplers(exp, N=12, n_prior=50)


def _nll_brute_force(exp, obs, N):
    """Misfit of every training model: one independent solve each, the complex NLL in numpy."""
    out = []
    for m in exp.training_set(N).m:
        d = np.asarray(exp.solver.forward(m.numpy(), exp.cfg.freq, exp.acq))
        out.append(np.sum(np.abs(obs.d_obs.numpy() - d) ** 2) / obs.sigma_d ** 2)
    return np.array(out)


def _lower_median(x):
    x = np.sort(np.asarray(x, dtype=float).ravel())
    return float(x[(x.size - 1) // 2])


# ----------------------------------------------------------------------------- the experiment (moved from test_fwi)
def test_lookup_weights_match_brute_force(exp, obs):
    N = 12
    ts = exp.training_set(N)
    # brute force: one independent solve per model, the complex NLL, a softmax in numpy
    nll = []
    for m in ts.m:
        d = np.asarray(exp.solver.forward(m.numpy(), exp.cfg.freq, exp.acq))
        nll.append(np.sum(np.abs(obs.d_obs.numpy() - d) ** 2) / obs.sigma_d ** 2)
    nll = np.array(nll)
    w = np.exp(-(nll - nll.min()))
    w /= w.sum()
    lk = exp.lookup(N, obs)
    assert np.allclose(lk.nll.numpy(), nll, rtol=1e-10)
    assert np.allclose(lk.weights.numpy(), w, atol=1e-12)
    # and through the real-stacked forward map and memprior.posterior
    w2 = posterior.lookup_weights(exp.forward(N), ts.u, obs.y, obs.gamma)
    assert torch.allclose(w2, lk.weights, atol=1e-12)
    assert lk.best == int(np.argmin(nll))
    assert 1.0 <= lk.exp_H <= N
    assert math.isclose(lk.misfit_per_datum, nll.min() / obs.n_data, rel_tol=1e-10)


def test_exact_sampler_frequencies_match_lookup_weights(exp):
    N = 12
    t = exp.truth("lens")
    o = exp.observe(t, noise=3.0, seed=5)  # very noisy: weights spread over several models
    lk = exp.lookup(N, o)
    assert lk.exp_H > 2.0
    n = 4000
    res = exp.sample("exact", N, o, n=n, seed=1, steps=5)
    assert float(res.nearest_dist.max()) < 1e-6  # lands on training models (cdist round-off)
    freq = torch.bincount(res.nearest, minlength=N).to(torch.float64) / n
    se = (lk.weights * (1 - lk.weights) / n).sqrt()
    assert bool(((freq - lk.weights).abs() <= 4.5 * se + 1e-3).all())
    assert res.n_solver_calls == 0  # the training data come from the cache


def test_dps_samplers_commit_and_land_near_training_models(exp, obs):
    N = 12
    T = exp.schedule.n_steps
    step_size = 0.05
    r = exp.sample("dps_normalized", N, obs, n=4, step_size=step_size, seed=2)
    assert r.u.shape == (4, 16) and torch.isfinite(r.u).all()
    assert torch.allclose(r.z, exp.training_set(N).to_z(r.u))
    # the memorized denoiser's last output is a training model, and the final guidance step has length step_size
    assert torch.allclose(r.nearest_dist, torch.full((4,), step_size, dtype=torch.float64), atol=1e-6)
    assert bool(((r.commit >= 0) & (r.commit <= T - 1)).all())
    assert bool((r.misfit_per_datum > 0).all())
    c = exp.sample("dps", N, obs, n=4, zeta=0.5, seed=2)
    assert torch.isfinite(c.u).all() and c.commit.shape == (4,)
    # committed DPS: the denoiser's Jacobian vanishes, so guidance cannot move the sample off its model
    assert float(c.nearest_dist.max()) < 1e-3


def test_linearized_mixture_limits(exp):
    N = 12
    t = exp.truth("lens")
    o = exp.observe(t, noise=3.0, seed=5)
    lk = exp.lookup(N, o)
    mix, idx = exp.linearized(N, o, sigma=1e-4, top=N)
    # sigma -> 0: the component weights tend to the lookup weights
    w_lookup = lk.weights[idx] / lk.weights[idx].sum()
    assert torch.allclose(mix.weights, w_lookup, atol=1e-3)
    assert torch.allclose(mix.means, exp.training_set(N).u[idx], atol=1e-3)
    # the covariance is sigma^2 I to first order
    assert torch.allclose(mix.covs[0].diagonal(), torch.full((16,), 1e-8, dtype=torch.float64), rtol=1e-2)
    # at finite sigma, the log-determinant changes the weights
    m1, _ = exp.linearized(N, o, sigma=0.5, top=N)
    m0, _ = exp.linearized(N, o, sigma=0.5, top=N, logdet=False)
    assert not torch.allclose(m1.weights, m0.weights, atol=1e-6)
    assert math.isclose(float(m1.weights.sum()), 1.0, rel_tol=1e-12)
    with pytest.raises(ValueError, match="top"):
        exp.linearized(N, o, sigma=0.1, top=0)
    with pytest.raises(ValueError, match="sigma"):
        exp.linearized(N, o, sigma=0.0)


def test_memorization_against_null(exp):
    N = 30
    ts = exp.training_set(N)
    fresh = exp.fresh_models(40)
    mem = exp.memorization(ts.z[:5], N, fresh)  # training points themselves: fully memorized
    assert mem["frac_r"] == 1.0 and mem["frac_q"] == 1.0
    assert float(mem["r"].max()) < 1e-6  # cdist round-off only
    assert mem["null_r"].shape == (40,) and mem["null_q"].shape == (40,)
    assert bool(((mem["null_r"] > 0) & (mem["null_r"] <= 1)).all())
    assert mem["null_frac_q"] < 0.5
    # the null computed by hand
    ref = metrics.nn_ratio(fresh, ts.z)
    assert torch.allclose(mem["null_r"], ref)
    with pytest.raises(ValueError, match="space"):
        exp.memorization(ts.z[:5], N, fresh, space="pixels")


def test_pipeline_small(exp):
    out = X.run_pipeline(exp, sizes=(12,), methods=("exact", "dps_normalized"), n=2, n_fresh=10, top=3)
    r = out["results"][12]
    assert set(r["samples"]) == {"exact", "dps_normalized"}
    assert r["linearized"].weights.shape == (3,)
    assert "total" in out["seconds"]
    assert 0.0 <= r["memorization"]["exact"]["null_frac_r"] <= 1.0


def test_pool_data_incremental_and_uncached_forward(exp):
    d12 = exp.pool_data_upto(12)
    assert d12.shape == (12, 3, 8) and d12.dtype == torch.complex128
    d30 = exp.pool_data_upto(30)
    assert torch.equal(d30[:12], d12)
    with pytest.raises(ValueError, match="N"):
        exp.pool_data_upto(31)
    fwd = exp.forward(12, cached=False)
    u = exp.training_set(12).u[:2]
    assert torch.allclose(fwd(u), fwi.to_real(d12[:2]), rtol=1e-10, atol=1e-14)
    v = exp.velocities(12, u)
    assert torch.allclose(v, V.m_to_v(exp.training_set(12).m[:2]))
    with pytest.raises(ValueError, match="cached"):
        exp.sample("exact", 12, exp.observe(exp.truth("lens")), cached=False)


def test_observation_is_kept_and_equals_observe(exp):
    o = exp.observation("lens", noise=0.1, seed=3)
    assert exp.observation("lens", noise=0.1, seed=3) is o
    ref = exp.observe(exp.truth("lens"), noise=0.1, seed=3)
    assert torch.equal(o.d_obs, ref.d_obs) and o.sigma_d == ref.sigma_d
    with pytest.raises(ValueError, match="kind"):
        exp.observation("marmousi")
    with pytest.raises(ValueError, match="noise"):
        exp.observation("lens", noise=0.0)


def test_sample_runs_are_kept_per_call_and_data(exp, obs):
    a = exp.sample("dps_normalized", 12, obs, n=2, steps=5, seed=7)
    assert exp.sample("dps_normalized", 12, obs, n=2, steps=5, seed=7) is a
    b = exp.sample("dps_normalized", 12, obs, n=2, steps=5, seed=8)
    assert b is not a and not torch.equal(a.u, b.u)
    # other data with the same settings: a new run
    other = exp.observation("lens", noise=0.2)
    assert exp.sample("dps_normalized", 12, other, n=2, steps=5, seed=7) is not a
    # the same call on a fresh experiment reproduces the samples exactly (seeded)
    fresh = X.FWIExperiment(fwi.FWIConfig(**SMALL), show_progress=False)
    c = fresh.sample("dps_normalized", 12, fresh.observation("lens"), n=2, steps=5, seed=7)
    assert torch.equal(c.u, a.u) and torch.equal(c.nearest, a.nearest)
    with pytest.raises(FrozenInstanceError):
        a.N = 3


# ----------------------------------------------------------------------------- the chapter's computations
def test_setting_against_least_squares_and_numpy(exp):
    s = X.setting(exp, n_show=3)
    c = exp.cfg
    assert (s.grid, s.n_src, s.n_rec, s.d, s.n_max) == (16, 3, 8, 16, 30)
    assert s.n_data == c.n_src * c.n_rec and s.dx_m == pytest.approx(1000 * c.dx)
    # points per wavelength: slowest velocity / (f dx), from the pool's squared slowness
    vmin = 1 / np.sqrt(exp.pool_m.numpy().max())
    assert s.points_per_wavelength == pytest.approx(vmin / (c.freq * c.dx), rel=1e-12)
    # the KL projection errors against least squares on the basis functions (numpy)
    cols = exp.basis.dm_dz().reshape(c.d, -1).numpy().T                # [n*n, d]
    for kind, err in (("lens", s.kl_error_lens), ("ood", s.kl_error_ood)):
        dm = (exp.truth(kind).m - V.M_BAR).numpy().ravel()
        coef, *_ = np.linalg.lstsq(cols, dm, rcond=None)
        assert err == pytest.approx(np.linalg.norm(cols @ coef - dm) / np.linalg.norm(dm), rel=1e-8)
    # the complex likelihood equals the real-stacked Gaussian with gamma = sigma_d / sqrt(2)
    assert s.nll_real_stacked == pytest.approx(s.nll_truth, rel=1e-10)
    # the truth's misfit is a sum of n_data Exp(1) variables: within 4 standard deviations of n_data
    assert abs(s.truth_misfit_per_datum - 1) < 4 / math.sqrt(s.n_data)
    assert s.velocities.shape == (3 + 4, 16, 16) and len(s.titles) == 7
    assert np.allclose(s.velocities[0], 1 / np.sqrt(exp.pool_m[0].numpy()))
    assert s.ms_per_model == pytest.approx(1000 * s.pool_seconds / s.n_max)
    with pytest.raises(ValueError, match="n_show"):
        X.setting(exp, n_show=0)
    with pytest.raises(TypeError, match="exp"):
        X.setting(exp.cfg)


def test_lookup_table_against_brute_force(exp):
    tab = X.lookup_table(exp)
    assert tab.truth == ("lens", "lens", "ood", "ood") and tab.N.tolist() == [12, 30, 12, 30]
    for kind in ("lens", "ood"):
        o = exp.observation(kind)
        for N in (12, 30):
            nll = _nll_brute_force(exp, o, N)
            w = np.exp(-(nll - nll.min()))
            w /= w.sum()
            eh = float(np.exp(-np.sum(w[w > 0] * np.log(w[w > 0]))))
            srt = np.sort(nll)
            best = int(np.argmin(nll))
            v_best = 1 / np.sqrt(exp.training_set(N).m[best].numpy())
            assert tab.get("exp_H", kind, N) == pytest.approx(eh, rel=1e-9)
            assert tab.get("misfit_per_datum", kind, N) == pytest.approx(srt[0] / o.n_data, rel=1e-9)
            assert tab.get("gap", kind, N) == pytest.approx(srt[1] - srt[0], rel=1e-8)
            assert tab.get("v_rmse", kind, N) == pytest.approx(np.sqrt(np.mean((v_best - o.truth.v.numpy()) ** 2)))
    assert tab.max_exp_H == tab.exp_H.max() and tab.min_gap == tab.gap.min()
    rows = tab.rows()
    assert len(rows) == 4 and list(rows[0]) == ["truth", "N", "exp(H)", "best misfit/datum", "NLL gap",
                                                "v RMSE (km/s)", "rel. error"]
    with pytest.raises(ValueError, match="truth, N"):
        tab.get("gap", "lens", 50)
    with pytest.raises(ValueError, match="field"):
        tab.get("weights", "lens", 12)
    with pytest.raises(ValueError, match="truth"):
        X.lookup_table(exp, truths=("marmousi",))
    with pytest.raises(ValueError, match="sizes"):
        X.lookup_table(exp, sizes=(31,))


def test_lookup_claims_at_the_chapter_settings():
    """The chapter's claim: with 5 % noise the exact posterior is one-hot for every N and truth, on a model
    that does not fit the data (misfit per datum far above 1)."""
    big = X.FWIExperiment(fwi.FWIConfig(), show_progress=False)
    tab = X.lookup_table(big, sizes=(50, 200))       # the pool's data up to N = 200 only (N = 1000: the chapter)
    assert tab.N.tolist() == [50, 200] * 2
    assert tab.max_exp_H < 1.001 and tab.min_misfit_per_datum > 10 and tab.min_gap > 50


def test_compare_samplers_claims_and_references(exp, obs, cmp):
    T, n = exp.schedule.n_steps, exp.cfg.n_samples
    assert (cmp.N, cmp.n_samples, cmp.n_steps) == (12, n, T)
    # ranks re-derived from the brute-force misfits
    nll = _nll_brute_force(exp, obs, 12)
    rank = np.empty(12, dtype=int)
    rank[np.argsort(nll)] = np.arange(1, 13)
    assert cmp.best == int(np.argmin(nll))
    for r in cmp.runs:
        assert np.array_equal(r.rank, rank[r.nearest])
        assert r.median_rank == _lower_median(r.rank) and r.median_misfit == _lower_median(r.misfit_per_datum)
        assert r.distinct == len(set(r.nearest.tolist()))
        assert r.on_best == pytest.approx(np.mean(r.nearest == cmp.best))
        assert r.v.shape == (n, 16, 16) and np.allclose(r.v_std, r.v.std(0, ddof=1))
    # the exact sampler returns the lookup's best model every time (one-hot lookup at 5 % noise)
    assert cmp.best_weight > 0.999 and cmp.exact.on_best == 1.0 and cmp.exact.distinct == 1
    assert np.allclose(cmp.exact.v_std, 0.0) and cmp.exact.median_misfit == pytest.approx(cmp.best_misfit)
    # DPS sits on training models; the normalized variant within exactly step_size of one
    assert cmp.dps.nearest_dist.max() < 1e-3
    assert np.abs(cmp.normalized.nearest_dist - 0.05).max() < 1e-6
    # commitment: from its step on, the weight of the final model stays above 0.9
    for r in (cmp.dps, cmp.normalized):
        assert r.commit_weights.shape == (T, n) and r.levels.tolist() == list(range(T - 1, -1, -1))
        for j in range(n):
            k = int(r.commit_step[j])
            if k < T:
                assert (r.commit_weights[k:, j] > 0.9).all()
                assert k == 0 or r.commit_weights[k - 1, j] <= 0.9
    assert cmp.exact.commit_weights.shape == (0, n) and (cmp.exact.commit_step == 0).all()
    assert 1 <= cmp.prior_median_rank <= 12
    assert [row["sampler"] for row in cmp.rows()] == ["DPS", "DPS (normalized)", "exact"]
    # reproducible: the same settings on a fresh experiment give the same samples
    again = X.compare_samplers(X.FWIExperiment(fwi.FWIConfig(**SMALL), show_progress=False), N=12, n_prior=50)
    assert np.array_equal(again.dps.u, cmp.dps.u) and np.array_equal(again.normalized.nearest, cmp.normalized.nearest)
    assert again.prior_median_rank == cmp.prior_median_rank
    with pytest.raises(ValueError, match="N"):
        X.compare_samplers(exp, N=1)
    with pytest.raises(ValueError, match="step_size"):
        X.compare_samplers(exp, N=12, step_size=0.0)
    with pytest.raises(ValueError, match="truth"):
        X.compare_samplers(exp, N=12, truth="marmousi")


def test_exact_check_against_binomial_errors(exp):
    chk = X.exact_check(exp, N=12, noise=3.0, obs_seed=5, n_batches=2, batch=2000, steps=5)
    assert chk.n_total == 4000 and chk.frequencies.sum() == pytest.approx(1.0)
    assert chk.exp_H > 2                                               # the weights spread
    assert chk.tv == pytest.approx(0.5 * np.abs(chk.frequencies - chk.weights).sum())
    assert np.allclose(chk.standard_errors, np.sqrt(chk.weights * (1 - chk.weights) / 4000))
    assert chk.within(4.5) and chk.tv < 0.05
    # a check that can fail: frequencies shifted by one model are far outside the errors
    shifted = replace(chk, frequencies=np.roll(chk.frequencies, 1))
    assert not shifted.within(4.5)
    with pytest.raises(ValueError, match="batch"):
        X.exact_check(exp, N=12, batch=0)


def test_linearized_sweep_limits(exp, obs):
    lin = X.linearized_sweep(exp, N=12, sigmas=(1e-4, 0.01, 0.3))
    smin = float(exp.schedule.sigma(0))
    assert lin.sigma_min == smin and smin in lin.sigmas.tolist() and (np.diff(lin.sigmas) > 0).all()
    # sigma -> 0: the dominant component is the lookup's best model, its mean barely moves, the spread is sigma
    assert lin.dominant_rank[0] == 1
    assert lin.spread[0] == pytest.approx(1e-4, rel=1e-2) and lin.shift[0] < 1e-3
    assert (lin.exp_H >= 1 - 1e-12).all() and lin.max_exp_H >= lin.exp_H.max()
    # the dominant component at sigma_min computed directly
    mix, idx = exp.linearized(12, obs, smin, top=12)
    k = int(mix.weights.argmax())
    ts = exp.training_set(12)
    assert lin.shift_min == pytest.approx(float((mix.means[k] - ts.u[idx[k]]).norm()))
    assert lin.shift_over_sd == pytest.approx(lin.shift_min / float(mix.covs[k].diagonal().sqrt().mean()))
    assert lin.exp_H[lin.i_min] == pytest.approx(posterior.effective_components(mix.weights))
    assert lin.rank_sigma_min == lin.dominant_rank[lin.i_min] and lin.rank_sigma_max == lin.dominant_rank[-1]
    with pytest.raises(ValueError, match="sigmas"):
        X.linearized_sweep(exp, N=12, sigmas=(0.1, -1.0))


def test_linearized_last_best_rule():
    base = dict(N=3, d=4, sigma_min=0.1, exp_H=np.ones(4), exp_H_no_logdet=np.ones(4), shift=np.ones(4),
                spread=np.ones(4), same_dominant=np.ones(4, bool), jac_seconds=0.0, dps_to_top=1.0, dps_on_best=0.0)
    s = np.array([0.01, 0.1, 0.3, 1.0])
    assert X.LinearizedSweep(sigmas=s, dominant_rank=np.array([1, 1, 2, 1]), **base).last_best == 0.1
    assert X.LinearizedSweep(sigmas=s, dominant_rank=np.array([2, 1, 1, 1]), **base).last_best == 0.01
    assert X.LinearizedSweep(sigmas=s, dominant_rank=np.array([1, 1, 1, 1]), **base).last_best == 1.0


def test_memorization_sweep_against_numpy(exp, obs):
    mem = X.memorization_sweep(exp, n_fresh=40)
    assert mem.sizes.tolist() == [12, 30] and mem.n_fresh == 40
    fresh = exp.fresh_models(40).numpy()
    for i, N in enumerate((12, 30)):
        tr = exp.training_set(N).z.numpy()
        # the paper's ratio of the null, brute force: d1 / mean(d2..dk), k = min(50, N)
        d = np.sort(np.linalg.norm(fresh[:, None] - tr[None], axis=-1), axis=1)[:, :min(50, N)]
        r = d[:, 0] / d[:, 1:].mean(1)
        assert np.allclose(mem.null_r[i], r, rtol=1e-10)
        p = np.mean(r < 0.7)
        assert mem.get("null_frac_r", N) == pytest.approx(p)
        assert mem.get("null_frac_r_se", N) == pytest.approx(math.sqrt(p * (1 - p) / 40))
        # the normalized-DPS samples are training models moved by step_size: both rules flag all of them
        assert mem.get("frac_q", N) == 1.0 and mem.get("frac_r", N) == 1.0
        assert mem.exp_H[i] == pytest.approx(exp.lookup(N, obs).exp_H)
        assert np.allclose(mem.nll_per_datum[i], _nll_brute_force(exp, obs, N) / obs.n_data, rtol=1e-9)
    with pytest.raises(ValueError, match="N"):
        mem.get("frac_q", 50)
    with pytest.raises(ValueError, match="field"):
        mem.get("r", 12)
    with pytest.raises(ValueError, match="sizes"):
        X.memorization_sweep(exp, sizes=())


def test_mlp_comparison_small(exp):
    mlp = X.mlp_comparison(exp, K=2, sizes=(6, 30), n_fresh=20, n_draws=40, train_steps=400, hidden=32,
                           depth=2, dps_n=2, dps_steps=5)
    assert mlp.d == 4 and mlp.sizes.tolist() == [6, 30]
    # the closed form's draws are training models: the strict rule flags every one
    assert mlp.cf_frac_q.tolist() == [1.0, 1.0]
    for f in (mlp.mlp_frac_q, mlp.null_frac_q, mlp.mlp_frac_r, mlp.null_frac_r):
        assert ((f >= 0) & (f <= 1)).all()
    # the closed form's normalized-DPS samples sit exactly step_size from their training model
    assert np.allclose(mlp.cf_dps_dist, 0.05, atol=1e-6)
    # nearest-neighbour spacing of the smallest set, brute force (lower median)
    e = X.FWIExperiment(replace(exp.cfg, K=2, sizes=(6, 30)), show_progress=False)
    u = e.training_set(6).u.numpy()
    d = np.linalg.norm(u[:, None] - u[None], axis=-1) + np.diag(np.full(6, np.inf))
    assert mlp.spacing == pytest.approx(_lower_median(d.min(1)))
    assert set(mlp.fractions("r")) == {"MLP", "closed form", "null"}
    with pytest.raises(ValueError, match="rule"):
        mlp.fractions("p")
    with pytest.raises(ValueError, match="sizes"):
        X.mlp_comparison(exp, sizes=(1,))


def test_step_lengths_and_app_runs(exp, obs):
    st = X.step_lengths(exp, N=12, step_sizes=(0.02, 0.07), n=3, steps=6)
    assert st.nearest.shape == (2, 3)
    assert np.allclose(st.nearest_dist, np.array([[0.02], [0.07]]), atol=1e-6)   # exactly step_size from the model
    assert st.same_fraction == pytest.approx(np.mean(st.nearest[0] == st.nearest[1]))
    runs = X.app_runs(exp, N=12, step_sizes=(0.02, 0.07), n=3, steps=6)
    assert set(runs) == {(12, 0.05, 0.05), (30, 0.05, 0.05), (12, 0.05, 0.02), (12, 0.05, 0.07)}
    # the app reuses the sweeps' runs instead of sampling again
    assert runs[12, 0.05, 0.05] is exp.sample("dps_normalized", 12, obs, step_size=0.05, seed=0)
    assert np.array_equal(runs[12, 0.05, 0.07].nearest.numpy(), st.nearest[1])
    with pytest.raises(ValueError, match="step_sizes"):
        X.step_lengths(exp, N=12, step_sizes=(-0.1,))


def test_chapter_figures_draw_numpy_summaries_of_the_runs(exp, obs, cmp):
    from memprior.plots import fwi as figs

    def z(tr):
        return np.asarray(tr.z, dtype=float).T  # heatmap rows are depths: back to [nx, nz]

    s = X.setting(exp)
    fs = figs.fig_setting(s)
    assert len(fs.data) == 8
    for tr, v in zip(fs.data, s.velocities):
        np.testing.assert_allclose(z(tr), v, rtol=1e-6)
    # the first four normalized-DPS samples above the training model nearest to each (numpy argmin in u)
    r = cmp.normalized
    ts = exp.training_set(12)
    near = np.argmin(((r.u[:, None, :] - ts.u.numpy()[None]) ** 2).sum(-1), axis=1)
    fp = figs.fig_pairs(cmp)
    assert len(fp.data) == 2 * 4
    for j in range(4):
        np.testing.assert_allclose(z(fp.data[j]), r.v[j], rtol=1e-6)
        np.testing.assert_allclose(z(fp.data[4 + j]), 1 / np.sqrt(ts.m[near[j]].numpy()), rtol=1e-6)
    # misfit per datum of every sample, from a fresh wave solve of its velocity: sum |d_obs - F(1/v^2)|^2 / (sigma^2 n)
    fm = figs.fig_sample_misfits(cmp)
    assert len(fm.data) == 3 + 2
    for tr, run in zip(fm.data, cmp.runs):
        ref = [np.sum(np.abs(obs.d_obs.numpy() - exp.solver.forward(1 / v ** 2, exp.cfg.freq, exp.acq)) ** 2)
               / (obs.sigma_d ** 2 * obs.n_data) for v in run.v]
        np.testing.assert_allclose(np.asarray(tr.y, dtype=float), ref, rtol=1e-5)
    assert len(figs.fig_commitment_paths(cmp).data) == 2 * exp.cfg.n_samples
    # pointwise sample mean and standard deviation (n - 1) of each sampler's velocities
    fmean, fstd = figs.fig_means(cmp), figs.fig_stds(cmp)
    assert len(fmean.data) == 5 and len(fstd.data) == 3
    np.testing.assert_allclose(z(fmean.data[0]), cmp.truth_v, rtol=1e-6)
    for k, run in enumerate(cmp.runs):
        np.testing.assert_allclose(z(fmean.data[2 + k]), run.v.mean(0), rtol=1e-6)
        np.testing.assert_allclose(z(fstd.data[k]), run.v.std(0, ddof=1), rtol=1e-5, atol=1e-7)
    lin = X.linearized_sweep(exp, N=12, sigmas=(1e-3, 0.1))
    assert len(figs.fig_linearized_sweep(lin).data) == 5
    mem = X.memorization_sweep(exp, n_fresh=40)
    assert len(figs.fig_memorization_sweep(mem).data) == 4
    assert len(figs.twin_memorization(mem).frames) == 2
    with pytest.raises(ValueError, match="rule"):
        figs.fig_mlp_comparison(None, rule="x")


# ----------------------------------------------------------------------------- trained priors: DPS; representation
def test_trained_dps_against_numpy(exp, obs, tmp_path, monkeypatch):
    """Per-sample scores of trained-prior DPS against independent numpy computations; intervals bracket estimates."""
    monkeypatch.setenv("MEMPRIOR_CACHE", str(tmp_path))
    res = X.trained_dps(exp, sizes=(12,), n=6, steps=5, k=2, n_snap=3, n_boot=200, hidden=64, depth=2,
                        train_steps=2000)
    ts, lk = exp.training_set(12), exp.lookup(12, obs)
    assert res.n == 6 and res.steps == 5 and res.n_steps == 200 and res.v.shape == (1, 2, 16, 16)
    assert res.snapshots.shape == (1, 3, 16, 16) and res.snap_levels[0] > res.snap_levels[-1]
    # the samples' raw coefficients, rebuilt from the kept velocities of the first k samples, are not stored:
    # check the per-sample scores from the full sets instead
    z_tr = ts.z.numpy()
    cs, ct = res.coef_samples[0], res.coef_train[0]
    np.testing.assert_allclose(ct, z_tr[:, res.coef], rtol=0, atol=0)
    order = np.argsort(lk.nll.numpy())
    rank = np.empty(12, dtype=int)
    rank[order] = np.arange(1, 13)
    np.testing.assert_array_equal(res.rank[0], rank[res.nearest[0]])
    assert res.frac_q[0] == np.mean(res.q[0] < 1 / 3)
    assert res.on_best[0] == np.mean(res.nearest[0] == lk.best)
    for name in ("frac_q", "on_best", "median_dist", "median_misfit", "spread"):
        lo, hi, mid = (res.get(name + s, 12) for s in ("_lo", "_hi", ""))
        assert lo - 1e-12 <= mid <= hi + 1e-12, name
    np.testing.assert_allclose(res.median_dist[0], np.median(res.nearest_dist[0]))
    # the kept samples: their nearest training model is at the recorded distance (velocity space check)
    v_near = V.m_to_v(ts.m[torch.as_tensor(res.nearest[0, :2])]).numpy()
    np.testing.assert_allclose(res.nearest_v[0], v_near, atol=1e-9)
    # misfit of the kept samples: an independent solve of their velocity models
    for j in range(2):
        d = np.asarray(exp.solver.forward(V.v_to_m(torch.as_tensor(res.v[0, j])).numpy(), exp.cfg.freq, exp.acq))
        mis = np.sum(np.abs(obs.d_obs.numpy() - d) ** 2) / obs.sigma_d ** 2 / obs.n_data
        np.testing.assert_allclose(res.misfit_per_datum[0, j], mis, rtol=1e-6)
    # spread: the grid-averaged pointwise std; the lookup's is its weighted std (0 when one-hot)
    assert res.lookup_spread[0] < 1e-6 and lk.exp_H < 1.001
    assert cs.shape == (6, 2) and res.q.shape == (1, 6)
    with pytest.raises(ValueError, match="n"):
        X.trained_dps(exp, sizes=(12,), n=1)
    with pytest.raises(ValueError, match="steps"):
        X.trained_dps(exp, sizes=(12,), steps=201)
    with pytest.raises(ValueError, match="level"):
        X.trained_dps(exp, sizes=(12,), level=1.0)


def test_representation_against_least_squares(exp):
    rep = X.representation(exp, sizes=(12,))
    c = exp.cfg
    assert rep.truths == ("lens", "prior", "ood") and rep.n_dropped == 2 * c.K - 1
    # the in-span truth: the projection is exact; the lens and OOD field are not
    assert rep.get("kl_rmse", "prior") < 1e-10 < rep.get("kl_rmse", "lens")
    for i, t in enumerate(rep.truths):
        tr = exp.truth(t)
        np.testing.assert_allclose(rep.background_rmse[i], np.sqrt(np.mean((tr.v.numpy() - 2.0) ** 2)), rtol=1e-12)
        assert rep.get("lookup_rmse", t, 12) == pytest.approx(exp.lookup(12, exp.observation(t)).v_rmse)
    # index ranges by numpy least squares on the sampled cosines (not KLBasis.project)
    lens = exp.truth("lens").m.numpy().ravel()
    dm = lens - V.M_BAR
    lost, coef = {}, {}
    for start in (1, 0):
        i = np.arange(start, start + c.K) + 0.5
        x = (np.arange(c.grid) + 0.5) / c.grid
        cx = np.cos(np.pi * np.outer(i, x))
        phi = np.einsum("ax,bz->abxz", cx, cx).reshape(c.K ** 2, -1)
        a, *_ = np.linalg.lstsq(phi.T, dm, rcond=None)
        lost[start] = np.linalg.norm(phi.T @ a - dm) / np.linalg.norm(dm)
        coef[start] = (a, phi)
    np.testing.assert_allclose([rep.lost_paper, rep.lost_zero], [lost[1], lost[0]], rtol=1e-8, atol=1e-12)
    a, phi = coef[0]
    low = np.array([(p == 0) or (q == 0) for p in range(c.K) for q in range(c.K)])
    share = np.sum((phi[low].T @ a[low]) ** 2) / np.sum((phi.T @ a) ** 2)
    np.testing.assert_allclose(rep.dropped_share, share, rtol=1e-8)
    with pytest.raises(ValueError, match="truth"):
        X.representation(exp, truths=("moon",))
    with pytest.raises(ValueError, match="seed"):
        exp.truth("prior", seed=exp.cfg.seed)


# ----------------------------------------------------------------------------- the paper's protocol, side by side
@pytest.fixture(scope="module")
def proto(exp):
    return X.protocol(exp, N=12)


def test_protocol_likelihood_factor_against_numpy_softmax(exp, obs, proto):
    nll = _nll_brute_force(exp, obs, 12)
    for f, eh in ((1.0, proto.exp_H), (0.5, proto.exp_H_half)):
        a = -f * nll
        w = np.exp(a - a.max())
        w /= w.sum()
        w = w[w > 0]
        assert math.isclose(eh, float(np.exp(-(w * np.log(w)).sum())), rel_tol=1e-9)
    s = np.sort(nll)
    assert math.isclose(proto.gap, s[1] - s[0], rel_tol=1e-9) and math.isclose(proto.gap_half, proto.gap / 2)
    assert proto.exp_H_half >= proto.exp_H      # a flatter likelihood spreads the weights
    d = np.abs(obs.d_clean.numpy())
    assert math.isclose(proto.max_over_rms, d.max() / np.sqrt((d ** 2).mean()), rel_tol=1e-12)


def test_protocol_edge_pixel_gradient_against_finite_differences(exp, obs, proto):
    """Independent central differences (a different step): the book's gradient matches at the edge pixel, the
    interior-only gradient of the paper's solver does not; at the centre both match (no PML copies there)."""
    c = exp.cfg
    m0 = np.full((c.grid, c.grid), float(V.M_BAR))

    def fd(pix, h=4e-6):
        out = []
        for s in (h, -h):
            m = m0.copy()
            m[pix] += s
            out.append(exp.solver.misfit_gradient(m, c.freq, exp.acq, obs.d_obs.numpy(), obs.sigma_d)[0])
        return (out[0] - out[1]) / (2 * h)

    e, i = fd(proto.edge), fd(proto.interior)
    assert proto.edge[0] == 0 and 0 < proto.interior[0] < c.grid - 1 and 0 < proto.interior[1] < c.grid - 1
    assert abs(proto.grad_edge - e) < 1e-5 * abs(e) and abs(proto.grad_interior - i) < 1e-5 * abs(i)
    assert abs(proto.grad_edge_interior_only - e) > 0.05 * abs(e)
    assert proto.grad_interior_interior_only == proto.grad_interior
    assert proto.err_edge < 1e-5 < 0.05 < proto.err_edge_interior_only and proto.err_interior < 1e-5


def test_protocol_rows_and_lens(exp, proto):
    rows = proto.rows()
    assert [r["setting"] for r in rows] == ["DPS start", "geometry", "noise", "likelihood", "lens", "edge pixels"]
    assert all(set(r) == {"setting", "paper", "book", "what the difference changes"} for r in rows)
    assert "50 sources / 200 receivers" in rows[1]["paper"] and "max|d|" in rows[2]["paper"]
    # the paper's elliptical lens against an independent numpy formula
    c = fwi.FWIConfig(**{**SMALL, "lens_dv": -0.5, "lens_width": (0.25, 0.15)})
    v = X.FWIExperiment(c, show_progress=False).truth("lens").v.numpy()
    x = np.arange(c.grid) * c.dx
    ctr = (c.grid - 1) * c.dx / 2
    ref = 2.0 - 0.5 * np.exp(-((x[:, None] - ctr) / 0.25) ** 2 / 2 - ((x[None, :] - ctr) / 0.15) ** 2 / 2)
    assert np.allclose(v, ref, rtol=0, atol=1e-12) and 1.5 < v.min() < 1.6
    with pytest.raises(ValueError, match="N"):
        X.protocol(exp, N=1)
    with pytest.raises(ValueError, match="step"):
        X.protocol(exp, N=12, step=0.0)
    with pytest.raises(TypeError, match="exp"):
        X.protocol("exp")


def test_bootstrap_in_blocks_equals_one_pass():
    """The blocked bootstrap (bounded memory) gives the replicates of a one-pass resample, exactly."""
    from memprior.experiments import fwi as E
    rng = np.random.default_rng(3)
    vals = rng.normal(size=(32, 40, 40))                       # 51 200 numbers: 39 replicates per block
    n_boot, level, seed = 200, 0.9, (1, 2)
    got = E._bootstrap(vals, E._mean_std, n_boot, level, seed)
    idx = np.random.default_rng(seed).integers(0, 32, size=(n_boot, 32))
    reps = E._mean_std(vals[idx])
    want = (float(np.quantile(reps, 0.05)), float(np.quantile(reps, 0.95)))
    assert got == want


def test_releases_memory_keeps_the_function():
    from memprior.experiments import _common
    from memprior.experiments import fwi as E

    @_common.releases_memory
    def f(a, *, b=2):
        """doc"""
        return a + b

    assert f(1, b=3) == 4 and f.__doc__ == "doc" and f.__name__ == "f"
    assert E.denoiser_gap.__wrapped__.__name__ == "denoiser_gap"
    _common.release_memory()                                    # callable on its own, returns nothing

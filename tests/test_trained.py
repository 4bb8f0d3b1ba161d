"""Tests for memprior.trained (trained FWI priors) and the transition experiments of memprior.experiments.fwi.

Tiny networks and few steps on a small basis (d = 16), a private cache.  Independent references: the closed-form
memorized denoiser, numpy distance ratios and counts recomputed from the returned samples, a direct
reconstruction of the training set, the weight files read back; reproducibility from the seed; bad input.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from memprior import diffusion, fwi, trained
from memprior.experiments import fwi as X

torch.set_num_threads(1)

# the 16 x 16 grid of tests/test_experiments_fwi.py: K = 4, d = 16
CFG = fwi.FWIConfig(grid=16, npml=6, freq=1.2, n_src=3, n_rec=8, K=4, sizes=(12, 30), n_samples=4, n_steps=20)
TINY = dict(hidden=16, depth=1, steps=40)


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMPRIOR_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def exp():
    return X.FWIExperiment(CFG, show_progress=False)


def _tiny(N, **kw):
    return trained.train_prior(N, config=CFG, shipped=False, cache=False, show_progress=False, **{**TINY, **kw})


def _ratios(samples, train, k):
    """d1/d2 and d1/mean(d2..dk) in numpy."""
    d = np.sort(np.linalg.norm(samples[:, None, :] - train[None, :, :], axis=2), axis=1)
    return d[:, 0] / d[:, 1], d[:, 0] / d[:, 1:k].mean(1)


# ----------------------------------------------------------------------------- the prior
def test_training_data_is_the_experiments_training_set(exp):
    for N in (5, 12, 30):
        ts, ref = trained.training_data(N, CFG), exp.training_set(N)
        assert torch.equal(ts.u, ref.u) and torch.equal(ts.z, ref.z)
        assert torch.allclose(ts.u.mean(0), torch.zeros(16, dtype=ts.u.dtype), atol=1e-12)
        assert torch.allclose(ts.u.std(0), torch.ones(16, dtype=ts.u.dtype), atol=1e-12)
    big = trained.training_data(40, CFG)       # beyond the pool of max(sizes) = 30: a larger pool, same prefix
    assert torch.allclose(big.z[:30], exp.training_set(30).z, rtol=0, atol=1e-10)


def test_prior_attributes():
    p = _tiny(6)
    assert isinstance(p.denoiser, diffusion.MLPDenoiser) and isinstance(p.schedule, diffusion.Schedule)
    assert p.schedule.n_steps == 200 and p.n_train == 6 and p.dim == 16
    assert math.isclose(float(p.schedule.betas[0]), 1e-4) and math.isclose(float(p.schedule.betas[-1]), 0.02)
    assert torch.allclose(p.to_z(p.x_train), p.z_train) and torch.allclose(p.to_u(p.z_train), p.x_train)
    # the stored weights are float16 numbers; the network is frozen
    for v in p.denoiser.parameters():
        assert torch.equal(v, v.half().float()) and not v.requires_grad
    x = torch.randn(3, 16, dtype=torch.float64)
    x0, e = p.denoiser.denoise(x, 50), p.denoiser.eps(x, 50)
    ab = float(p.schedule.alpha_bar[50])
    assert torch.allclose(x, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * e, atol=1e-5)
    with pytest.raises(Exception):
        p.seed = 3                                          # frozen


def test_small_N_denoiser_matches_the_closed_form():
    """At N = 5 a trained network is the empirical optimum: ||x0_net - x0_cf|| (RMS per coordinate, z-scored units)
    is within 0.01 + sigma_t / 4 at every level, on inputs noised from the training models; an untrained one is not."""
    p = _tiny(5, hidden=64, depth=2, steps=2000)
    bad = _tiny(5, hidden=64, depth=2, steps=1)
    cf = diffusion.MemorizedDenoiser(p.x_train, p.schedule)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(5, (256,), generator=g)
    eps = torch.randn(256, 16, generator=g, dtype=torch.float64)
    worst_bad = 0.0
    for t in diffusion.timesteps(p.schedule, 10):
        xt = p.schedule.q_sample(p.x_train[idx], t, eps=eps)
        ref = cf.denoise(xt, t)
        tol = 0.01 + 0.25 * p.schedule.sigma(t)
        err = float((p.denoiser.denoise(xt, t) - ref).pow(2).mean().sqrt())
        assert err <= tol, (t, err, tol)
        worst_bad = max(worst_bad, float((bad.denoiser.denoise(xt, t) - ref).pow(2).mean().sqrt()) / tol)
    assert worst_bad > 1.0


def test_reproducible_bit_for_bit():
    a, b, c = _tiny(7), _tiny(7), _tiny(7, seed=1)
    sa, sb, sc = (p.denoiser.state_dict() for p in (a, b, c))
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if k.endswith("weight"))
    assert a.key == b.key != c.key
    for sampler in trained.SAMPLERS:
        assert torch.equal(a.sample(8, seed=3, sampler=sampler), b.sample(8, seed=3, sampler=sampler))
    assert not torch.equal(a.sample(8, seed=3, sampler="ddpm"), a.sample(8, seed=3, sampler="ddim"))


def test_cache_gives_the_same_network(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPRIOR_CACHE", str(tmp_path))
    trained._MEMO.clear()                     # train_prior keeps the priors of this session in memory
    a = trained.train_prior(6, config=CFG, shipped=False, cache=True, show_progress=False, **TINY)
    trained._MEMO.clear()
    b = trained.train_prior(6, config=CFG, shipped=False, cache=True, show_progress=False, **TINY)
    assert (a.source, b.source) == ("trained", "cache") and math.isnan(b.train_seconds)
    assert 0 < a.train_cpu_seconds < 10 * a.train_seconds
    sa, sb = a.denoiser.state_dict(), b.denoiser.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_shipped_weights_round_trip(tmp_path):
    """The documented command writes the weights; train_prior then loads exactly the network training gives."""
    out = tmp_path / "priors"
    cmd = [sys.executable, "-m", "memprior.trained", "--write", str(out), "--sizes", "5", "9", "--widths", "16",
           "--depth", "1", "--steps", "40", "--jobs", "2"]
    env = {**os.environ, "MEMPRIOR_CACHE": str(tmp_path / "cache2"), "MEMPRIOR_QUIET": "1"}
    # the command uses the default configuration (d = 100): compare with the same
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    files = sorted(out.glob("prior-*.pt"))
    assert [f.name.split("-")[1] for f in files] == ["N5", "N9"]
    for N in (5, 9):
        loaded = trained.train_prior(N, directory=out, cache=False, show_progress=False, **TINY)
        fresh = trained.train_prior(N, shipped=False, cache=False, show_progress=False, **TINY)
        assert loaded.source == "shipped" and fresh.source == "trained"
        sl, sf = loaded.denoiser.state_dict(), fresh.denoiser.state_dict()
        assert sl.keys() == sf.keys() and all(torch.equal(sl[k], sf[k]) for k in sl)
        assert loaded.train_seconds > 0 and loaded.train_cpu_seconds > 0
        assert loaded.history["loss"] == pytest.approx(fresh.history["loss"])
    # float16 parameters: about 2 bytes each
    n_par = sum(p.numel() for p in loaded.denoiser.parameters())
    assert 2 * n_par < files[0].stat().st_size < 2 * n_par + 20_000
    # a second run trains nothing; other settings miss the files
    r = subprocess.run(cmd[:-2], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "(0 trained)" in r.stdout, r.stdout
    assert trained.train_prior(5, directory=out, cache=False, show_progress=False,
                               **{**TINY, "steps": 41}).source == "trained"


def test_shipped_weights_are_complete_and_current():
    """Every network the book uses is shipped under the key the current code computes (else the book would train
    them: about 20 CPU minutes), and nothing else is shipped."""
    specs = trained.shipped_specs()
    assert {(s["n_train"], s["hidden"]) for s in specs} == {(n, w) for n in trained.SIZES for w in trained.WIDTHS}
    assert {50, 200, 1000} <= set(trained.SIZES) and trained.DEFAULTS["hidden"] in trained.WIDTHS
    paths = [trained.weights_path(**s) for s in specs]
    missing = [p.name for p in paths if not p.exists()]
    assert not missing, "run `python -m memprior.trained --write --jobs 2`; missing: " + ", ".join(missing)
    assert sorted(p.name for p in trained.weights_dir().glob("*.pt")) == sorted(p.name for p in paths)
    p = trained.train_prior(50, cache=False, show_progress=False)
    assert p.source == "shipped" and p.settings["hidden"] == 256 and 0 < p.train_cpu_seconds <= 90
    with pytest.raises(TypeError, match="settings"):
        trained.weights_path(50, width=3)


@pytest.mark.parametrize("kw, name, err", [
    (dict(n_train=1), "n_train", ValueError),
    (dict(n_train=5, hidden=0), "hidden", ValueError),
    (dict(n_train=5, steps=0), "steps", ValueError),
    (dict(n_train=5, lr=-1.0), "lr", ValueError),
    (dict(n_train=5, ema_decay=1.0), "ema_decay", ValueError),
    (dict(n_train=5, seed=-1), "seed", ValueError),
    (dict(n_train=5, device="no-such-device"), "device", ValueError),
    (dict(n_train=5, config="small"), "config", TypeError),
    (dict(n_train=2.5), "n_train", TypeError),
])
def test_train_prior_bad_input(kw, name, err):
    with pytest.raises(err, match=name):
        trained.train_prior(**kw, shipped=False, cache=False, show_progress=False)


def test_save_and_write_bad_input(tmp_path):
    with pytest.raises(TypeError, match="prior"):
        trained.save_prior("not a prior", tmp_path)
    with pytest.raises(ValueError, match="jobs"):
        trained.write_weights(tmp_path, [dict(n_train=5)], jobs=0)
    with pytest.raises(TypeError, match="specs"):
        trained.write_weights(tmp_path, [5])
    with pytest.raises(ValueError, match="init"):
        _tiny(5).sample(4, init="uniform")
    with pytest.raises(ValueError, match="sampler"):
        _tiny(5).sample(4, sampler="euler")


# ----------------------------------------------------------------------------- the transition experiments
@pytest.fixture(scope="module")
def transition(exp):
    return X.memorization_transition(exp, sizes=(5, 12), n_samples=64, n_fresh=48, n_boot=200, **TINY)


def test_transition_fractions_match_numpy(exp, transition):
    m = transition
    fresh = exp.fresh_models(48).numpy()
    for i, N in enumerate((5, 12)):
        train = trained.training_data(N, CFG).z.numpy()
        q, r = _ratios(m.samples[i], train, min(50, N))
        assert np.allclose(m.q[i], q) and np.allclose(m.r[i], r)
        assert m.frac_q[i] == np.mean(q < 1 / 3) and m.frac_r[i] == np.mean(r < 0.7)
        nq, nr = _ratios(fresh, train, min(50, N))
        assert m.null_frac_q[i] == np.count_nonzero(nq < 1 / 3) / 48
        assert m.null_frac_r[i] == np.count_nonzero(nr < 0.7) / 48
        assert m.median_q[i] == pytest.approx(np.median(q), rel=1e-12)
        for name in ("frac_q", "frac_r", "null_frac_q", "null_frac_r"):
            v, lo, hi = (getattr(m, name + s)[i] for s in ("", "_lo", "_hi"))
            assert 0 <= lo <= v <= hi <= 1
        # the samples are the prior's own
        p = _tiny(N)
        assert np.allclose(m.samples[i], p.to_z(p.sample(64)).numpy())
    assert m.get("frac_q", 12) == m.frac_q[1] and m.crossing("frac_q", 2.0) == 5 and m.crossing("frac_q", 0.0) is None
    assert [row["N"] for row in m.rows()] == [5, 12] and m.settings["steps"] == 40


def test_bootstrap_interval_is_a_binomial_interval():
    """With many samples the percentile bootstrap of a fraction agrees with the normal binomial interval."""
    flags = (np.arange(2000) % 10 < 3).astype(float)          # p = 0.3 exactly
    lo, hi = X._bootstrap_interval(flags, 4000, 0.95, 0)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 2000)
    assert lo == pytest.approx(0.3 - half, abs=0.004) and hi == pytest.approx(0.3 + half, abs=0.004)


def test_transition_is_seeded(exp, transition):
    again = X.memorization_transition(exp, sizes=(5, 12), n_samples=64, n_fresh=48, n_boot=200, **TINY)
    assert np.array_equal(again.frac_q_lo, transition.frac_q_lo) and np.array_equal(again.samples[1],
                                                                                     transition.samples[1])
    other = X.memorization_transition(exp, sizes=(5, 12), n_samples=64, n_fresh=48, n_boot=200, seed=1, **TINY)
    assert not np.array_equal(other.samples[0], transition.samples[0])


def test_denoiser_gap(exp):
    gap = X.denoiser_gap(exp, sizes=(5, 12), levels=(0, 100, 199), n=32, **TINY)
    assert gap.rmse_train.shape == (2, 3) and list(gap.t) == [0, 100, 199]
    assert np.allclose(gap.sigma, [diffusion.Schedule.linear(200).sigma(t) for t in (0, 100, 199)])
    # at the cleanest level (sigma_0 = 0.01) the network returns x_t up to O(sigma_0): on a training model so does the
    # closed form; on a fresh model the closed form returns the nearest training model instead
    assert (gap.rmse_train[:, 0] < 0.05).all()
    for i, N in enumerate((5, 12)):
        u = trained.training_data(N, CFG)
        uf = (exp.fresh_models(32, seed=20_000) - u.mu) / u.s
        gap_nn = float(torch.cdist(uf, u.u).min(1).values.pow(2).mean().div(16).sqrt())
        assert gap.rmse_fresh[i, 0] == pytest.approx(gap_nn, abs=0.05)
    assert ((gap.weight_train > 0) & (gap.weight_train <= 1 + 1e-12)).all()
    # an independent recomputation at one level
    p = _tiny(12)
    cf = diffusion.MemorizedDenoiser(p.x_train, p.schedule)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn((32, 16), generator=g, dtype=torch.float64)
    pick = torch.randint(1 << 30, (32,), generator=g)
    xt = p.schedule.q_sample(p.x_train[pick % 12], 100, eps=eps)
    ref = float((p.denoiser.denoise(xt, 100) - cf.denoise(xt, 100)).pow(2).mean().sqrt())
    assert gap.rmse_train[1, 1] == pytest.approx(ref, rel=1e-12)
    assert gap.follows("train", tol=1e9).all()
    with pytest.raises(ValueError, match="levels"):
        X.denoiser_gap(exp, sizes=(5,), levels=(200,), n=4, **TINY)
    with pytest.raises(ValueError, match="where"):
        gap.follows("test")


def test_phase_diagram(exp, transition):
    ph = X.memorization_phase(exp, sizes=(5, 12), widths=(8, 16), n_samples=64, n_fresh=48, n_boot=200,
                              depth=1, steps=40)
    assert ph.frac_q.shape == (2, 2) and list(ph.widths) == [8, 16]
    assert np.array_equal(ph.frac_q[1], transition.frac_q) and np.array_equal(ph.null_frac_q, transition.null_frac_q)
    for level in (0.0, 0.3, 0.6, 2.0):
        ref = [max([N for N, v in zip((5, 12), row) if v >= level], default=0) for row in ph.frac_q]
        assert list(ph.boundary("frac_q", level)) == ref


@pytest.mark.parametrize("kw, name", [
    (dict(sizes=()), "sizes"), (dict(sizes=(1,)), "sizes"), (dict(n_samples=0), "n_samples"),
    (dict(init="uniform"), "init"), (dict(sampler="euler"), "sampler"), (dict(level=1.0), "level"),
    (dict(n_boot=3), "n_boot"),
    (dict(n_fresh=0), "n_fresh"),
])
def test_transition_bad_input(exp, kw, name):
    with pytest.raises(ValueError, match=name):
        X.memorization_transition(exp, **{**dict(sizes=(5,), n_samples=4, n_fresh=4, **TINY), **kw})


def test_experiments_bad_input(exp):
    with pytest.raises(TypeError, match="exp"):
        X.memorization_transition("exp")
    with pytest.raises(ValueError, match="widths"):
        X.memorization_phase(exp, widths=())
    with pytest.raises(ValueError, match="^n:"):
        X.denoiser_gap(exp, n=0)

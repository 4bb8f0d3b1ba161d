"""Tests for memprior.fwi, the FWI problem of chapter 7 (configuration, likelihood, training sets, forward
map, sampler tools), on a small grid.  The experiment built on it is tested in test_experiments_fwi.py."""
import math

import numpy as np

import pytest
import torch

from memprior import fwi, metrics
from memprior import velocity as V
from memprior.diffusion import MemorizedDenoiser, Schedule, TrajectoryRecorder, ddim_sample
from memprior.experiments.fwi import FWIExperiment

torch.set_num_threads(1)

# 16 x 16 grid, 1.2 Hz: ~9.7 points per wavelength at 1.45 km/s; d = 16
SMALL = dict(grid=16, npml=6, freq=1.2, n_src=3, n_rec=8, K=4, sizes=(12, 30), n_samples=4, n_steps=20)


@pytest.fixture(scope="module")
def exp():
    return FWIExperiment(fwi.FWIConfig(**SMALL), show_progress=False)


@pytest.fixture(scope="module")
def obs(exp):
    return exp.observe(exp.truth("lens"))


# ----------------------------------------------------------------------------- config and bad input
def test_config_validation():
    c = fwi.FWIConfig(**SMALL)
    assert math.isclose(c.dx, 2.0 / 16) and c.d == 16
    with pytest.raises(ValueError, match="noise"):
        fwi.FWIConfig(**{**SMALL, "noise": 0.0})
    with pytest.raises(ValueError, match="noise"):
        fwi.FWIConfig(**{**SMALL, "noise": -0.05})
    with pytest.raises(ValueError, match="mismatch"):
        fwi.FWIConfig(**{**SMALL, "K": 16})
    with pytest.raises(ValueError, match="sizes"):
        fwi.FWIConfig(**{**SMALL, "sizes": (1, 30)})
    with pytest.raises(ValueError, match="npml"):
        fwi.FWIConfig(**{**SMALL, "npml": 2})
    with pytest.raises(ValueError, match=r"grid: must be an integer in \[8, "):  # grid points per side
        fwi.FWIConfig(**{**SMALL, "grid": 4})
    with pytest.raises(ValueError, match="grid"):
        fwi.FWIConfig.paper(grid=100)
    p = fwi.FWIConfig.paper()
    assert (p.grid, p.npml, p.freq, p.n_src, p.n_rec, p.n_steps) == (64, 10, 4.0, 50, 200, 200)
    assert math.isclose(p.dx, 2.0 / 64)
    p2 = fwi.FWIConfig.paper(200)
    assert (p2.grid, p2.npml, p2.freq, p2.n_src, p2.n_rec) == (200, 30, 6.0, 15, 196)
    assert math.isclose(p2.dx, 0.01)
    with pytest.raises(TypeError, match="config"):
        FWIExperiment(config=dict(SMALL))


def test_paper_protocol_fields():
    """FWIConfig.paper() carries the paper code's DPS protocol (SCIENCE.md section 9); the book's default differs."""
    for p in (fwi.FWIConfig.paper(64), fwi.FWIConfig.paper(200)):
        assert p.dps_start == "background"            # the FWI script: z = 0 noised to step T
        assert p.noise_ref == "max"                   # sigma_d = noise_rel * max|d|
        assert p.nll_factor == 0.5                    # 1/2 sum |r|^2 / sigma_d^2
        assert (p.lens_v0, p.lens_v0 + p.lens_dv) == (2.0, 1.5)
        assert p.lens_width == (0.25, 0.15)           # sigma_x, sigma_z in km
        assert p.sizes == (50, 200, 1000) and p.n_steps == 200 and p.extent == 2.0
    assert (fwi.FWIConfig.paper(64).n_src, fwi.FWIConfig.paper(64).n_rec) == (50, 200)
    assert fwi.FWIConfig.paper(200).noise == 0.055 and fwi.FWIConfig.paper(64).noise == 0.05
    b = fwi.FWIConfig()
    assert (b.dps_start, b.noise_ref, b.nll_factor, b.lens_dv, b.lens_width) == ("noise", "rms", 1.0, -0.4, None)
    for bad, match in (({"noise_ref": "peak"}, "noise_ref"), ({"dps_start": "zero"}, "dps_start"),
                       ({"nll_factor": 0.0}, "nll_factor"), ({"lens_dv": -2.0}, "lens_dv"),
                       ({"lens_width": (0.2,)}, "lens_width"), ({"lens_width": (0.2, -0.1)}, "lens_width")):
        with pytest.raises(ValueError, match=match):
            fwi.FWIConfig(**{**SMALL, **bad})


def test_metrics_need_two_training_models(exp):
    with pytest.raises(ValueError, match="N"):
        exp.training_set(1)
    with pytest.raises(ValueError, match="N >= 2"):
        fwi.zscore(torch.zeros(1, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.nn_ratio(torch.zeros(3, 16), torch.zeros(1, 16))
    with pytest.raises(ValueError, match="N"):
        exp.memorization(torch.zeros(3, 16), 1, torch.zeros(3, 16))
    with pytest.raises(ValueError, match="N"):
        fwi.make_training_set(exp.basis, 1)


def test_basis_grid_mismatch(exp):
    wrong = V.KLBasis(20, 20, K=4)
    with pytest.raises(ValueError, match="mismatch"):
        fwi.KLForward(exp.solver, exp.acq, exp.cfg.freq, wrong)
    with pytest.raises(ValueError, match="mismatch"):
        exp.basis.project(torch.full((20, 20), 0.25, dtype=torch.float64))
    fwd = exp.forward(12)
    with pytest.raises(ValueError, match="u"):
        fwd(torch.zeros(2, 15, dtype=torch.float64))


def test_noise_must_be_positive(exp):
    t = exp.truth("lens")
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="noise"):
            exp.observe(t, noise=bad)
    with pytest.raises(ValueError, match="sigma_d"):
        fwi.complex_noise((3,), 0.0)
    with pytest.raises(ValueError, match="sigma_d"):
        fwi.complex_nll(torch.zeros(3), torch.zeros(3), -1.0)
    with pytest.raises(ValueError, match="kind"):
        exp.truth("marmousi")
    with pytest.raises(ValueError, match="method"):
        exp.sample("langevin", 12, exp.observe(t))


# ----------------------------------------------------------------------------- likelihood identities
def test_complex_likelihood_matches_real_stacked_gaussian():
    g = torch.Generator().manual_seed(0)
    d = torch.complex(torch.randn(3, 5, generator=g, dtype=torch.float64),
                      torch.randn(3, 5, generator=g, dtype=torch.float64))
    p = torch.complex(torch.randn(2, 3, 5, generator=g, dtype=torch.float64),
                      torch.randn(2, 3, 5, generator=g, dtype=torch.float64))
    s = 0.3
    nll = fwi.complex_nll(p, d, s)
    ref = ((d - p).abs() ** 2).sum((1, 2)) / s ** 2
    assert torch.allclose(nll, ref)
    gam = fwi.gamma_of(s)
    y, F = fwi.to_real(d), fwi.to_real(p)
    assert torch.allclose(nll, ((y - F) ** 2).sum(1) / (2 * gam ** 2))
    assert torch.equal(fwi.to_complex(y, 3, 5), d)


def test_complex_noise_statistics():
    e = fwi.complex_noise((200_000,), 0.5, torch.Generator().manual_seed(1))
    assert e.dtype == torch.complex128
    assert abs(float((e.abs() ** 2).mean()) / 0.25 - 1) < 0.01           # E|e|^2 = sigma_d^2
    assert abs(float(e.real.var()) / 0.125 - 1) < 0.01                  # each part sigma_d^2 / 2
    assert abs(float((e.real * e.imag).mean())) < 0.002                  # independent parts
    assert abs(float((e * e).mean().abs())) < 0.003                      # circular: E[e^2] = 0


def test_observation_noise_level(exp):
    t = exp.truth("lens")
    o = exp.observe(t, noise=0.05, seed=3)
    rms = float(o.d_clean.abs().pow(2).mean().sqrt())
    assert math.isclose(o.sigma_d, 0.05 * rms, rel_tol=1e-12)
    assert math.isclose(o.gamma, o.sigma_d / math.sqrt(2), rel_tol=1e-12)
    # same seed, other level: the same standard-normal draw, rescaled
    o2 = exp.observe(t, noise=0.10, seed=3)
    assert torch.allclose(o2.d_obs - o2.d_clean, 2 * (o.d_obs - o.d_clean))
    # nll of the truth is a sum of n_data Exp(1) variables: mean n_data, sd sqrt(n_data)
    assert abs(o.nll_truth - o.n_data) < 5 * math.sqrt(o.n_data)


# ----------------------------------------------------------------------------- training sets and truths
def test_training_sets_nested_seeded_and_zscored(exp):
    a, b = exp.training_set(12), exp.training_set(30)
    assert torch.equal(a.z, b.z[:12])
    assert torch.allclose(a.u.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(a.u.std(0), torch.ones(16, dtype=torch.float64))
    assert torch.allclose(a.to_z(a.u), a.z)
    other = FWIExperiment(fwi.FWIConfig(**SMALL), show_progress=False)
    assert torch.equal(other.pool_z, exp.pool_z)
    # the models are their own KL reconstructions (projection is idempotent), positive squared slowness
    assert torch.allclose(exp.basis.project(b.m), b.z, atol=1e-10)
    assert bool((b.m > 0).all())
    fresh = exp.fresh_models(5)
    assert fresh.shape == (5, 16)
    assert float(torch.cdist(fresh, b.z).min()) > 1e-3
    with pytest.raises(ValueError, match="seed"):
        exp.fresh_models(5, seed=exp.cfg.seed)


def test_truths_not_in_training_set(exp):
    ts = exp.training_set(30)
    for kind in ("lens", "ood"):
        t = exp.truth(kind)
        assert t.v.shape == (16, 16)
        d = torch.cdist(t.z[None], ts.z)
        assert float(d.min()) > 1e-2
    lens = exp.truth("lens")
    assert math.isclose(float(lens.v.max()), 2.0, abs_tol=1e-3) and float(lens.v.min()) < 1.7
    ood = exp.truth("ood")
    assert math.isclose(float(ood.v.min()), 1.7) and math.isclose(float(ood.v.max()), 2.7)


# ----------------------------------------------------------------------------- forward map
def test_forward_cache_and_fresh_solves_agree(exp):
    N = 12
    ts = exp.training_set(N)
    fwd = exp.forward(N)
    calls = fwd.n_calls
    cached = fwd(ts.u[:3])
    assert fwd.n_calls == calls  # all hits
    nocache = fwi.KLForward(exp.solver, exp.acq, exp.cfg.freq, exp.basis, ts.mu, ts.s)
    fresh = nocache(ts.u[:3])
    assert torch.allclose(cached, fresh, rtol=1e-10, atol=1e-14)
    # data_dim: the length of a real-stacked datum, [Re d, Im d] of the n_src x n_rec complex data
    assert fresh.shape == (3, fwd.data_dim) and fwd.data_dim == 2 * exp.cfg.n_src * exp.cfg.n_rec
    assert fwd.data_dim == 2 * exp.observe(exp.truth("lens")).n_data
    with pytest.raises(ValueError, match=rf"cache: expected \(\[N, {fwd.dim}\], \[N, {fwd.data_dim}\]\)"):
        fwi.KLForward(exp.solver, exp.acq, exp.cfg.freq, exp.basis, ts.mu, ts.s, cache=(ts.u[:2], fresh[:2, :-1]))


def test_forward_gradient_and_jacobian(exp, obs):
    N = 12
    fwd = exp.forward(N)
    u0 = exp.training_set(N).u[:2].clone()
    # Jacobian columns against central differences
    J = fwd.jacobian(u0)  # [2, 2M, d]
    h = 1e-4
    for a in (0, 7, 15):
        e = torch.zeros_like(u0)
        e[:, a] = h
        fd = (fwd(u0 + e) - fwd(u0 - e)) / (2 * h)
        assert torch.allclose(J[:, :, a], fd, rtol=1e-5, atol=1e-7 * float(fd.abs().max()))
    # autograd (adjoint state) against the Jacobian: grad of <v, F(u)> = J^T v
    v = torch.randn(2, fwd.data_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u = u0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((fwd(u) * v).sum(), u)
    assert torch.allclose(g, torch.einsum("bmd,bm->bd", J, v), rtol=1e-8, atol=1e-10 * float(g.abs().max()))


# ----------------------------------------------------------------------------- sampler tools
def test_commitment_steps_and_curves_on_a_recorded_trajectory():
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sch = Schedule.linear(30)
    den = MemorizedDenoiser(x, sch)
    rec = TrajectoryRecorder()  # a sampler callback, as the experiment records its DPS runs
    out = ddim_sample(den, sch, 5, generator=torch.Generator().manual_seed(1), callback=rec)
    tr = rec.trajectory()
    assert tr["t"].tolist() == list(range(29, -1, -1)) and tr["x"].shape == (30, 5, 3)
    # samples of the memorized denoiser are training points
    assert float(torch.cdist(out, x).min(1).values.max()) < 1e-8
    steps = fwi.commitment_steps(den, tr)
    curves = fwi.commitment_curves(den, tr)  # [S, n], levels noisiest first
    assert curves.shape == (30, 5)
    # the definition: from the commitment level down, the final point's weight stays above 0.9; one level
    # earlier it did not
    for j, c in enumerate(steps.tolist()):
        assert c >= 0
        assert bool((curves[29 - c:, j] > 0.9).all())
        if c < 29:
            assert float(curves[29 - c - 1, j]) <= 0.9


def test_schedule_keeps_paper_terminal_level():
    paper = Schedule.linear(200)
    for T in (50, 100, 200):
        s = fwi.schedule_for(T)
        assert s.n_steps == T
        assert abs(float(s.alpha_bar[-1]) / float(paper.alpha_bar[-1]) - 1) < 0.05


def test_commitment_curves_consistent_with_steps(exp, obs):
    r = exp.sample("dps_normalized", 12, obs, n=3, seed=4)
    den = exp.denoiser(12)
    w = fwi.commitment_curves(den, r.trajectory)
    assert w.shape == (exp.schedule.n_steps, 3)
    assert bool(((w >= 0) & (w <= 1)).all())
    ts = r.trajectory["t"]
    for j in range(3):
        if int(r.commit[j]) >= 0:
            i = int(torch.nonzero(ts == r.commit[j])[0])
            assert bool((w[i:, j] > 0.9).all())   # committed from that level on
            if i > 0:
                assert float(w[i - 1, j]) <= 0.9
    assert r.n_factorizations <= r.n_solver_calls
    with pytest.raises(TypeError, match="denoiser"):
        fwi.commitment_curves(object(), r.trajectory)


def test_figures_draw_models_misfits_and_ratios_and_the_app_runs(exp, obs):
    from memprior.plots import fwi as pf
    from memprior.widgets import fwi as wf
    ts = exp.training_set(12)
    v = [1 / np.sqrt(ts.m[k].numpy()) for k in (0, 1)]  # km/s from squared slowness in s²/km²
    fig = pf.fig_models([("a", v[0]), ("b", v[1])], exp.cfg.dx, cols=2)
    assert len(fig.data) == 2
    for tr, vk in zip(fig.data, v):  # heatmap rows are depths; nodes at i dx km
        np.testing.assert_allclose(np.asarray(tr.z, dtype=float), vk.T, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(tr.x, dtype=float), exp.cfg.dx * np.arange(16), rtol=1e-6)
    assert fig.layout.coloraxis.cmin == pytest.approx(min(a.min() for a in v))  # one shared colour scale
    assert fig.layout.coloraxis.cmax == pytest.approx(max(a.max() for a in v))
    with pytest.raises(ValueError, match="panels"):
        pf.fig_models([], 0.1)
    lk = exp.lookup(12, obs)
    # the lookup's misfits from fresh wave solves of two training models: sum |d_obs - F(m)|^2 / sigma_d^2
    for k in (0, 5):
        d = exp.solver.forward(ts.m[k].numpy(), exp.cfg.freq, exp.acq)
        assert float(lk.nll[k]) == pytest.approx(np.sum(np.abs(obs.d_obs.numpy() - d) ** 2) / obs.sigma_d ** 2,
                                                  rel=1e-8)
    w = np.exp(-(lk.nll.numpy() - lk.nll.numpy().min()))  # complex Gaussian noise: weights ∝ exp(-nll)
    w /= w.sum()
    assert lk.exp_H == pytest.approx(np.exp(-np.sum(w[w > 0] * np.log(w[w > 0]))), rel=1e-9)
    mem = exp.memorization(ts.z[:3], 12, exp.fresh_models(10))
    tw = pf.twin_sizes({12: {"nll_per_datum": lk.nll / obs.n_data, "r": mem["r"], "null_r": mem["null_r"],
                             "exp_h": lk.exp_H}})
    assert len(tw.frames) == 1
    fr = tw.frames[0].data
    np.testing.assert_allclose(np.asarray(fr[0].y, dtype=float), np.sort(lk.nll.numpy()) / obs.n_data, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fr[0].x, dtype=float), np.arange(1, 13))
    for tr, vals in zip(fr[2:4], (mem["r"], mem["null_r"])):  # histograms: fraction per bin of width 0.04
        vals = np.asarray(vals, dtype=float)
        h, _ = np.histogram(vals, bins=np.linspace(0, 1, 26))
        np.testing.assert_allclose(np.asarray(tr.y, dtype=float), h / vals.size, rtol=1e-6, atol=1e-7)
    assert f"exp(H) = {lk.exp_H:.3f}" in tw.frames[0].layout.title.text
    html = pf.html_table([{"a": 1.23456, "b": "x<y"}]).data
    assert "1.23" in html and "x&lt;y" in html
    state = wf.AppState(exp, exp.truth("lens"), n=2, steps=3)
    app = wf.fwi_app(state, sizes=(12, 30), noises=(0.05, 0.1), step_sizes=(0.05,))
    assert "N = 30" in app.figure.layout.title.text  # initial setting: the second size and noise
    app.update(N=12, noise=0.05)
    assert "N = 12" in app.figure.layout.title.text
    assert len(state.runs) == 2  # two settings visited, each run once
    with pytest.raises(ValueError, match="sizes"):
        wf.fwi_app(state, sizes=(1000,))

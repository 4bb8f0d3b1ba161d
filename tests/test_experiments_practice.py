"""Tests for memprior.experiments.practice: the chapter's pipeline, its claims, and independent references."""
import math

import numpy as np
import pytest
import torch

from memprior import diffusion as dif
from memprior import practice as prac
from memprior.experiments import practice as P

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def chapter():
    """The chapter's pipeline at the chapter's settings (trained networks come from the disk cache)."""
    bed = P.toy_problem()
    priors = P.train_priors(bed)
    det = P.detect(bed, priors)
    gap = P.loss_gap(bed, priors)
    mit = P.mitigations(bed, priors, det, best_step=gap.best)
    return dict(bed=bed, priors=priors, det=det, gap=gap, mit=mit)


# ----------------------------------------------------------------------------- the toy problem
def test_toy_problem_reference_is_the_gaussian_conjugate():
    bed = P.toy_problem(y=0.7, gamma=0.5, n_reference=20000, seed=3)
    a, g2 = bed.a, bed.gamma ** 2
    cov = np.linalg.inv(np.eye(2) + np.outer(a, a) / g2)
    assert np.allclose(bed.ref_cov, cov, atol=1e-12)
    assert np.allclose(bed.ref_mean, cov @ a * bed.y / g2, atol=1e-12)
    # the samples: mean within 5 standard errors, covariance within Monte Carlo error
    se = np.sqrt(np.diag(cov) / 20000)
    assert np.all(np.abs(bed.reference.mean(0) - bed.ref_mean) < 5 * se)
    assert np.allclose(np.cov(bed.reference.T), cov, atol=0.03)
    # the null direction x1 - x2 keeps the prior's unit standard deviation; the datum's direction shrinks
    assert bed.ref_sd_null == pytest.approx(1.0, abs=1e-12)
    u = np.array([1.0, 1.0]) / math.sqrt(2)
    assert u @ bed.ref_cov @ u == pytest.approx(g2 / (g2 + 2), rel=1e-12)
    # the reference sampler for another datum: mean Sigma a y / gamma^2
    z = bed.reference_sampler(-1.0, 20000, torch.Generator().manual_seed(0)).numpy()
    assert np.all(np.abs(z.mean(0) - cov @ a * (-1.0) / g2) < 5 * se)


def test_toy_problem_lookup_weights_and_spacing_by_brute_force():
    bed = P.toy_problem()
    ll = -(bed.y - bed.x_small @ bed.a) ** 2 / (2 * bed.gamma ** 2)
    w = np.exp(ll - ll.max())
    assert np.allclose(bed.lookup_weights, w / w.sum(), atol=1e-12)
    d = np.linalg.norm(bed.x_small[:, None] - bed.x_small[None], axis=-1) + np.diag([np.inf] * 8)
    assert bed.spacing == pytest.approx(float(np.sort(d.min(1))[3]), rel=1e-12)   # the lower median
    assert bed.n_eff_lookup == pytest.approx(1 / np.sum(w ** 2 / w.sum() ** 2), rel=1e-12)
    # the chapter: the lookup posterior of the 8 examples is nearly one example
    assert bed.w_max > 0.9 and bed.n_eff_lookup < 1.2
    assert bed.x_small.shape == (8, 2) and bed.x_large.shape == (512, 2)
    assert bed.fresh.shape == (2000, 2) and bed.held_out.shape == (512, 2)
    assert np.allclose(bed.forward(torch.from_numpy(bed.x_small)).numpy()[:, 0], bed.x_small.sum(1))


def test_toy_problem_is_reproducible_and_seeded():
    a, b, c = P.toy_problem(), P.toy_problem(), P.toy_problem(seed=1)
    assert np.array_equal(a.x_small, b.x_small) and np.array_equal(a.reference, b.reference)
    assert not np.array_equal(a.x_small, c.x_small)


def test_toy_problem_rejects_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        P.toy_problem(gamma=0.0)
    with pytest.raises(ValueError, match="n_small"):
        P.toy_problem(n_small=1)
    with pytest.raises(TypeError, match="n_fresh"):
        P.toy_problem(n_fresh=10.5)
    with pytest.raises(ValueError, match="y"):
        P.toy_problem(y=float("nan"))


# ----------------------------------------------------------------------------- step 1: detect
def test_detect_table_is_the_memorization_report_of_the_samples(chapter):
    bed, det = chapter["bed"], chapter["det"]
    rows = det.table()
    assert [r["prior"] for r in rows] == ["N = 8, 1500 steps"] * 2 + ["N = 512, 800 steps"] * 2
    for i, (z, xt) in enumerate(((det.prior_mem, bed.x_small), (det.prior_gen, bed.x_large))):
        # the flagged fractions recomputed with numpy: d1/d2 from all pairwise distances
        for j, s in enumerate((z[:1000], bed.fresh)):
            d = np.sort(np.linalg.norm(s[:, None] - xt[None], axis=-1), axis=1)
            q = np.mean(d[:, 0] / d[:, 1] < 1 / 3)
            assert rows[2 * i + j]["d1/d2 < 1/3"] == pytest.approx(q, abs=1e-12)
            assert rows[2 * i + j]["median d1"] == pytest.approx(np.sort(d[:, 0])[(len(d) - 1) // 2], rel=1e-9)
            assert rows[2 * i + j]["n"] == len(s)


def test_detect_chapter_claims(chapter):
    det = chapter["det"]
    # the N = 8 prior is flagged far above its null; the N = 512 prior is within 3 standard errors of its null
    assert det.q_mem > det.q0_mem + 0.3
    assert abs(det.q_gen - det.q0_gen) < 3 * math.hypot(det.qse_gen, det.q0se_gen)
    # the paper's r < 0.7 flags nearly everything in d = 2, generated or fresh
    assert det.r_min > 0.99
    assert det.d1_mem < 0.5 * det.d10_mem
    assert det.prior_mem.shape == det.prior_gen.shape == (4000, 2)
    # standard errors are the binomial ones
    assert det.qse_gen == pytest.approx(math.sqrt(det.q_gen * (1 - det.q_gen) / 1000))


def test_detect_is_reproducible_and_validates(chapter):
    bed, priors = chapter["bed"], chapter["priors"]
    a = P.detect(bed, priors, n_samples=50, n_scored=40, ddim_steps=10)
    b = P.detect(bed, priors, n_samples=50, n_scored=40, ddim_steps=10)
    c = P.detect(bed, priors, n_samples=50, n_scored=40, ddim_steps=10, seed=6)
    assert np.array_equal(a.prior_mem, b.prior_mem) and a.table() == b.table()
    assert not np.array_equal(a.prior_mem, c.prior_mem)
    assert [r["n"] for r in a.table()] == [40, 2000, 40, 2000]
    with pytest.raises(ValueError, match="n_scored"):
        P.detect(bed, priors, n_samples=10, n_scored=20)
    with pytest.raises(TypeError, match="priors"):
        P.detect(bed, "net")
    with pytest.raises(TypeError, match="bed"):
        P.detect(None, priors)


def test_train_priors_settings_and_errors(chapter):
    priors = chapter["priors"]
    assert priors.snapshot_steps == (100, 200, 400, 800, 1500)
    assert sorted(priors.mem.snapshots) == list(priors.snapshot_steps)
    assert priors.schedule.n_steps == 200
    n_par = [sum(p.numel() for p in net.parameters()) for net in (priors.mem, priors.small)]
    assert n_par[1] < n_par[0] / 10
    with pytest.raises(ValueError, match="snapshot_steps"):
        P.train_priors(chapter["bed"], snapshot_steps=())
    with pytest.raises(ValueError, match="snapshot_steps"):
        P.train_priors(chapter["bed"], snapshot_steps=(0, 10))


# ----------------------------------------------------------------------------- step 1b: held-out loss
def test_mean_denoising_loss_matches_library_and_closed_form():
    bed = P.toy_problem()
    lin = dif.Schedule.linear(200, 1e-4, 0.02)
    den = dif.MemorizedDenoiser(torch.from_numpy(bed.x_small), lin)
    got = P.mean_denoising_loss(den, bed.x_small, lin, level_every=25, n=256, seed=4)
    want = dif.denoising_loss(den, torch.from_numpy(bed.x_small), lin, t=list(range(0, 200, 25)), n=256,
                              generator=torch.Generator().manual_seed(4)).mean()
    assert got == pytest.approx(float(want), rel=1e-12)
    # the exact memorized denoiser fits its training set better than fresh draws of the same distribution
    assert got < P.mean_denoising_loss(den, bed.held_out, lin, level_every=25, n=256, seed=4)
    with pytest.raises(ValueError, match="level_every"):
        P.mean_denoising_loss(den, bed.x_small, lin, level_every=0)
    with pytest.raises(ValueError, match="data"):
        P.mean_denoising_loss(den, bed.x_small[:, 0], lin)


def test_loss_gap_chapter_claims(chapter):
    gap = chapter["gap"]
    assert np.all(np.diff(gap.train) < 0)                        # the training loss keeps falling
    assert gap.best < gap.steps[-1] and gap.held_out[-1] > gap.held_out.min()   # the held-out loss turns up
    assert gap.best == gap.steps[np.argmin(gap.held_out)]
    assert gap.gap_mem == pytest.approx(gap.held_out[-1] - gap.train[-1])
    assert gap.gap_mem > 5 * abs(gap.gap_gen)


# ----------------------------------------------------------------------------- step 2: the posterior
def test_truncation_check_agrees_with_the_exact_mixture(chapter):
    bed, lin = chapter["bed"], chapter["priors"].schedule
    tr = P.truncation_check(bed, lin)
    assert tr.level == prac.level_for_sigma(lin, bed.spacing / 2)
    assert tr.sigma == pytest.approx(lin.sigma(tr.level)) and tr.sigma >= bed.spacing / 2
    assert tr.e_check < 2.5 * tr.e_floor
    assert 1 <= tr.ess <= 4000
    with pytest.raises(ValueError, match="sigma_min"):
        P.truncation_check(bed, lin, sigma_min=-1.0)


def test_posterior_checks_chapter_claims(chapter):
    post = P.posterior_checks(chapter["bed"], chapter["det"])
    assert post.mem.energy > 10 * post.gen.energy
    assert post.gen.energy < 3 * post.true.energy
    assert post.mem.on_training > 5 * post.mem.on_training_reference
    # a trained network is a blurred memorizer: its posterior is far from an exact lookup
    assert post.mem.tv_lookup > post.mem.tv_floor + 5 * post.mem.tv_se
    assert post.mem.ess < 200 < post.gen.ess
    assert post.mem.samples.shape == (1000, 2)
    # the same numbers as the library call it wraps
    bed, det = chapter["bed"], chapter["det"]
    c = prac.posterior_check(torch.from_numpy(det.prior_gen), torch.from_numpy(bed.x_large), bed.forward,
                             bed.y_obs, bed.gamma, torch.from_numpy(bed.reference),
                             generator=torch.Generator().manual_seed(6))
    assert c["energy"] == post.gen.energy and c["tv lookup"] == post.gen.tv_lookup


# ----------------------------------------------------------------------------- step 3: mitigations
def test_mitigations_chapter_claims(chapter):
    mit = chapter["mit"]
    T = {k: mit.at(k) for k in mit.keys}
    mitig = ("best", "early", "small", "s1", "s2")
    for k in mitig:   # every mitigation lowers the prior-side flag ...
        assert T[k].flagged < T["mem"].flagged - 3 * math.hypot(T[k].flagged_se, T["mem"].flagged_se)
    for k in mitig + ("data",):   # ... and moves the posterior off the training points
        assert T[k].on_training < T["mem"].on_training
    assert T["early"].on_training == min(T[k].on_training for k in mitig)
    assert T["s1"].on_training == max(T[k].on_training for k in mitig)
    assert T["early"].energy == min(T[k].energy for k in mitig)
    assert T["best"].energy == max(T[k].energy for k in mitig)
    # only more data brings the posterior near the reference; with N = 8 it stays far
    assert T["data"].energy < 2 * T["true"].energy
    assert min(T[k].energy for k in ("mem",) + mitig) > 5 * T["data"].energy
    # a prior score near its null does not certify the posterior: the smaller network
    assert T["small"].energy > 0.8 * T["mem"].energy
    assert mit.best_step == chapter["gap"].best and mit.early_step == 200
    assert mit.delta == chapter["bed"].spacing


def test_mitigations_rows_match_posterior_checks_and_validate(chapter):
    bed, det, mit = chapter["bed"], chapter["det"], chapter["mit"]
    post = P.posterior_checks(bed, det)
    assert mit.at("mem").energy == post.mem.energy and mit.at("data").energy == post.gen.energy
    assert mit.at("mem").flagged == det.q_mem and mit.at("data").null == det.q0_gen
    assert [r["prior"] for r in mit.rows()] == list(mit.names) and len(mit.table()) == 8
    panels = mit.panels(bed)
    assert panels["more data: N = 512"][0] is bed.x_large
    assert panels[mit.names[0]][1].shape == (800, 2) and panels[mit.names[0]][2].shape == (500, 2)
    with pytest.raises(ValueError, match="key"):
        mit.at("nope")
    with pytest.raises(ValueError, match="best_step"):
        P.mitigations(bed, chapter["priors"], det, best_step=123)


# ----------------------------------------------------------------------------- sliders
def test_training_snapshots_contract_onto_the_examples(chapter):
    snap = P.training_snapshots(chapter["bed"], chapter["priors"])
    assert snap.flagged[-1] > snap.flagged[0] + 0.3 and snap.on_training[-1] > snap.on_training[0] + 0.2
    assert snap.prior_samples.shape == (5, 600, 2) and snap.posterior_samples.shape == (5, 400, 2)
    # the last snapshot is the memorizing network: the same samples as detect's, same seed apart
    z = P.detect(chapter["bed"], chapter["priors"], n_samples=1500, seed=13).prior_mem
    assert np.array_equal(snap.prior_samples[-1], z[:600])


def test_datum_sweep_claims_and_independent_distance(chapter):
    bed, det, mit = chapter["bed"], chapter["det"], chapter["mit"]
    sw = P.datum_sweep(bed, det, mit)
    # at every datum, the N = 512 posterior is the closest to the reference, by a wide margin
    assert np.all(sw.distance[:, 2] < 0.5 * sw.distance[:, :2].min(1))
    assert sw.mem_min < sw.mem_max and sw.data_max == sw.distance[:, 2].max()
    # one entry recomputed by hand: importance resampling and the energy distance
    j = list(sw.y_values).index(1.5)
    ref = bed.reference_sampler(1.5, 300, torch.Generator().manual_seed(1)).numpy()
    p = sw.posterior_samples[j, 2]
    pair = lambda u, v: np.linalg.norm(u[:, None] - v[None], axis=-1).mean()  # noqa: E731
    e = math.sqrt(2 * pair(p, ref) - pair(p, p) - pair(ref, ref))
    assert sw.distance[j, 2] == pytest.approx(e, rel=1e-9)
    # posterior samples are prior samples, and they satisfy the datum on average (N = 512 prior)
    assert abs(float((p @ bed.a).mean()) - 1.5 * 2 / (2 + bed.gamma ** 2)) < 0.15
    assert set(map(tuple, sw.posterior_samples[j, 0])) <= set(map(tuple, sw.prior_samples[0]))
    assert list(sw.priors()) == list(sw.names)
    with pytest.raises(ValueError, match="y_values"):
        P.datum_sweep(bed, det, mit, y_values=())

"""Tests for memprior.experiments.sampling: chapter 5's samplers against the exact lookup weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from memprior import posterior
from memprior.diffusion import Schedule
from memprior.experiments import sampling as S

torch.set_num_threads(1)

CU, PE, SQ = S.PROBLEMS


def np_lookup_weights(forward, x_train, y, gamma):
    """Independent numpy re-derivation of softmax(-||y - F(x_n)||^2 / 2 gamma^2)."""
    r = np.asarray(y) - np.asarray(forward(torch.as_tensor(x_train)))
    logit = -(r ** 2).sum(1) / (2 * gamma ** 2)
    w = np.exp(logit - logit.max())
    return w / w.sum()


# ----------------------------------------------------------------------------- chapter-sized runs (shared)
@pytest.fixture(scope="module")
def exact():
    return S.exact_runs()


@pytest.fixture(scope="module")
def dps():
    return S.dps_sweep()


@pytest.fixture(scope="module")
def plugin():
    return S.plugin_runs()


@pytest.fixture(scope="module")
def paper():
    return S.paper_sweep()


@pytest.fixture(scope="module")
def smc():
    return S.smc_sweep()


# ----------------------------------------------------------------------------- problems and weights
def test_problems_are_the_stated_ones():
    p = S.toy_problems()
    assert tuple(p) == S.PROBLEMS
    assert p[CU].x_train[:, 0].tolist() == [-1.5, -0.4, 0.4, 1.2, 2.5]
    assert p[CU].gamma == 0.3 and float(p[CU].y) == 0.0
    assert p[PE].gamma == 0.3
    np.testing.assert_allclose(p[PE].x_train.norm(dim=1).numpy(), 2.0, rtol=1e-14)
    np.testing.assert_allclose(p[PE].x_true.numpy(), 0.7 * p[PE].x_train[0].numpy(), rtol=1e-14)
    assert p[SQ].x_train[:, 0].tolist() == [-1.0, 0.1, 1.3] and float(p[SQ].y) == 1.0 and p[SQ].gamma == 0.5
    x = torch.tensor([[-2.0], [0.5], [3.0]], dtype=torch.float64)
    assert torch.equal(S.square_forward(x), torch.tensor([[4.0], [0.25], [9.0]], dtype=torch.float64))
    assert S.square_forward(x).equal(S.square_forward(-x))  # F cannot tell x from -x


def test_lookup_weights_match_numpy_and_the_prose(exact):
    p = S.toy_problems()
    for k in S.PROBLEMS:
        np.testing.assert_allclose(exact.weights[k], np_lookup_weights(p[k].forward, p[k].x_train, p[k].y,
                                                                      p[k].gamma), rtol=1e-12, atol=1e-300)
    w1, w2, wj = exact.weights[CU], exact.weights[PE], exact.weights[SQ]
    assert abs(w1[1] - 0.5) < 1e-6 and abs(w1[2] - 0.5) < 1e-6 and 1 - w1[1] - w1[2] < 1e-6
    assert int(w2.argmax()) == 0 and 1 - w2.max() < 1e-3
    # square: w_n ~ exp(-(1 - x_n^2)^2 / (2 * 0.25)), by hand
    hand = np.exp(-np.array([0.0, 0.99 ** 2, 0.69 ** 2]) / 0.5)
    np.testing.assert_allclose(wj, hand / hand.sum(), rtol=1e-12)
    np.testing.assert_allclose(wj, [0.655, 0.0922, 0.2528], atol=6e-5)


def test_schedule_settings_and_terminal_alpha_bar():
    sch = Schedule.linear(200, 1e-4, 0.02)
    assert sch.n_steps == 200 and float(sch.betas[0]) == 1e-4 and abs(float(sch.betas[-1]) - 0.02) < 1e-15
    ab = np.prod(1 - np.linspace(1e-4, 0.02, 200))
    assert abs(sch.terminal_alpha_bar() - ab) < 1e-12
    assert 0.13 < ab < 0.14  # "not zero": the samplers start from the actual terminal marginal


# ----------------------------------------------------------------------------- the exact sampler
def test_exact_sampler_is_within_noise_of_the_lookup_weights(exact):
    p = S.toy_problems()
    for k in S.PROBLEMS:
        assert exact.n[k] == 600 and exact.seeds[k] == S.PROBLEMS.index(k)
        assert exact.tv[k] <= exact.floor[k] + 3 * exact.se[k] + 1e-9, k
        assert exact.chi2_p[k] > 1e-3, k
        assert exact.distances[k].shape == (600,) and exact.distances[k].max() == 0.0  # training points exactly
        # TV re-derived from the frequencies, which are counts over n
        f = exact.frequencies[k]
        assert abs(f.sum() - 1) < 1e-12 and np.allclose(f * 600, np.round(f * 600))
        assert abs(exact.tv[k] - 0.5 * np.abs(f - exact.weights[k]).sum()) < 1e-12
        # chi-square p re-derived with scipy where no cell is pooled (the square problem)
        if k == SQ:
            obs = np.round(f * 600)
            assert abs(exact.chi2_p[k] - stats.chisquare(obs, exact.weights[k] * 600).pvalue) < 1e-10
        assert p[k].x_train.shape[0] == f.shape[0]
    assert max(exact.tv.values()) < 0.05 and min(exact.chi2_p.values()) > 0.1


def test_noise_floor_matches_brute_force_monte_carlo(exact):
    # mean TV of multinomial(n, w) / n against w, by a direct numpy simulation
    rng = np.random.default_rng(0)
    for k in (CU, SQ):
        w = exact.weights[k] / exact.weights[k].sum()
        tv = 0.5 * np.abs(rng.multinomial(600, w, size=20_000) / 600 - w).sum(1)
        assert abs(exact.floor[k] - tv.mean()) < 4 * tv.std() / math.sqrt(200) + 1e-3, k


def test_runs_are_reproducible_and_seeded_per_problem():
    a = S.exact_runs(n_samples=200, seed=7, problems=(SQ,))
    b = S.exact_runs(n_samples=200, seed=7, problems=(SQ,))
    full = S.exact_runs(n_samples=200, seed=7)
    c = S.exact_runs(n_samples=200, seed=8, problems=(SQ,))
    assert a.problems == (SQ,) and a.seeds == {SQ: 9}
    assert a.tv == b.tv and np.array_equal(a.distances[SQ], b.distances[SQ])
    assert a.tv[SQ] == full.tv[SQ] and np.array_equal(a.frequencies[SQ], full.frequencies[SQ])
    assert not np.array_equal(a.frequencies[SQ], c.frequencies[SQ])
    with pytest.raises(ValueError):
        a.frequencies[SQ][0] = 1.0  # results are read-only


# ----------------------------------------------------------------------------- the Jensen gap
def np_noisy_likelihoods(x_train, y, gamma, ab, x):
    """Exact log p(y|x_t) and DPS's log p(y|E[x0|x_t]) for F(x) = x^2, re-derived with numpy."""
    xn = np.asarray(x_train)[:, 0]
    logit = -(x[:, None] - math.sqrt(ab) * xn[None]) ** 2 / (2 * (1 - ab))
    w = np.exp(logit - logit.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    c = -0.5 * math.log(2 * math.pi * gamma ** 2)
    lik = np.exp(c - (y - xn ** 2) ** 2 / (2 * gamma ** 2))
    return np.log(w @ lik), c - (y - (w @ xn) ** 2) ** 2 / (2 * gamma ** 2)


def test_jensen_gap_matches_numpy_and_the_prose():
    jg = S.jensen_gap()
    sch = Schedule.linear(200, 1e-4, 0.02)
    p = S.square_1d()
    assert jg.exact.shape == jg.dps.shape == (10, 401) and jg.levels.tolist() == list(S.LEVELS)
    for i, t in enumerate(jg.levels):
        e, d = np_noisy_likelihoods(p.x_train.numpy(), 1.0, 0.5, float(sch.alpha_bar[t]), jg.x_grid)
        np.testing.assert_allclose(jg.exact[i], e, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(jg.dps[i], d, rtol=1e-10, atol=1e-10)
        assert abs(jg.noise_std[i] - math.sqrt(1 - float(sch.alpha_bar[t]))) < 1e-12
    np.testing.assert_allclose(jg.gap_max, np.abs(jg.exact - jg.dps).max(1), rtol=0)
    # the prose: the averaged gap is largest at the noisiest level and vanishes at the last
    assert jg.gap_mean[-1] < 1e-6 < jg.gap_mean[0] and jg.gap_mean[0] == jg.gap_mean.max()
    assert 0.9 < jg.gap_mean[0] < 1.05 and 1.3 < jg.gap_max.max() < 1.45


def test_jensen_gap_two_point_proposition():
    # F(x) = x^2, points +-a, y = a^2: exact log p(y|x_t) is constant; DPS's is lower by a^4 / 2 gamma^2 at 0
    a, gamma = 1.2, 0.4
    prob = posterior.Problem(S.square_forward, torch.tensor([[-a], [a]], dtype=torch.float64),
                             torch.tensor([a * a], dtype=torch.float64), gamma, None)
    jg = S.jensen_gap(problem=prob, levels=(150, 60, 5), x_max=1.0, n_grid=11, n_mc=10)
    const = -0.5 * math.log(2 * math.pi * gamma ** 2)
    np.testing.assert_allclose(jg.exact, const, atol=1e-12)
    mid = 5  # x_t = 0
    np.testing.assert_allclose(jg.dps[:, mid], const - a ** 4 / (2 * gamma ** 2), atol=1e-12)
    sch = Schedule.linear(200, 1e-4, 0.02)
    for i, t in enumerate(jg.levels):
        ab = float(sch.alpha_bar[t])
        x0 = a * np.tanh(math.sqrt(ab) * a * jg.x_grid / (1 - ab))
        np.testing.assert_allclose(jg.dps[i], const - (a * a - x0 ** 2) ** 2 / (2 * gamma ** 2), atol=1e-10)


def test_jensen_gap_is_seeded():
    a = S.jensen_gap(n_grid=5, n_mc=50, seed=3)
    b = S.jensen_gap(n_grid=5, n_mc=50, seed=3)
    c = S.jensen_gap(n_grid=5, n_mc=50, seed=4)
    assert np.array_equal(a.gap_mean, b.gap_mean) and not np.array_equal(a.gap_mean, c.gap_mean)


# ----------------------------------------------------------------------------- DPS
def test_dps_claims(exact, dps, plugin):
    assert dps.values.tolist() == list(S.ZETAS) and abs(math.log10(S.ZETAS[-1] / S.ZETAS[0]) - 2.5) < 0.05
    fl = exact.floor
    t_c, s_c = dps.tv[CU], dps.se[CU]
    b = dps.best(CU)
    assert S.ZETAS[b] == 0.03
    assert t_c[b] <= fl[CU] + 3 * s_c[b]                                     # best step: within noise
    assert t_c[0] > t_c[b] + 3 * math.hypot(s_c[0], s_c[b])                  # too small a step is worse
    outer = dps.frequencies[CU][-1][[0, 4]].sum()
    assert t_c[-1] > 0.5 and outer > 0.5                                     # a large step is catastrophic
    t_p, s_p = dps.tv[PE], dps.se[PE]
    bp = dps.best(PE)
    assert t_p[0] > t_p[bp] + 3 * math.hypot(s_p[0], s_p[bp])
    assert t_p[bp] > 3 * s_p[bp]                                             # still significantly off
    assert t_p[-1] > t_p[bp] + 3 * math.hypot(s_p[-1], s_p[bp])
    assert (dps.tv[SQ] > fl[SQ] + 3 * dps.se[SQ]).all()                      # never within noise
    assert plugin.tv[SQ] > plugin.floor[SQ] + 3 * plugin.se[SQ]              # Jensen gap alone: biased
    for k in (CU, PE):
        assert plugin.tv[k] <= plugin.floor[k] + 3 * plugin.se[k] + 1e-9
    assert max(dps.distances[k].max() for k in S.PROBLEMS) < 1e-6             # training points only
    assert max(plugin.distances[k].max() for k in S.PROBLEMS) < 1e-6
    # TV re-derived from the stored frequencies
    for k in S.PROBLEMS:
        np.testing.assert_allclose(dps.tv[k], 0.5 * np.abs(dps.frequencies[k] - dps.weights[k]).sum(1),
                                   rtol=0, atol=1e-12)
        assert dps.seeds[k].tolist() == [100 + 10 * S.PROBLEMS.index(k) + j for j in range(6)]


def test_sweep_helpers(dps, paper):
    assert dps.index(0.3) == 4 and paper.index(0.05) == 2
    with pytest.raises(ValueError, match="value"):
        dps.index(0.5)
    with pytest.raises(ValueError, match="problem"):
        dps.best("nope")
    s = dps.series()
    assert list(s) == list(S.PROBLEMS) and np.array_equal(s[SQ]["tv"], dps.tv[SQ])
    # share_at against a direct count
    d = paper.distances[CU]
    want = np.array([np.mean(np.abs(d[j] - e) < 1e-6) for j, e in enumerate(S.STEP_SIZES)])
    np.testing.assert_array_equal(paper.share_at(CU), want)
    np.testing.assert_array_equal(paper.share_at(SQ, 0.0), (paper.distances[SQ] < 1e-6).mean(1))


# ----------------------------------------------------------------------------- the paper's variant
def test_paper_variant_claims(exact, dps, paper):
    on_eta = min(paper.share_at(k)[:-1].min() for k in (CU, PE))
    off_big = 1 - paper.share_at(CU)[-1]
    on_fit = paper.share_at(SQ, 0.0).min()
    assert on_eta > 0.99 and 0 < off_big < 0.2 and on_fit > 0.1
    assert paper.tv[CU].max() < dps.tv[CU].max()           # more forgiving than DPS on the cubic problem
    assert paper.tv[PE].min() < 1e-3                        # exactly right at the best eta
    for k in S.PROBLEMS:
        np.testing.assert_allclose(np.median(paper.distances[k], 1), S.STEP_SIZES, atol=1e-9)
    j = int(paper.tv[PE].argmax())
    assert paper.tv[PE].max() > paper.tv[PE].min() + 3 * paper.se[PE][j]
    assert (paper.tv[SQ] > exact.floor[SQ] + 3 * paper.se[SQ]).all()


# ----------------------------------------------------------------------------- SMC
def test_smc_claims(smc):
    assert smc.values.tolist() == [1, 4, 16, 64] and smc.n == dict(S.SMC_SAMPLES)
    t, s = smc.tv[SQ], smc.se[SQ]
    assert t[0] > 0.2                                                   # K = 1: as biased as DPS
    assert (t[1:] < t[0] - 3 * np.hypot(s[0], s[1:])).all()           # reweighting corrects it
    assert t[-1] <= smc.floor[SQ][0] + 3 * s[-1]                        # K = 64: within noise
    for k in (CU, PE):
        assert (smc.tv[k] <= smc.floor[k] + 3 * smc.se[k] + 1e-9).all(), k


def test_smc_floor_grows_as_samples_shrink(smc, exact):
    # fewer samples, higher floor: 150 (pentagon has one-hot weights, floor ~ 0), 300 (cubic) vs 600 (exact)
    assert smc.floor[CU].mean() > exact.floor[CU]


# ----------------------------------------------------------------------------- the table
def test_summary_table(exact, dps, plugin, paper, smc):
    tab = S.summary(exact, dps, plugin, paper, smc)
    assert tab.samplers == ("exact (reweighted logits)", "DPS, best ζ′ of the sweep", "DPS, ζ′ = 1",
                            "DPS, plug-in step", "paper variant, η = 0.05", "SMC, K = 1", "SMC, K = 64")
    assert tab.tv.shape == tab.se.shape == (7, 3) and tab.problems == S.PROBLEMS
    for j, k in enumerate(S.PROBLEMS):
        assert tab.tv[0, j] == exact.tv[k] and tab.tv[1, j] == dps.tv[k].min() and tab.tv[2, j] == dps.tv[k][-1]
        assert tab.tv[3, j] == plugin.tv[k] and tab.tv[4, j] == paper.tv[k][2]
        assert tab.tv[5, j] == smc.tv[k][0] and tab.tv[6, j] == smc.tv[k][-1] and tab.floor[j] == exact.floor[k]
    assert tab.notes[1] == ("ζ′ = 0.03", "ζ′ = 0.1", "ζ′ = 0.3") and tab.notes[0] == ("", "", "")
    from memprior.plots.guidance import summary_table
    html = summary_table(tab).data
    assert html.count("<tr>") == 9 and "0.030&nbsp;±&nbsp;0.017" in html and "(ζ′ = 0.03)" in html
    with pytest.raises(ValueError, match="step_size"):
        S.summary(exact, dps, plugin, paper, smc, step_size=0.07)
    with pytest.raises(TypeError, match="dps"):
        S.summary(exact, exact, plugin, paper, smc)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, exc, name", [
    (lambda: S.exact_runs(n_samples=1), ValueError, "n_samples"),
    (lambda: S.exact_runs(n_samples=2.5), TypeError, "n_samples"),
    (lambda: S.exact_runs(problems=("cubic",)), ValueError, "problems"),
    (lambda: S.exact_runs(problems=(SQ, SQ)), ValueError, "problems"),
    (lambda: S.exact_runs(problems=SQ), TypeError, "problems"),
    (lambda: S.exact_runs(seed=-1), ValueError, "seed"),
    (lambda: S.exact_runs(n_boot=1), ValueError, "n_boot"),
    (lambda: S.exact_runs(schedule="linear"), TypeError, "schedule"),
    (lambda: S.dps_sweep(zetas=[]), ValueError, "zetas"),
    (lambda: S.dps_sweep(zetas=[0.1, -1.0]), ValueError, "zetas"),
    (lambda: S.paper_sweep(step_sizes=[float("nan")]), ValueError, "step_sizes"),
    (lambda: S.plugin_runs(zeta=0.0), ValueError, "zeta"),
    (lambda: S.smc_sweep(particles=[0]), ValueError, "particles"),
    (lambda: S.smc_sweep(n_samples={CU: 10}), ValueError, "n_samples"),
    (lambda: S.jensen_gap(levels=[200]), ValueError, "levels"),
    (lambda: S.jensen_gap(levels=[]), ValueError, "levels"),
    (lambda: S.jensen_gap(n_grid=1), ValueError, "n_grid"),
    (lambda: S.jensen_gap(x_max=0), ValueError, "x_max"),
    (lambda: S.jensen_gap(problem="square"), TypeError, "problem"),
    (lambda: S.jensen_gap(problem=posterior.stylized_2d()), ValueError, "problem"),
    (lambda: S.square_1d(gamma=-1.0), ValueError, "gamma"),
    (lambda: S.square_1d(y=float("inf")), TypeError, "y"),
    (lambda: S.square_1d(x_train=[[1.0, 2.0]]), ValueError, "x_train"),
])
def test_bad_input(call, exc, name):
    with pytest.raises(exc, match=name):
        call()

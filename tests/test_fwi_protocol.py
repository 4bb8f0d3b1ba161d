"""FWIConfig.paper()'s protocol applied by the experiment: the likelihood weight (nll_factor) and the
DPS start (dps_start)."""
import math

import pytest
import torch

from memprior import fwi, posterior
from memprior.experiments.fwi import FWIExperiment

torch.set_num_threads(1)

SMALL = dict(grid=16, npml=6, freq=1.2, n_src=3, n_rec=8, K=4, sizes=(12, 30), n_samples=3, n_steps=8)


def experiment(**kw):
    return FWIExperiment(fwi.FWIConfig(**{**SMALL, **kw}), show_progress=False)


@pytest.fixture(scope="module")
def exps():
    return {c: experiment(nll_factor=c) for c in (1.0, 0.5, 0.25)}


def test_guidance_step_scales_with_the_likelihood_weight(exps):
    """x_s = x_s' - c G at the first level, with the same start, noise and denoiser: the first DPS
    iterates differ by exactly (c1 - c2) G, so the differences between weights 1, 1/2, 1/4 are 2:1."""
    first = {}
    for c, exp in exps.items():
        o = exp.observation("lens")
        res = exp.sample("dps", 12, o, n=3, seed=4, zeta=0.3, cached=False)
        traj = res.trajectory["x"]
        assert torch.equal(traj[0], first.get("start", traj[0]))  # same start for every weight
        first["start"] = traj[0]
        first[c] = traj[1]
    a, b = first[1.0] - first[0.5], first[0.5] - first[0.25]
    assert a.abs().max() > 1e-6  # the guidance moved the samples
    torch.testing.assert_close(a, 2 * b, rtol=1e-9, atol=1e-12)


def test_normalized_variant_does_not_depend_on_the_weight(exps):
    u = [exp.sample("dps_normalized", 12, exp.observation("lens"), n=3, seed=2, cached=False).u
         for exp in (exps[1.0], exps[0.5])]
    torch.testing.assert_close(u[0], u[1], rtol=0, atol=0)


def test_lookup_weights_use_the_likelihood_weight(exps):
    full, half = exps[1.0], exps[0.5]
    lk1 = full.lookup(30, full.observation("lens"))
    lkh = half.lookup(30, half.observation("lens"))
    torch.testing.assert_close(lkh.nll, lk1.nll)  # the misfits themselves are the same
    torch.testing.assert_close(lkh.weights, torch.softmax(-0.5 * lk1.nll, 0), rtol=1e-12, atol=1e-300)
    assert lkh.gap == pytest.approx(0.5 * lk1.gap, rel=1e-12)
    assert lkh.exp_H == pytest.approx(float(posterior.effective_components(lkh.weights)), rel=1e-12)


def test_background_start_is_the_noised_background():
    exp = experiment(dps_start="background")
    N, n, seed = 12, 3, 7
    ts = exp.training_set(N)
    res = exp.sample("dps_normalized", N, exp.observation("lens"), n=n, seed=seed, cached=False)
    x0 = res.trajectory["x"][0]
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn((n, exp.basis.d), generator=g, dtype=torch.float64)
    a = float(exp.schedule.alpha_bar[-1])
    expected = math.sqrt(a) * (-ts.mu / ts.s) + math.sqrt(1 - a) * eps  # z = 0 in z-scored coordinates
    torch.testing.assert_close(x0.to(torch.float64), expected, rtol=1e-12, atol=1e-12)
    # the default start is unchanged: the sampler's own draw (not the background)
    default = experiment().sample("dps_normalized", N, exp.observation("lens"), n=n, seed=seed, cached=False)
    assert not torch.allclose(default.trajectory["x"][0].to(torch.float64), expected)
    assert experiment().start_points(N, n) is None
    with pytest.raises(ValueError, match="n"):
        exp.start_points(N, 0)


def test_paper_configs_carry_the_protocol():
    for grid in (64, 200):
        c = fwi.FWIConfig.paper(grid)
        assert (c.nll_factor, c.dps_start) == (0.5, "background")

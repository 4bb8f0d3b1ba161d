"""Tests for memprior.guidance: exact, SMC and DPS posterior samplers under a memorized prior."""
from __future__ import annotations

import math

import pytest
import torch

from memprior import guidance as G
from memprior.diffusion import MemorizedDenoiser, Schedule, TrajectoryRecorder, ddim_sample, sample, terminal_sample
from memprior.metrics import nearest
from memprior.posterior import lookup_weights

torch.set_num_threads(1)


def cubic(x):
    return x + 0.3 * x ** 3


def square(x):
    return x ** 2


def pentagon_forward(x):
    return torch.stack([x[:, 0] + 0.3 * x[:, 0] * x[:, 1], x[:, 1] + 0.2 * x[:, 0] ** 2], 1)


X1 = torch.tensor([[-1.5], [-0.4], [0.4], [1.2], [2.5]], dtype=torch.float64)
ANG = 2 * math.pi * torch.arange(5, dtype=torch.float64) / 5
X2 = 2 * torch.stack([ANG.cos(), ANG.sin()], 1)
# A problem with a large Jensen gap: F(x) = x^2 cannot tell x from -x, so F at the denoiser's
# average badly misrepresents the average of the likelihoods.
XJ = torch.tensor([[-1.0], [0.1], [1.3]], dtype=torch.float64)
YJ = torch.tensor([1.0], dtype=torch.float64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- exact sampler
@pytest.mark.parametrize("forward,x_train,y,gamma", [
    (cubic, X1, torch.tensor([1.0]), 0.8),
    (pentagon_forward, X2, torch.tensor([0.6, 0.9]), 0.8),
    (square, XJ, YJ, 0.5),
])
def test_exact_sampler_frequencies_match_lookup_weights_chi2(forward, x_train, y, gamma):
    w = lookup_weights(forward, x_train, y, gamma)
    assert float(w.max()) < 0.9  # a non-trivial target
    s, k = G.exact_posterior_sample(x_train, forward, y, gamma, Schedule.linear(200), 3000, gen(1),
                                    return_index=True)
    # the ancestral sampler returns training points exactly
    assert torch.equal(s, x_train[k])
    stat, dof, p = G.chi2_test(s, x_train, w)
    assert dof >= 1 and p > 1e-3, (stat, dof, p)


def test_chi2_detects_a_wrong_sampler():
    w = lookup_weights(square, XJ, YJ, 0.5)
    wrong = XJ[torch.randint(3, (3000,), generator=gen(2))]  # uniform over training points
    _, _, p = G.chi2_test(wrong, XJ, w)
    assert p < 1e-6


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_exact_posterior_denoiser_with_ddpm_ddim_steps_is_close(method):
    w = lookup_weights(square, XJ, YJ, 0.5)
    s, k = G.exact_posterior_sample(XJ, square, YJ, 0.5, Schedule.linear(200), 2000, gen(3), method=method,
                                    return_index=True)
    dist = nearest(s, XJ).distance
    assert float(dist.max()) < 1e-6  # lands on training points
    est = G.tv_to_weights(s, XJ, w, generator=gen(4))
    assert est.tv < est.floor + 4 * est.se + 0.02


def test_posterior_denoiser_is_prior_logits_plus_loglik_and_lookup_at_high_noise():
    sch = Schedule.linear(200)
    ll = G.log_likelihoods(cubic, X1, torch.zeros(1), 0.3)
    post = G.PosteriorDenoiser(X1, sch, ll)
    prior = MemorizedDenoiser(X1, sch)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    for t in (0, 50, 199):
        ref = torch.softmax(prior.logits(x, t) + ll[None, :], 1)
        assert torch.allclose(post.weights(x, t), ref, atol=1e-12)
        assert torch.allclose(post.denoise(x, t), ref @ X1, atol=1e-12)
        ab = sch.alpha_bar[t]
        assert torch.allclose(post.eps(x, t), (x - ab.sqrt() * post.denoise(x, t)) / (1 - ab).sqrt())
    # a schedule that ends in (almost) pure noise: the weights at x_T = 0 are the lookup weights
    cos = Schedule.cosine(50)
    post_c = G.PosteriorDenoiser(X1, cos, ll)
    w = lookup_weights(cubic, X1, torch.zeros(1), 0.3)
    assert torch.allclose(post_c.weights(torch.zeros(1, 1, dtype=torch.float64), 49)[0], w, atol=1e-4)
    # log_likelihoods normalizes like a Gaussian density
    assert torch.allclose(ll, -cubic(X1)[:, 0] ** 2 / (2 * 0.09) - 0.5 * math.log(2 * math.pi * 0.09))


# ----------------------------------------------------------------------------- SMC
def test_smc_incremental_weights_are_unbiased():
    # One particle per system: the final weight W is an importance weight, so E[W 1{k = n}] = p(y | x_n) / N.
    gamma = 1.0
    ll = G.log_likelihoods(square, XJ, YJ, gamma)
    _, info = G.smc_sample(XJ, square, YJ, gamma, Schedule.cosine(4), 40000, n_particles=1, generator=gen(5),
                           return_info=True)
    W = info["log_evidence"].exp()
    for n in range(3):
        v = W * (info["index"] == n)
        est, se = float(v.mean()), float(v.std()) / math.sqrt(len(v))
        assert abs(est - float(ll[n].exp()) / 3) < 5 * se + 1e-4, (n, est, float(ll[n].exp()) / 3, se)


def test_smc_error_shrinks_as_particles_grow():
    gamma = 0.5
    w = lookup_weights(square, XJ, YJ, gamma)
    sch = Schedule.cosine(20)
    e1 = G.tv_to_weights(G.smc_sample(XJ, square, YJ, gamma, sch, 1000, n_particles=1, generator=gen(6)),
                         XJ, w, generator=gen(7))
    e8 = G.tv_to_weights(G.smc_sample(XJ, square, YJ, gamma, sch, 1000, n_particles=8, generator=gen(8)),
                         XJ, w, generator=gen(9))
    e64 = G.tv_to_weights(G.smc_sample(XJ, square, YJ, gamma, sch, 1000, n_particles=64, generator=gen(10)),
                          XJ, w, generator=gen(11))
    assert e1.tv > 0.2  # one particle = the twisted proposal alone: biased by the Jensen gap
    assert e1.tv - e8.tv > 3 * math.hypot(e1.se, e8.se)
    assert e8.tv - e64.tv > 3 * math.hypot(e8.se, e64.se) or e64.tv < e64.floor + 2 * e64.se
    assert e64.tv < 0.08


def test_smc_gaussian_kernel_and_info():
    gamma = 0.4
    s, info = G.smc_sample(X1, cubic, torch.tensor([0.5]), gamma, Schedule.linear(100, 1e-4, 0.04), 50,
                           n_particles=8, generator=gen(12), kernel="gaussian", return_info=True)
    assert s.shape == (50, 1) and torch.isfinite(s).all()
    assert torch.isfinite(info["log_evidence"]).all()
    assert info["ess"].shape == (100, 50) and bool(((info["ess"] > 0) & (info["ess"] <= 1 + 1e-12)).all())
    assert (info["index"] == -1).all()
    s2 = G.smc_sample(X1, cubic, torch.tensor([0.5]), gamma, Schedule.linear(100, 1e-4, 0.04), 50,
                      n_particles=8, generator=gen(12), kernel="gaussian")
    assert torch.equal(s, s2)  # seeded


# ----------------------------------------------------------------------------- DPS: hand-computed steps
class GaussianDenoiser:
    """Exact denoiser of the prior N(mu, s^2 I): E[x0|x_t] = mu + c (x_t - sqrt(ab) mu)."""

    def __init__(self, mu, s, schedule):
        self.mu, self.s, self.schedule = mu, s, schedule
        self.dim = mu.shape[0]
        self.dtype = torch.float64

    def c(self, t):
        ab = self.schedule.alpha_bar[t]
        return ab.sqrt() * self.s ** 2 / (ab * self.s ** 2 + 1 - ab)

    def denoise(self, x, t):
        ab = self.schedule.alpha_bar[t]
        return self.mu + self.c(t) * (x - ab.sqrt() * self.mu)

    def eps(self, x, t):
        ab = self.schedule.alpha_bar[t]
        return (x - ab.sqrt() * self.denoise(x, t)) / (1 - ab).sqrt()


@pytest.mark.parametrize("rule", ["chung", "plugin"])
def test_dps_linear_gaussian_matches_hand_computed_steps(rule):
    torch.manual_seed(0)
    d, m, n, zeta, gamma = 2, 3, 4, 0.7, 0.5
    A = torch.randn(m, d, dtype=torch.float64)
    sch = Schedule(torch.tensor([0.1, 0.3], dtype=torch.float64))
    den = GaussianDenoiser(torch.tensor([0.3, -0.2], dtype=torch.float64), 1.3, sch)
    y = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
    x_T = torch.randn(n, d, dtype=torch.float64)
    out = G.dps_sample(den, sch, lambda x: x @ A.T, y, gamma, n, zeta=zeta, generator=gen(13), x_T=x_T, rule=rule)

    # by hand: gradient of ||y - A x0_hat||^2 in x_t is -2 c A^T r (c = d x0_hat / d x_t)
    ab = sch.alpha_bar
    z = torch.randn((n, d), generator=gen(13), dtype=torch.float64)

    def guidance(x, t, a_ts):
        r = y - den.denoise(x, t) @ A.T
        grad = -2 * den.c(t) * r @ A
        if rule == "chung":
            coef = zeta / r.norm(dim=1, keepdim=True)
        else:
            coef = zeta * (1 - a_ts) / a_ts.sqrt() / (2 * gamma ** 2)
        return coef * grad

    # step 1: t = 1 -> 0 (ancestral DDPM)
    a1, a0 = ab[1], ab[0]
    a_ts = a1 / a0
    x0 = den.denoise(x_T, 1)
    mean = a0.sqrt() * (1 - a_ts) / (1 - a1) * x0 + a_ts.sqrt() * (1 - a0) / (1 - a1) * x_T
    var = (1 - a0) / (1 - a1) * (1 - a_ts)
    x = mean + var.sqrt() * z - guidance(x_T, 1, a_ts)
    # step 2: t = 0 -> clean (x = x0_hat, then guidance)
    x = den.denoise(x, 0) - guidance(x, 0, a0)
    assert torch.allclose(out, x, atol=1e-12, rtol=0)


def test_dps_gradient_goes_through_memorized_denoiser():
    # A committed memorized denoiser has a vanishing Jacobian: DPS's last step does not move samples.
    sch = Schedule.linear(200)
    den = MemorizedDenoiser(X1, sch)
    s, info = G.dps_sample(den, sch, cubic, torch.zeros(1), 0.3, 200, zeta=0.05, generator=gen(14),
                           return_info=True)
    dist = nearest(s, X1).distance
    assert float(dist.max()) < 1e-6
    assert float(info["step"][-1].max()) < 1e-6
    assert info["residual"].shape == (200, 200)


# ----------------------------------------------------------------------------- the paper's variant
def test_normalized_variant_final_step_has_length_step_size():
    sch = Schedule.linear(200)
    den = MemorizedDenoiser(X2, sch)
    y = pentagon_forward(0.7 * X2[:1])[0]
    for step_size in (0.02, 0.07):
        s, info = G.dps_normalized_sample(den, sch, pentagon_forward, y, 300, step_size=step_size, generator=gen(15),
                                          return_info=True)
        step = (s - info["x0_hat"]).norm(dim=1)
        assert torch.allclose(step, torch.full_like(step, step_size), atol=1e-12)
        # the memorized denoiser's last output is a training point, so samples sit step_size away from one
        dist = nearest(s, X2).distance
        assert torch.allclose(dist, torch.full_like(dist, step_size), atol=1e-8)


def test_normalized_variant_single_step_by_hand():
    sch = Schedule(torch.tensor([0.2], dtype=torch.float64))  # one level: DDIM step = x0_hat
    den = GaussianDenoiser(torch.tensor([0.1, 0.4], dtype=torch.float64), 0.8, sch)
    A = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 0.3], dtype=torch.float64)
    x_T = torch.tensor([[0.2, -0.3], [1.0, 2.0]], dtype=torch.float64)
    out = G.dps_normalized_sample(den, sch, lambda x: x @ A.T, y, 2, step_size=0.05, x_T=x_T)
    x0 = den.denoise(x_T, 0)
    g = -2 * (y - x0 @ A.T) @ A  # gradient in x0_hat
    assert torch.allclose(out, x0 - 0.05 * g / g.norm(dim=1, keepdim=True), atol=1e-13)


# ----------------------------------------------------------------------------- guidance objects in the one loop
def test_exact_guidance_is_the_posterior_denoiser_in_the_loop():
    # two routes to the same sampler: the exact reweighting as a guidance of the prior's denoiser, and DDIM with
    # the posterior denoiser (prior logits + log-likelihood) as the denoiser
    sch = Schedule.linear(60)
    ll = G.log_likelihoods(cubic, X1, torch.tensor([0.5]), 0.4)
    x_T = G.posterior_terminal_sample(X1, sch, ll, 50, gen(24))
    a = sample(MemorizedDenoiser(X1, sch), sch, x_T, guidance=G.ExactGuidance(ll, draw=False))
    b = ddim_sample(G.PosteriorDenoiser(X1, sch, ll), sch, 50, x_T=x_T)
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # the ancestral draw ends on the drawn training points
    guide = G.ExactGuidance(ll, draw=True, generator=gen(25))
    c = sample(MemorizedDenoiser(X1, sch), sch, x_T, step="ddpm", guidance=guide, generator=gen(25))
    assert torch.equal(c, X1[guide.index])
    with pytest.raises(TypeError, match="denoiser: the exact reweighting needs a memprior.diffusion.MemorizedDenoiser"):
        sample(GaussianDenoiser(torch.zeros(1, dtype=torch.float64), 1.0, sch), sch, x_T, guidance=guide)
    with pytest.raises(ValueError, match=r"log_lik: expected shape \[5\]"):
        sample(MemorizedDenoiser(X1, sch), sch, x_T, guidance=G.ExactGuidance(ll[:3]))


def test_dps_records_its_trajectory_through_the_callback():
    sch = Schedule.linear(40)
    den = MemorizedDenoiser(X1, sch)
    rec = TrajectoryRecorder()
    x_T = terminal_sample(X1, sch, 30, gen(26))
    s, info = G.dps_sample(den, sch, cubic, torch.zeros(1), 0.3, 30, zeta=0.05, generator=gen(27), x_T=x_T,
                           return_info=True, callback=rec)
    tr = rec.trajectory()
    assert tr["t"].tolist() == list(range(39, -1, -1)) and torch.equal(tr["x"][0], x_T)
    assert torch.equal(tr["x0_hat"][-1], info["x0_hat"])
    # every recorded clean estimate is the denoiser's output at the recorded iterate
    for k in (0, 17, 39):
        assert torch.allclose(tr["x0_hat"][k], den.denoise(tr["x"][k], int(tr["t"][k])), rtol=0, atol=1e-12)
    # the last step: x = x0_hat minus the guidance step, whose length info records
    assert torch.allclose((s - info["x0_hat"]).norm(dim=1), info["step"][-1], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- diagnostics
def test_nearest_tv_and_frequencies():
    s = torch.tensor([[-1.4], [-0.3], [0.5], [0.45], [3.0]], dtype=torch.float64)
    dist, idx = nearest(s, X1)  # one nearest-neighbour search: memprior.metrics.nearest, (distance, index)
    assert idx.tolist() == [0, 1, 2, 2, 4]
    assert torch.allclose(dist, torch.tensor([0.1, 0.1, 0.1, 0.05, 0.5], dtype=torch.float64))
    f = G.assignment_frequencies(s, X1)
    assert torch.allclose(f, torch.tensor([0.2, 0.2, 0.4, 0.0, 0.2], dtype=torch.float64))
    assert G.tv_distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(1.0)
    assert G.tv_distance(f, f) == 0.0
    # an exact sampler's TV sits at the floor: E[TV] for n draws of Bernoulli(1/2) is about 0.4/sqrt(n)
    w = torch.tensor([0.5, 0.5], dtype=torch.float64)
    xt = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    est = G.tv_to_weights(xt[torch.randint(2, (400,), generator=gen(16))], xt, w, generator=gen(17))
    assert est.floor == pytest.approx(math.sqrt(0.25 / 400) * math.sqrt(2 / math.pi), rel=0.15)
    assert 0 < est.se < 0.05 and est.n == 400


# ----------------------------------------------------------------------------- extremes and bad input
def test_extremes_no_nan():
    sch = Schedule.linear(50, 1e-4, 0.08)
    # tiny noise: the exact sampler picks the best-fitting training point
    s = G.exact_posterior_sample(X1, cubic, torch.zeros(1), 1e-4, sch, 20, gen(18))
    assert torch.isfinite(s).all() and set(s[:, 0].tolist()) <= {-0.4, 0.4}
    # data fitted exactly by a training point: zero residual, finite DPS steps
    den = MemorizedDenoiser(X1, sch)
    y = cubic(X1[2:3])[0]
    s = G.dps_sample(den, sch, cubic, y, 1e-3, 20, zeta=0.1, generator=gen(19))
    assert torch.isfinite(s).all()
    s = G.smc_sample(X1, cubic, y, 1e-3, sch, 5, n_particles=4, generator=gen(20))
    assert torch.allclose(s, X1[2].expand(5, 1))


def test_bad_input():
    sch = Schedule.linear(20)
    den = MemorizedDenoiser(X1, sch)
    y = torch.zeros(1)
    with pytest.raises(ValueError, match="gamma"):
        G.exact_posterior_sample(X1, cubic, y, 0.0, sch, 10)
    with pytest.raises(ValueError, match="gamma"):
        G.dps_sample(den, sch, cubic, y, -1.0, 10)
    with pytest.raises(ValueError, match="gamma"):
        G.smc_sample(X1, cubic, y, float("nan"), sch, 10)
    with pytest.raises(ValueError, match="zeta"):
        G.dps_sample(den, sch, cubic, y, 0.3, 10, zeta=0.0)
    with pytest.raises(ValueError, match=r"step_size: must be a finite number in \(0, inf\)"):
        G.dps_normalized_sample(den, sch, cubic, y, 10, step_size=-0.1)
    with pytest.raises(ValueError, match="n:"):
        G.exact_posterior_sample(X1, cubic, y, 0.3, sch, 0)
    with pytest.raises(ValueError, match="n:"):
        G.dps_sample(den, sch, cubic, y, 0.3, 0)
    with pytest.raises(ValueError, match="n_particles"):
        G.smc_sample(X1, cubic, y, 0.3, sch, 10, n_particles=0)
    with pytest.raises(ValueError, match="empty"):
        G.exact_posterior_sample(torch.zeros(0, 1), cubic, y, 0.3, sch, 10)
    with pytest.raises(ValueError, match="empty"):
        G.smc_sample(torch.zeros(0, 2), cubic, y, 0.3, sch, 10)
    with pytest.raises(ValueError, match="forward"):  # F returns [B, 1] but y has 2 entries
        G.exact_posterior_sample(X1, cubic, torch.zeros(2), 0.3, sch, 10)
    with pytest.raises(ValueError, match="forward"):
        G.dps_sample(den, sch, cubic, torch.zeros(2), 0.3, 10)
    with pytest.raises(ValueError, match="x_T"):
        G.dps_sample(den, sch, cubic, y, 0.3, 10, x_T=torch.zeros(10, 2))
    with pytest.raises(ValueError, match="y"):
        G.exact_posterior_sample(X1, cubic, torch.zeros(1, 1), 0.3, sch, 10)
    with pytest.raises(ValueError, match="rule"):
        G.dps_sample(den, sch, cubic, y, 0.3, 10, rule="other")
    with pytest.raises(ValueError, match="method"):
        G.exact_posterior_sample(X1, cubic, y, 0.3, sch, 10, method="other")
    with pytest.raises(ValueError, match="kernel"):
        G.smc_sample(X1, cubic, y, 0.3, sch, 10, kernel="other")
    with pytest.raises(ValueError, match="ess_threshold"):
        G.smc_sample(X1, cubic, y, 0.3, sch, 10, ess_threshold=1.5)
    with pytest.raises(TypeError, match="schedule"):
        G.exact_posterior_sample(X1, cubic, y, 0.3, "linear", 10)
    with pytest.raises(TypeError, match="denoiser"):
        G.dps_sample(object(), sch, cubic, y, 0.3, 10)
    with pytest.raises(TypeError, match="forward"):
        G.smc_sample(X1, 3.0, y, 0.3, sch, 10)
    with pytest.raises(ValueError, match="samples"):
        G.assignment_frequencies(torch.zeros(3, 2), X1)
    with pytest.raises(ValueError, match="weights"):
        G.tv_to_weights(X1, X1, torch.ones(3) / 3)
    with pytest.raises(ValueError, match="p"):
        G.tv_distance(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="log_lik"):
        G.PosteriorDenoiser(X1, sch, torch.zeros(4))


def test_noisy_likelihoods_jensen_gap():
    sch = Schedule.linear(200)
    gamma = 0.5
    ll = G.log_likelihoods(square, XJ, YJ, gamma)
    # at the cleanest level, on a training point, both are that point's likelihood
    x = sch.alpha_bar[0].sqrt() * XJ
    ex, dps = G.noisy_likelihoods(XJ, square, YJ, gamma, sch, x, 0)
    assert torch.allclose(ex, ll, atol=1e-8) and torch.allclose(dps, ll, atol=1e-8)
    # in between, the exact likelihood is a weighted average: between min and max of ll,
    # and above the average log-likelihood (concavity of log); DPS need not be
    xg = torch.linspace(-2, 2, 41, dtype=torch.float64)[:, None]
    ex, dps = G.noisy_likelihoods(XJ, square, YJ, gamma, sch, xg, 120)
    w = MemorizedDenoiser(XJ, sch).weights(xg, 120)
    assert bool((ex <= ll.max() + 1e-12).all() and (ex >= ll.min() - 1e-12).all())
    assert bool((ex >= (w * ll[None, :]).sum(1) - 1e-12).all())
    assert float((ex - dps).abs().max()) > 0.5  # a real gap for F(x) = x^2
    # brute-force Monte Carlo of E[p(y|x0) | x_t] agrees with the exact value
    xt = torch.tensor([[0.3]], dtype=torch.float64)
    k = torch.multinomial(MemorizedDenoiser(XJ, sch).weights(xt, 120)[0], 200000, replacement=True, generator=gen(21))
    mc = ll.exp()[k].mean().log()
    assert abs(float(mc) - float(G.noisy_likelihoods(XJ, square, YJ, gamma, sch, xt, 120)[0])) < 0.01


def test_step_size_app_shows_lookup_weights_and_unguided_prior_frequencies():
    import re

    import numpy as np
    from scipy import stats

    from memprior.posterior import stylized_1d
    from memprior.widgets import callback_latencies
    from memprior.widgets.guidance import benchmark_settings, step_size_app

    n = 256
    app = step_size_app(stylized_1d(), Schedule.linear(200), n=n, steps=20, live=False)
    lat = callback_latencies(app, benchmark_settings())
    assert lat.shape == (8,)
    # the exact bars: softmax(-F(x_n)^2 / 2 gamma^2), F(x) = x + 0.3 x^3, y = 0, gamma = 0.3
    xn = X1[:, 0].numpy()
    logw = -(xn + 0.3 * xn ** 3) ** 2 / (2 * 0.09)
    w = np.exp(logw - logw.max()) / np.exp(logw - logw.max()).sum()
    np.testing.assert_allclose(np.asarray(app.figure.data[0].y, dtype=float), w, rtol=1e-9, atol=1e-15)

    def shown():
        f = np.asarray(app.figure.data[1].y, dtype=float)
        counts = np.round(f * n)
        np.testing.assert_allclose(counts, f * n, atol=1e-9)  # frequencies of n samples
        np.testing.assert_allclose(app.figure.data[1].error_y.array, np.sqrt(f * (1 - f) / n), rtol=1e-9)
        tv = float(re.search(r"total variation ([0-9.]+)", app.figure.layout.title.text).group(1))
        assert tv == pytest.approx(0.5 * np.abs(f - w).sum(), abs=1e-3)  # the title's TV is the bars'
        return counts, tv

    # the paper variant with a vanishing step eta leaves the memorized prior: every training point equally
    # often (chi-square), far from the lookup weights (the points at ±0.4 carry almost all their mass) ...
    app.update(sampler="paper variant (normalized)", log10_step=-2.5)
    counts, tv = shown()
    assert counts.sum() == n and stats.chisquare(counts).pvalue > 1e-3
    assert stats.chisquare(counts, n * np.maximum(w, 1e-12)).pvalue < 1e-6 and tv > 0.4
    # ... and with eta = 10^-0.5 the samples sit on those two points
    app.update(log10_step=-0.5)
    counts, tv = shown()
    assert counts[1] + counts[2] == n and tv < 0.1
    app.update(sampler="DPS (Chung et al.)", log10_step=-1.5)
    shown()
    with pytest.raises(TypeError, match="live"):
        step_size_app(stylized_1d(), live="yes")

"""Tests for memprior.diffusion: schedules, the closed-form denoiser, samplers, the MLP."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from memprior.diffusion import (Guidance, MemorizedDenoiser, MLPDenoiser, Schedule, TrajectoryRecorder, commitment_step,
                                ddim_sample, ddpm_sample, denoising_loss, sample, start_points, terminal_sample,
                                train_denoiser)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _data(n=12, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------------- schedules
def test_linear_schedule_identities():
    s = Schedule.linear()
    assert s.n_steps == 200 and s.alpha_bar.dtype == torch.float64
    betas = np.linspace(1e-4, 0.02, 200)
    np.testing.assert_allclose(s.betas.numpy(), betas, rtol=1e-14)
    np.testing.assert_allclose(s.alpha_bar.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    # the paper's schedule leaves ~13 % of the signal variance at the last step
    assert 0.12 < s.terminal_alpha_bar() < 0.14
    assert s.terminal_std() == pytest.approx(math.sqrt(1 - np.prod(1 - betas)), rel=1e-12)
    # the cleanest level has noise std sqrt(beta_0) = 0.01
    assert s.std(0) == pytest.approx(0.01, rel=1e-10)
    assert s.sigma(0) == pytest.approx(0.01 / math.sqrt(1 - 1e-4), rel=1e-10)
    assert torch.all(torch.diff(s.alpha_bar) < 0)
    snr = s.snr()
    np.testing.assert_allclose(snr.numpy(), (s.alpha_bar / (1 - s.alpha_bar)).numpy())


def test_cosine_schedule_identities():
    T, sh = 100, 0.008
    s = Schedule.cosine(T)
    f = lambda u: math.cos((u / T + sh) / (1 + sh) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 50, 90):
        assert float(s.alpha_bar[t]) == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    assert s.terminal_alpha_bar() < 1e-6
    assert torch.all(s.betas <= 0.999) and torch.all(s.betas > 0)


def test_q_sample_moments():
    s = Schedule.linear()
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((40000, 1), 2.0, dtype=torch.float64)
    xt = s.q_sample(x0, 120, generator=g)
    ab = float(s.alpha_bar[120])
    assert float(xt.mean()) == pytest.approx(2 * math.sqrt(ab), abs=4 * math.sqrt((1 - ab) / 40000))
    assert float(xt.std()) == pytest.approx(math.sqrt(1 - ab), rel=0.02)
    # per-row times
    t = torch.tensor([0, 199])
    out = s.q_sample(torch.ones(2, 1, dtype=torch.float64), t, eps=torch.zeros(2, 1, dtype=torch.float64))
    np.testing.assert_allclose(out[:, 0].numpy(), s.alpha_bar[t].sqrt().numpy())


def test_terminal_sample_is_the_terminal_marginal():
    s = Schedule.linear()
    x = torch.tensor([[-2.0], [3.0]], dtype=torch.float64)
    z = terminal_sample(x, s, 40000, generator=torch.Generator().manual_seed(2))
    ab = s.terminal_alpha_bar()
    mean = math.sqrt(ab) * 0.5
    var = ab * 6.25 + (1 - ab)  # mixture variance: between + within
    assert float(z.mean()) == pytest.approx(mean, abs=4 * math.sqrt(var / 40000))
    assert float(z.var()) == pytest.approx(var, rel=0.03)


# ----------------------------------------------------------------------- closed-form denoiser
def test_memorized_denoiser_matches_brute_force_conditional_mean():
    """E[x0|x_t] by Monte Carlo: average x0 over joint draws whose x_t falls in narrow bins."""
    s = Schedule.linear()
    x = torch.tensor([[-1.0], [0.2], [0.5], [2.0]], dtype=torch.float64)
    den = MemorizedDenoiser(x, s)
    g = torch.Generator().manual_seed(3)
    t = 100
    M = 400_000
    idx = torch.randint(4, (M,), generator=g)
    x0 = x[idx]
    xt = s.q_sample(x0, t, generator=g)
    edges = torch.linspace(-1.5, 2.0, 15, dtype=torch.float64)
    pred = den.denoise(xt, t)[:, 0]
    bins = torch.bucketize(xt[:, 0], edges)
    checked = 0
    for b in range(1, len(edges)):
        m = bins == b
        cnt = int(m.sum())
        if cnt < 2000:
            continue
        mc = float(x0[m, 0].mean())
        se = float(x0[m, 0].std()) / math.sqrt(cnt)
        # the bin average of the closed form (it varies inside the bin), against the MC average
        assert abs(mc - float(pred[m].mean())) < 5 * se + 1e-12, (b, mc, float(pred[m].mean()), se)
        checked += 1
    assert checked >= 8
    # a wrong denoiser (temperature off by 2) fails the same check somewhere
    wrong = (torch.softmax(2 * den.logits(xt, t), 1) @ x)[:, 0]
    worst = 0.0
    for b in range(1, len(edges)):
        m = bins == b
        cnt = int(m.sum())
        if cnt < 2000:
            continue
        se = float(x0[m, 0].std()) / math.sqrt(cnt)
        worst = max(worst, abs(float(x0[m, 0].mean()) - float(wrong[m].mean())) / se)
    assert worst > 10


def test_memorized_denoiser_orthogonality_in_2d():
    """E[(x0 - D(x_t)) g(x_t)] = 0 for test functions g: the defining property of E[x0|x_t]."""
    s = Schedule.linear()
    x = _data(6, 2, seed=4)
    den = MemorizedDenoiser(x, s)
    g = torch.Generator().manual_seed(5)
    M = 200_000
    for t in (60, 150):
        x0 = x[torch.randint(6, (M,), generator=g)]
        xt = s.q_sample(x0, t, generator=g)
        r = x0 - den.denoise(xt, t)
        for gf in (torch.ones_like(xt[:, :1]), xt[:, :1], torch.sin(2 * xt[:, 1:2]), (xt ** 2).sum(1, True)):
            v = r * gf
            z = v.mean(0) / (v.std(0) / math.sqrt(M))
            assert torch.all(z.abs() < 5), (t, z)


def test_weights_logits_and_marginal():
    s = Schedule.linear()
    x = _data(7, 3)
    den = MemorizedDenoiser(x, s)
    xt = _data(5, 3, seed=9)
    t = 37
    ab = s.alpha_bar[t]
    lg = den.logits(xt, t)
    ref = -((xt[:, None, :] - ab.sqrt() * x[None]) ** 2).sum(-1) / (2 * (1 - ab))
    torch.testing.assert_close(lg, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(den.weights(xt, t).sum(1), torch.ones(5, dtype=torch.float64))
    # log-marginal vs the explicit Gaussian mixture density
    var = 1 - ab
    dens = torch.exp(ref).mean(1) / (2 * math.pi * var) ** 1.5
    torch.testing.assert_close(den.log_marginal(xt, t), torch.log(dens), rtol=1e-10, atol=1e-10)
    # the score is the gradient of the log-marginal
    xg = xt.clone().requires_grad_(True)
    grad, = torch.autograd.grad(den.log_marginal(xg, t).sum(), xg)
    torch.testing.assert_close(den.score(xt, t), grad, rtol=1e-8, atol=1e-10)
    # eps / denoise consistency: x_t = sqrt(ab) x0_hat + sqrt(1-ab) eps_hat
    torch.testing.assert_close(ab.sqrt() * den.denoise(xt, t) + (1 - ab).sqrt() * den.eps(xt, t), xt)


def test_tweedie_jacobian_matches_autograd():
    s = Schedule.linear()
    x = _data(9, 3, seed=6)
    den = MemorizedDenoiser(x, s)
    xt = 0.5 * _data(4, 3, seed=7)
    for t in (20, 100, 199):
        J = den.jacobian(xt, t)
        for b in range(4):
            ref = torch.autograd.functional.jacobian(lambda z: den.denoise(z[None], t)[0], xt[b])
            torch.testing.assert_close(J[b], ref, rtol=1e-8, atol=1e-10)
        # symmetric positive semi-definite
        torch.testing.assert_close(J, J.transpose(1, 2))
        assert float(torch.linalg.eigvalsh(J).min()) > -1e-10


def test_denoiser_stable_far_from_data_and_float32():
    s = Schedule.linear()
    x = _data(5, 2)
    den = MemorizedDenoiser(x, s)
    far = torch.tensor([[1e4, -1e4], [0.0, 0.0]], dtype=torch.float64)
    for t in (0, 199):
        out = den.denoise(far, t)
        assert torch.isfinite(out).all() and torch.isfinite(den.eps(far, t)).all()
    assert den.denoise(x.float(), 0).dtype == torch.float32
    # at t = 0 each training point (noised by sqrt(beta_0) = 0.01) is denoised to itself
    torch.testing.assert_close(den.denoise(x * s.sqrt_alpha_bar(0), 0), x, rtol=0, atol=1e-10)


def test_memorized_denoiser_accurate_for_a_training_set_far_from_the_origin():
    """Translation equivariance: D_{X + c}(x_t + sqrt(ab) c) = D_X(x_t) + c, with X near 0 and c = 1e4.

    The expansion ||x||^2 - 2 a x.x_n + a^2 ||x_n||^2 cancels two numbers of size 1e8: it loses about 8 digits
    (errors of 1e-9 to 1e-7 here); differences keep the error at the rounding of 1e4 (about 2e-12).
    """
    s = Schedule.linear()
    g = torch.Generator().manual_seed(30)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    c = 1e4
    near, far = MemorizedDenoiser(x, s), MemorizedDenoiser(x + c, s)
    for t in (5, 50, 120, 199):
        ab = s.alpha_bar[t]
        xt = s.q_sample(x[torch.randint(20, (64,), generator=g)], t, generator=g)
        xt_far = xt + ab.sqrt() * c
        assert float((far.denoise(xt_far, t) - (near.denoise(xt, t) + c)).abs().max()) < 1e-10
        assert float((far.weights(xt_far, t) - near.weights(xt, t)).abs().max()) < 1e-9
        # the logits themselves: -||x_t - sqrt(ab) x_n||^2 / (2 (1 - ab)) from float64 differences
        lg_ref = -((xt[:, None, :] - ab.sqrt() * x[None]) ** 2).sum(-1) / (2 * (1 - ab))
        assert torch.allclose(far.logits(xt_far, t), lg_ref, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------- the loop
def test_sample_loop_calls_guidance_and_callback_in_order():
    """The loop's contract, checked with an oracle denoiser and a guidance that records and shifts."""
    s = Schedule.linear(30)
    x0 = _data(4, 2, seed=31)
    eps = _data(4, 2, seed=32)
    x_T = s.q_sample(x0, 29, eps=eps)
    calls = []

    class Shift(Guidance):
        def adjust(self, x_s, x0_hat, t, a_t, a_s):
            calls.append(("adjust", t, float(a_t), float(a_s)))
            return x_s + 1.0

    rec = TrajectoryRecorder()
    ts = [29, 19, 10, 0]
    out = sample(_Oracle(x0, s), s, x_T, step="ddim", steps=4, guidance=Shift(),
                 callback=lambda t, x, x0h: (calls.append(("callback", t)), rec(t, x, x0h)))
    assert [c[1] for c in calls[::2]] == ts and all(c[0] == "callback" for c in calls[::2])
    # each level's adjust sees alpha_bar of this level and of the next one (1 after the last)
    for (kind, t, a_t, a_s), nxt in zip(calls[1::2], ts[1:] + [None]):
        assert kind == "adjust" and a_t == float(s.alpha_bar[t])
        assert a_s == (1.0 if nxt is None else float(s.alpha_bar[nxt]))
    # after the last level the loop returns x0_hat, then the guidance moves it
    torch.testing.assert_close(out, x0 + 1.0, rtol=0, atol=1e-12)
    tr = rec.trajectory()
    assert tr["t"].tolist() == ts and tr["x"].shape == (4, 4, 2)
    torch.testing.assert_close(tr["x"][0], x_T)
    # the second iterate is the DDIM step from x_T to level 19 (same noise direction), plus the shift
    torch.testing.assert_close(tr["x"][1], s.q_sample(x0, 19, eps=eps) + 1.0, rtol=0, atol=1e-12)
    # without guidance the same loop is ddim_sample
    torch.testing.assert_close(sample(_Oracle(x0, s), s, x_T, steps=4), ddim_sample(_Oracle(x0, s), s, 4, x_T=x_T,
                                                                                     steps=4))


def test_sample_loop_ddim_eta_one_is_ddpm_in_law():
    """DDIM with eta = 1 has DDPM's step variance, so for N = 1 both keep q(x_t | x_1) at every level."""
    s = Schedule.linear(50)
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    den = MemorizedDenoiser(x, s)
    M = 6000
    for step, eta in (("ddim", 1.0), ("ddpm", 0.0)):
        x_T = start_points(den, s, M, generator=torch.Generator().manual_seed(33))
        rec = TrajectoryRecorder()
        sample(den, s, x_T, step=step, eta=eta, callback=rec, generator=torch.Generator().manual_seed(34))
        xt = rec.trajectory()["x"][50 - 1 - 20]  # level 20
        ab = float(s.alpha_bar[20])
        np.testing.assert_allclose(xt.std(0).numpy(), math.sqrt(1 - ab), rtol=0.05)
        np.testing.assert_allclose(xt.mean(0).numpy(), math.sqrt(ab) * x[0].numpy(), atol=5 * math.sqrt((1 - ab) / M))


def test_sample_loop_bad_input():
    s = Schedule.linear(10)
    den = MemorizedDenoiser(_data(4, 2), s)
    x_T = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="step: must be 'ddim' or 'ddpm'"):
        sample(den, s, x_T, step="euler")
    with pytest.raises(ValueError, match=r"eta: must be a finite number in \[0, inf\)"):
        sample(den, s, x_T, eta=-0.5)
    with pytest.raises(ValueError, match="eta: DDIM's stochasticity, must be 0 with step='ddpm'"):
        sample(den, s, x_T, step="ddpm", eta=0.5)
    with pytest.raises(TypeError, match="guidance: expected a memprior.diffusion.Guidance"):
        sample(den, s, x_T, guidance=lambda *a: None)
    with pytest.raises(TypeError, match="callback: expected a callable"):
        sample(den, s, x_T, callback=3)
    with pytest.raises(ValueError, match=r"x_T: expected shape \[n, 2\]"):
        sample(den, s, torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"steps: must be an integer in \[1, 10\]"):
        sample(den, s, x_T, steps=11)
    with pytest.raises(ValueError, match="trajectory: nothing recorded"):
        TrajectoryRecorder().trajectory()

    class NoTrain:
        dim, dtype = 2, torch.float64

        def denoise(self, x, t):
            return x

        def eps(self, x, t):
            return x
    with pytest.raises(ValueError, match=r"init: 'marginal' draws from the denoiser's training set"):
        start_points(NoTrain(), s, 3)
    assert start_points(NoTrain(), s, 3, init="standard", generator=torch.Generator().manual_seed(0)).shape == (3, 2)


# --------------------------------------------------------------------------------- samplers
class _Oracle:
    """A denoiser that knows x0: checks the sampler algebra independently of any model."""

    def __init__(self, x0, schedule):
        self.x0, self.s, self.dim, self.dtype = x0, schedule, x0.shape[1], torch.float64

    def denoise(self, x_t, t):
        return self.x0.clone()

    def eps(self, x_t, t):
        ab = self.s.alpha_bar[t]
        return (x_t - ab.sqrt() * self.x0) / (1 - ab).sqrt()


def test_ddim_step_is_exact_for_an_oracle():
    s = Schedule.linear(50)
    x0 = _data(4, 3)
    eps = _data(4, 3, seed=11)
    xT = s.q_sample(x0, s.n_steps - 1, eps=eps)
    out, tr = ddim_sample(_Oracle(x0, s), s, 4, x_T=xT, return_trajectory=True)
    torch.testing.assert_close(out, x0)
    # every intermediate iterate is q_sample(x0, t, same eps): DDIM keeps the noise direction
    for t, xt in zip(tr["t"].tolist(), tr["x"]):
        torch.testing.assert_close(xt, s.q_sample(x0, t, eps=eps))


def test_ddpm_marginals_for_a_single_point():
    """With N = 1 the ancestral sampler's iterates follow q(x_t | x_1) exactly."""
    s = Schedule.linear(100)
    x = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    den = MemorizedDenoiser(x, s)
    M = 8000
    out, tr = ddpm_sample(den, s, M, generator=torch.Generator().manual_seed(12), return_trajectory=True)
    torch.testing.assert_close(out, x.expand(M, 2), rtol=0, atol=1e-12)
    for t in (70, 30, 5):
        xt = tr["x"][s.n_steps - 1 - t]
        assert int(tr["t"][s.n_steps - 1 - t]) == t
        ab = float(s.alpha_bar[t])
        np.testing.assert_allclose(xt.mean(0).numpy(), math.sqrt(ab) * x[0].numpy(), atol=5 * math.sqrt((1 - ab) / M))
        np.testing.assert_allclose(xt.std(0).numpy(), math.sqrt(1 - ab), rtol=0.05)


@pytest.mark.parametrize("schedule", [Schedule.linear(), Schedule.cosine(200)])
def test_samplers_with_closed_form_return_training_points(schedule):
    # points well separated relative to the smallest noise level (0.01-0.016): min distance 0.28
    x = 3 * _data(15, 2, seed=13)
    den = MemorizedDenoiser(x, schedule)
    for sampler in (ddim_sample, ddpm_sample):
        out = sampler(den, schedule, 300, generator=torch.Generator().manual_seed(14))
        d1 = torch.cdist(out, x).min(1).values
        assert float(d1.max()) < 1e-6
    out = ddim_sample(den, schedule, 50, generator=torch.Generator().manual_seed(15), init="standard", steps=40)
    assert float(torch.cdist(out, x).min(1).values.max()) < 1e-6


def test_memorized_sampler_frequencies_are_uniform():
    s = Schedule.linear()
    x = _data(10, 2, seed=16)
    den = MemorizedDenoiser(x, s)
    out = ddpm_sample(den, s, 3000, generator=torch.Generator().manual_seed(17))
    idx = torch.cdist(out, x).argmin(1)
    counts = torch.bincount(idx, minlength=10).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3
    # the chi-square test has power: a sampler that always starts near point 0 fails it
    x_T = s.q_sample(x[:1].expand(3000, 2), s.n_steps - 1, generator=torch.Generator().manual_seed(18))
    out = ddim_sample(den, s, 3000, x_T=x_T)
    counts = torch.bincount(torch.cdist(out, x).argmin(1), minlength=10).numpy()
    assert stats.chisquare(counts).pvalue < 1e-6


def test_commitment_step():
    s = Schedule.linear()
    x = _data(8, 2, seed=19)
    den = MemorizedDenoiser(x, s)
    out, tr = ddim_sample(den, s, 64, generator=torch.Generator().manual_seed(20), return_trajectory=True)
    c = commitment_step(den, tr, threshold=0.9)
    assert c.shape == (64,) and int(c.min()) >= 0 and int(c.max()) <= 199
    # definition: from the commitment level on, the final point's weight stays above 0.9 ...
    target = torch.cdist(out, x).argmin(1)
    for j in range(0, 64, 9):
        t = int(c[j])
        for tt in (t, max(t - 7, 0), 0):
            w = den.weights(tr["x"][199 - tt][j:j + 1], tt)[0, target[j]]
            assert float(w) > 0.9
        # ... and one level earlier it was not
        if t < 199:
            assert float(den.weights(tr["x"][199 - t - 1][j:j + 1], t + 1)[0, target[j]]) <= 0.9


def test_sampler_bad_input():
    s = Schedule.linear(20)
    den = MemorizedDenoiser(_data(4, 2), s)
    with pytest.raises(ValueError, match="n"):
        ddim_sample(den, s, 0)
    with pytest.raises(ValueError, match="x_T"):
        ddim_sample(den, s, 3, x_T=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="init"):
        ddim_sample(den, s, 3, init="zeros")
    with pytest.raises(ValueError, match="steps"):
        ddpm_sample(den, s, 3, steps=0)
    with pytest.raises(ValueError, match="steps"):
        ddpm_sample(den, s, 3, steps=21)
    with pytest.raises(TypeError, match="schedule"):
        ddim_sample(den, "linear", 3)
    with pytest.raises(TypeError, match="denoiser"):
        ddim_sample(object(), s, 3)


def test_denoiser_and_schedule_bad_input():
    s = Schedule.linear(20)
    den = MemorizedDenoiser(_data(4, 2), s)
    x = torch.zeros(3, 2, dtype=torch.float64)
    for bad in (-1, 20, 1000):
        with pytest.raises(ValueError, match=r"t: must be an integer in \[0, 19\]"):
            den.denoise(x, bad)
    with pytest.raises(TypeError, match="t"):
        den.denoise(x, 1.5)
    with pytest.raises(ValueError, match=r"x_t: expected shape \[B, 2\]"):
        den.denoise(torch.zeros(3, 3), 5)
    with pytest.raises(ValueError, match="x_t"):
        den.eps(torch.zeros(3), 5)
    with pytest.raises(ValueError, match="x_train: the training set is empty"):
        MemorizedDenoiser(torch.zeros(0, 2), s)
    with pytest.raises(ValueError, match="x_train"):
        MemorizedDenoiser(torch.tensor([[float("nan"), 0.0]]), s)
    with pytest.raises(ValueError, match="n_steps"):
        Schedule.linear(0)
    with pytest.raises(ValueError, match="n_steps"):
        Schedule.cosine(-3)
    with pytest.raises(ValueError, match="beta"):
        Schedule.linear(10, beta_start=0.0)
    with pytest.raises(ValueError, match="betas"):
        Schedule([0.1, 1.5])
    with pytest.raises(ValueError, match="t"):
        s.q_sample(x, torch.tensor([0, 5, 30]))


# ------------------------------------------------------------------------------- MLP training
def test_train_denoiser_loss_decreases_and_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPRIOR_CACHE", str(tmp_path))
    s = Schedule.linear(50)
    x = _data(8, 2, seed=21)
    torch.set_num_threads(2)
    kw = dict(steps=240, batch_size=64, hidden=32, depth=2, log_every=24, seed=3)
    m = train_denoiser(x, s, **kw)  # threads=1 during training ...
    assert torch.get_num_threads() == 2  # ... and the caller's setting restored
    torch.set_num_threads(1)
    assert not m.from_cache
    loss = m.history["loss"]
    assert len(loss) == 10 and np.mean(loss[-3:]) < np.mean(loss[:3])
    # on fresh draws: closed form (the optimum) <= trained net < untrained net
    init = MLPDenoiser(2, s, hidden=32, depth=2, x_train=x)
    ev = lambda d: float(denoising_loss(d, x, s, t=range(0, 50, 5), n=4000,  # noqa: E731
                                        generator=torch.Generator().manual_seed(0), target="eps").mean())
    l_opt, l_net, l_init = ev(MemorizedDenoiser(x, s)), ev(m), ev(init)
    assert l_opt < l_net < 0.9 * l_init, (l_opt, l_net, l_init)
    files = list(tmp_path.glob("*"))
    assert len(files) == 1 and files[0].suffix == ".pt"  # no temporary leftovers
    m2 = train_denoiser(x, s, **kw)
    assert m2.from_cache and m2.history == m.history
    xt = _data(5, 2, seed=22)
    torch.testing.assert_close(m2.denoise(xt, 10), m.denoise(xt, 10))
    # same seed, no cache: the same network (reproducible); another seed: a different one
    kw.update(steps=10, log_every=5)
    a = train_denoiser(x, s, cache=False, **kw)
    b = train_denoiser(x, s, cache=False, **kw)
    torch.testing.assert_close(a.denoise(xt, 10), b.denoise(xt, 10), rtol=0, atol=0)
    c = train_denoiser(x, s, cache=False, **{**kw, "seed": 4})
    assert not torch.allclose(c.denoise(xt, 10), a.denoise(xt, 10))
    # a corrupt cache file is replaced, not trusted
    path = tmp_path / "custom.pt"
    path.write_bytes(b"garbage")
    d = train_denoiser(x, s, cache_path=path, **kw)
    assert not d.from_cache
    torch.testing.assert_close(d.denoise(xt, 10), a.denoise(xt, 10))
    assert train_denoiser(x, s, cache_path=path, **kw).from_cache


def test_mlp_denoiser_interface():
    s = Schedule.linear(30)
    x = _data(6, 3)
    m = MLPDenoiser(3, s, hidden=16, depth=1, x_train=x)
    xt = _data(4, 3, seed=23).requires_grad_(True)
    out = m.denoise(xt, 7)
    assert out.shape == (4, 3) and out.dtype == torch.float64
    out.sum().backward()
    assert xt.grad is not None and torch.isfinite(xt.grad).all()
    ab = s.alpha_bar[7]
    with torch.no_grad():
        torch.testing.assert_close(ab.sqrt() * m.denoise(xt, 7) + (1 - ab).sqrt() * m.eps(xt, 7), xt.detach())
    # the sampler starts from the stored training set's terminal marginal
    y = ddim_sample(m, s, 5, generator=torch.Generator().manual_seed(0))
    assert y.shape == (5, 3) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="t"):
        m.denoise(xt, 30)
    with pytest.raises(ValueError, match="x_t"):
        m.denoise(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="x_train"):
        MLPDenoiser(2, s, x_train=x)


def test_denoising_loss_closed_form_is_optimal():
    s = Schedule.linear(40)
    x = _data(6, 2, seed=24)
    den = MemorizedDenoiser(x, s)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    l0 = denoising_loss(den, x, s, n=3000, generator=g())
    assert l0.shape == (40,) and torch.all(l0 >= 0)
    # any perturbation of the optimum increases the loss: paired comparison on the same draws
    e0 = denoising_loss(den, x, s, n=3000, generator=g(), reduction="none")
    assert e0.shape == (40, 3000)
    torch.testing.assert_close(e0.mean(1), l0)
    for scale in (1.1, 0.9):
        class Shrunk:
            dim, dtype = 2, torch.float64

            def denoise(self, xt, t, scale=scale):
                return scale * den.denoise(xt, t)

            def eps(self, xt, t):
                return den.eps(xt, t)
        diff = denoising_loss(Shrunk(), x, s, n=3000, generator=g(), reduction="none") - e0  # [40, 3000]
        z = diff.mean(1) / (diff.std(1) / math.sqrt(3000))
        assert torch.all(z > -3)  # never significantly better at any level
        z_all = diff.mean() / (diff.mean(0).std() / math.sqrt(3000))
        assert z_all > 5  # and clearly worse overall
    # at high noise the error tends to the spread of the data about its mean; at low noise to 0
    assert float(l0[0]) < 1e-3
    with pytest.raises(ValueError, match="target"):
        denoising_loss(den, x, s, target="v")
    with pytest.raises(ValueError, match="x_train"):
        denoising_loss(den, _data(4, 3), s)


def test_train_denoiser_bad_input():
    s = Schedule.linear(10)
    with pytest.raises(ValueError, match="x_train: the training set is empty"):
        train_denoiser(torch.zeros(0, 2), s)
    for kw, name in ((dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(lr=-1.0), "lr"),
                     (dict(ema_decay=1.0), "ema_decay"), (dict(threads=0), "threads")):
        with pytest.raises(ValueError, match=name):
            train_denoiser(_data(4, 2), s, cache=False, **kw)


# ------------------------------------------------------------------------------ figures, app
def test_noising_app_and_twin_draw_the_closed_form_by_hand():
    from memprior.plots import figure_bytes
    from memprior.plots.diffusion import twin_noising
    from memprior.widgets import callback_latencies
    from memprior.widgets.diffusion import noising_app

    x = np.array([-1.5, -0.4, 0.4, 1.2, 2.5])
    app = noising_app(x)
    lat = callback_latencies(app, [dict(t=t, schedule=s) for t in (0, 60, 199)
                                   for s in ("linear (paper)", "cosine")])
    assert lat.shape == (6,) and np.all(np.isfinite(lat))

    def reference(ab, grid):
        """Noised density (1/N) Σ N(x; √ᾱ x_n, 1 − ᾱ), the points √ᾱ x_n, and Tweedie's E[x0 | x_t] in numpy."""
        logk = -(grid[:, None] - np.sqrt(ab) * x[None]) ** 2 / (2 * (1 - ab))
        w = np.exp(logk - logk.max(1, keepdims=True))
        dens = np.exp(logk).mean(1) / np.sqrt(2 * np.pi * (1 - ab))
        return dens, np.sqrt(ab) * x, (w / w.sum(1, keepdims=True)) @ x

    # the schedules by hand: cosine ᾱ_t = f(t + 1) / f(0), f(u) = cos²((u/T + 0.008)/1.008 · π/2); linear βs
    f = np.cos((np.arange(201) / 200 + 0.008) / 1.008 * np.pi / 2) ** 2
    ab_cos = f[1:] / f[0]
    ab_lin = np.cumprod(1 - np.linspace(1e-4, 0.02, 200))
    for t, sched, ab in ((10, "cosine", ab_cos), (60, "linear (paper)", ab_lin)):
        app.update(t=t, schedule=sched)
        grid = np.asarray(app.figure.data[0].x, dtype=float)
        dens, pts, x0 = reference(ab[t], grid)
        np.testing.assert_allclose(np.asarray(app.figure.data[0].y, float), dens, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(app.figure.data[1].x, float), pts, rtol=1e-9)
        np.testing.assert_allclose(np.asarray(app.figure.data[2].y, float), x0, rtol=1e-9, atol=1e-12)
        assert f"ᾱ_t = {ab[t]:.3f}" in app.figure.layout.title.text
    grid = np.linspace(-4, 5, 200)
    fig = twin_noising(MemorizedDenoiser(torch.as_tensor(x)[:, None], Schedule.linear()), [0, 50, 199], grid)
    assert len(fig.frames) == 3 and figure_bytes(fig) < 1_500_000
    for frame, t in zip(fig.frames, (0, 50, 199)):
        dens, pts, x0 = reference(ab_lin[t], grid)
        for tr, ref in ((frame.data[0], dens), (frame.data[2], x0)):  # float32 frames
            np.testing.assert_allclose(np.asarray(tr.y, float), ref, rtol=2e-6, atol=2e-6 * np.abs(ref).max())
        np.testing.assert_allclose(np.asarray(frame.data[1].x, float), pts, rtol=2e-6)

"""Tests for memprior.mixture: closed-form identities, references, bad input, extremes."""
import math

import pytest
import torch

from memprior.mixture import GaussianMixturePrior, gaussian_logits, pairwise_sq_dists

torch.set_num_threads(1)
D64 = torch.float64


def _train(n=7, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=D64)


def test_log_prob_matches_torch_distributions():
    xt = _train(6, 3)
    sigma = 0.4
    prior = GaussianMixturePrior(xt, sigma)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=torch.full((6,), 1 / 6, dtype=D64)),
        torch.distributions.Independent(torch.distributions.Normal(xt, sigma), 1),
    )
    x = _train(11, 3, seed=1) * 2
    torch.testing.assert_close(prior.log_prob(x), mix.log_prob(x), rtol=1e-12, atol=1e-12)


def test_log_prob_integrates_to_one_1d_and_2d():
    prior1 = GaussianMixturePrior(torch.tensor([[-1.0], [0.3], [2.0]], dtype=D64), 0.25)
    g = torch.linspace(-4, 5, 20001, dtype=D64)
    mass = torch.trapezoid(prior1.log_prob(g[:, None]).exp(), g)
    assert abs(float(mass) - 1) < 1e-8
    prior2 = GaussianMixturePrior(_train(4, 2), 0.5)
    a = torch.linspace(-6, 6, 401, dtype=D64)
    A, B = torch.meshgrid(a, a, indexing="ij")
    dens = prior2.log_prob(torch.stack([A.reshape(-1), B.reshape(-1)], 1)).exp().reshape(401, 401)
    mass2 = torch.trapezoid(torch.trapezoid(dens, a, dim=1), a)
    assert abs(float(mass2) - 1) < 1e-6


def test_score_equals_autograd_of_log_prob():
    prior = GaussianMixturePrior(_train(9, 2), 0.3)
    x = _train(13, 2, seed=3).requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.log_prob(x).sum(), x)
    torch.testing.assert_close(prior.score(x.detach()), grad, rtol=1e-10, atol=1e-10)


def test_tweedie_denoiser_identity_and_responsibilities():
    xt = _train(8, 2)
    prior = GaussianMixturePrior(xt, 0.7)
    x = _train(5, 2, seed=4)
    w = prior.responsibilities(x)
    torch.testing.assert_close(w.sum(1), torch.ones(5, dtype=D64))
    torch.testing.assert_close(prior.denoise(x), x + 0.7 ** 2 * prior.score(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(prior.denoise(x), w @ xt)
    # Tweedie by Monte Carlo: E[x0 | x] for x0 ~ uniform over x_train, x = x0 + sigma eps
    logw = -((x[:, None] - xt[None]) ** 2).sum(-1) / (2 * 0.49)
    torch.testing.assert_close(torch.softmax(logw, 1), w)


def test_denoiser_limits():
    xt = _train(5, 2)
    x = _train(3, 2, seed=5)
    # small sigma: nearest training point
    near = xt[torch.cdist(x, xt).argmin(1)]
    torch.testing.assert_close(GaussianMixturePrior(xt, 1e-3).denoise(x), near)
    # large sigma: the training mean
    torch.testing.assert_close(GaussianMixturePrior(xt, 1e4).denoise(x), xt.mean(0).expand(3, 2), rtol=0, atol=1e-6)


def test_sampling_moments():
    xt = _train(5, 2)
    sigma = 0.6
    prior = GaussianMixturePrior(xt, sigma)
    n = 200_000
    s = prior.sample(n, generator=torch.Generator().manual_seed(0))
    assert s.shape == (n, 2) and s.dtype == D64
    mean = xt.mean(0)
    cov = torch.cov(xt.T, correction=0) + sigma ** 2 * torch.eye(2, dtype=D64)
    se = (torch.diagonal(cov) / n).sqrt()
    assert ((s.mean(0) - mean).abs() < 5 * se).all()
    torch.testing.assert_close(torch.cov(s.T), cov, rtol=0, atol=0.03)
    # reproducible
    s2 = prior.sample(10, generator=torch.Generator().manual_seed(1))
    s3 = prior.sample(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s2, s3)


def test_pairwise_sq_dists_chunked_matches_direct():
    x = _train(3000, 2, seed=1)
    c = _train(800, 2, seed=2)
    ref = torch.cdist(x, c) ** 2
    torch.testing.assert_close(pairwise_sq_dists(x, c), ref, rtol=1e-10, atol=1e-10)


def test_gaussian_logits_closed_form_and_far_from_the_origin():
    from scipy import stats

    x, c = _train(6, 3, seed=3), _train(4, 3, seed=4)
    var = 0.7
    ref = torch.tensor([[stats.multivariate_normal(cn.numpy(), var * torch.eye(3, dtype=torch.float64).numpy()).logpdf(xb.numpy())
                         for cn in c] for xb in x], dtype=torch.float64)
    torch.testing.assert_close(gaussian_logits(x, c, var, normalized=True), ref, rtol=1e-12, atol=1e-12)
    # unnormalized: the same up to the constant; a 0-d tensor variance gives the same numbers
    const = -1.5 * math.log(2 * math.pi * var)
    torch.testing.assert_close(gaussian_logits(x, c, var), ref - const, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gaussian_logits(x, c, torch.tensor(var, dtype=torch.float64), normalized=True), ref)
    # translation invariance at 1e6 from the origin, where |x|^2 - 2 x.c + |c|^2 would cancel 1e12-sized terms
    far = gaussian_logits(x + 1e6, c + 1e6, var)
    assert float((far - (ref - const)).abs().max()) < 1e-8


def test_float32_supported():
    prior = GaussianMixturePrior(_train(4, 2).float(), 0.5)
    x = torch.zeros(3, 2)
    assert prior.log_prob(x).dtype == torch.float32
    assert prior.sample(4).dtype == torch.float32


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        GaussianMixturePrior(_train(), sigma)


def test_bad_sigma_type():
    with pytest.raises(TypeError, match="sigma"):
        GaussianMixturePrior(_train(), "0.5")


def test_bad_training_set():
    with pytest.raises(ValueError, match="x_train.*empty"):
        GaussianMixturePrior(torch.zeros(0, 2), 0.5)
    with pytest.raises(ValueError, match="x_train"):
        GaussianMixturePrior(torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="x_train"):
        GaussianMixturePrior(torch.tensor([[0.0, float("nan")]]), 0.5)


def test_bad_query():
    prior = GaussianMixturePrior(_train(4, 2), 0.5)
    with pytest.raises(ValueError, match=r"x: expected shape \[B, 2\]"):
        prior.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="x"):
        prior.score(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="n"):
        prior.sample(-1)
    with pytest.raises(TypeError, match="n"):
        prior.sample(2.5)


@pytest.mark.parametrize("n_train", [1, 10_000])
def test_extremes_finite(n_train):
    g = torch.Generator().manual_seed(0)
    xt = torch.rand(n_train, 2, generator=g, dtype=D64) * 6 - 3
    prior = GaussianMixturePrior(xt, 1e-4)
    x = torch.cat([xt[:3], torch.tensor([[50.0, -40.0], [0.123, 0.456]], dtype=D64)])
    for out in (prior.log_prob(x), prior.score(x), prior.denoise(x), prior.responsibilities(x), prior.sample(5)):
        assert torch.isfinite(out).all()
    # at a training point with tiny sigma the denoiser returns that point
    torch.testing.assert_close(prior.denoise(xt[:1]), xt[:1])
    # log density at a training point: -log N - d/2 log(2 pi sigma^2) (other components negligible)
    if n_train == 1:
        expected = -math.log(2 * math.pi * 1e-8)
        assert abs(float(prior.log_prob(xt[:1])[0]) - expected) < 1e-9

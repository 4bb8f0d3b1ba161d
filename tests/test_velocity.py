"""Tests for memprior.velocity: KL basis, random fields, model families, conversions."""
import math

import numpy as np
import pytest
import torch

from memprior import velocity as V


# ---------------------------------------------------------------- conversions
def test_v_m_roundtrip_and_values():
    v = torch.tensor([1.5, 2.0, 3.0], dtype=torch.float64)
    m = V.v_to_m(v)
    assert torch.allclose(m, torch.tensor([1 / 2.25, 0.25, 1 / 9.0], dtype=torch.float64))
    assert torch.allclose(V.m_to_v(m), v)
    assert V.v_to_m(np.array([2.0])).dtype == torch.float64


@pytest.mark.parametrize("bad", [[1.0, 0.0], [1.0, -2.0], [float("nan")], [float("inf")]])
def test_conversions_reject_bad(bad):
    with pytest.raises(ValueError, match="v"):
        V.v_to_m(bad)
    with pytest.raises(ValueError, match="m"):
        V.m_to_v(bad)


# ---------------------------------------------------------------- KL basis
def test_basis_paper_defaults_and_index_range():
    b = V.KLBasis(32, 32)
    assert b.d == 100 and b.phi.shape == (100, 32, 32) and b.lam.shape == (100,)
    # paper: i1, i2 in 1..10
    assert int(b.index.min()) == 1 and int(b.index.max()) == 10
    i1, i2 = 3, 7
    a = (i1 - 1) * 10 + (i2 - 1)
    assert tuple(b.index[a].tolist()) == (i1, i2)
    lam = (math.pi ** 2 * ((i1 + 0.5) ** 2 + (i2 + 0.5) ** 2)) ** (-1.1 / 2)
    assert math.isclose(float(b.lam[a]), lam, rel_tol=1e-12)
    # phi at the cell centre of node (2, 5)
    x1, x2 = 2.5 / 32, 5.5 / 32
    ref = 2 * math.cos(math.pi * (i1 + 0.5) * x1) * math.cos(math.pi * (i2 + 0.5) * x2)
    assert math.isclose(float(b.phi[a, 2, 5]), ref, rel_tol=1e-12, abs_tol=1e-14)
    b0 = V.KLBasis(16, 16, K=4, start=0)
    assert int(b0.index.min()) == 0 and int(b0.index.max()) == 3


@pytest.mark.parametrize("nx,nz,K,start", [(32, 32, 10, 1), (11, 20, 10, 1), (24, 17, 5, 0), (12, 12, 12, 0)])
def test_basis_orthonormal_on_grid(nx, nz, K, start):
    b = V.KLBasis(nx, nz, K=K, start=start)
    flat = b.phi.reshape(b.d, -1)
    gram = flat @ flat.T / (nx * nz)
    assert torch.allclose(gram, torch.eye(b.d, dtype=torch.float64), atol=1e-12)


def test_project_recovers_coefficients_and_batches():
    b = V.KLBasis(24, 20, K=6)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(7, b.d, dtype=torch.float64, generator=g)
    m = b.coeffs_to_m(z, m_bar=0.3, sigma_m=0.05)
    assert m.shape == (7, 24, 20)
    zz = b.project(m, m_bar=0.3, sigma_m=0.05)
    assert torch.allclose(zz, z, atol=1e-10)
    # single model, and reconstruct == coeffs_to_m
    assert torch.allclose(b.project(m[3], m_bar=0.3, sigma_m=0.05), z[3], atol=1e-10)
    assert torch.allclose(b.reconstruct(z[0]), b.coeffs_to_m(z[0]))
    # linear map columns
    cols = b.dm_dz(0.05)
    assert torch.allclose(m[2] - 0.3, torch.einsum("a,axz->xz", z[2], cols), atol=1e-12)


def test_project_is_least_squares():
    # projection residual of an arbitrary field is orthogonal to every basis function
    b = V.KLBasis(20, 20, K=5)
    g = torch.Generator().manual_seed(2)
    m = 0.25 + 0.01 * torch.randn(20, 20, dtype=torch.float64, generator=g)
    r = m - b.reconstruct(b.project(m))
    assert torch.allclose(b.phi.reshape(b.d, -1) @ r.reshape(-1), torch.zeros(b.d, dtype=torch.float64),
                          atol=1e-12)
    # and it does not increase when we perturb the coefficients
    z = b.project(m)
    best = (r ** 2).sum()
    for k in range(5):
        dz = 0.1 * torch.randn(b.d, dtype=torch.float64, generator=g)
        assert ((m - b.reconstruct(z + dz)) ** 2).sum() > best


def test_basis_bad_input():
    with pytest.raises(ValueError, match="mismatch"):
        V.KLBasis(8, 32, K=10)          # grid too small for K modes
    with pytest.raises(ValueError, match="K"):
        V.KLBasis(32, 32, K=0)
    with pytest.raises(TypeError, match="K"):
        V.KLBasis(32, 32, K=2.5)
    with pytest.raises(ValueError, match="start"):
        V.KLBasis(32, 32, K=4, start=2)
    with pytest.raises(ValueError, match="decay"):
        V.KLBasis(32, 32, K=4, decay=-1.0)
    b = V.KLBasis(16, 16, K=4)
    with pytest.raises(ValueError, match="m: .*mismatch"):
        b.project(torch.zeros(16, 15, dtype=torch.float64) + 0.25)
    with pytest.raises(ValueError, match="z"):
        b.coeffs_to_m(torch.zeros(15))
    with pytest.raises(ValueError, match="z"):
        b.coeffs_to_m(torch.full((16,), float("nan")))
    with pytest.raises(ValueError, match="sigma_m"):
        b.coeffs_to_m(torch.zeros(16), sigma_m=0.0)
    with pytest.raises(ValueError, match="m_bar"):
        b.project(torch.full((16, 16), 0.25), m_bar=-1.0)


# ---------------------------------------------------------------- random fields
def test_grf_seed_reproducible_and_shape():
    a = V.grf(3, 16, 12, generator=torch.Generator().manual_seed(5))
    b = V.grf(3, 16, 12, generator=torch.Generator().manual_seed(5))
    c = V.grf(3, 16, 12, generator=torch.Generator().manual_seed(6))
    assert a.shape == (3, 16, 12) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.isfinite(a).all()


def test_grf_spectrum_matches_formula():
    n, nx = 400, 16
    f = V.grf(n, nx, nx, alpha=3.0, tau=5.0, generator=torch.Generator().manual_seed(0))
    power = (torch.fft.fft2(f).abs() ** 2).mean(0)
    amp = V.grf_amplitude(nx, nx, 3.0, 5.0)
    assert power[0, 0] < 1e-20  # zero-mean fields
    # ratio of empirical power to (4 pi^2 |k|^2 + tau^2)^(-alpha) is flat (one constant)
    mask = amp > 0
    ratio = power[mask] / amp[mask] ** 2
    c = ratio.mean()
    # each mode's power is a mean of 400 chi-square(2)/2-type variables: ~ +-15 % at 3 sd
    assert ((ratio / c - 1).abs() < 0.25).all()
    # ... and the formula's decay is reproduced between |k| = 1 and |k| = 4
    p1 = power[1, 0] + power[0, 1]
    p4 = power[4, 0] + power[0, 4]
    pred = ((4 * math.pi ** 2 + 25) / (4 * math.pi ** 2 * 16 + 25)) ** 3
    assert abs(float(p4 / p1) / pred - 1) < 0.3


def test_grf_periodic():
    f = V.grf(200, 24, 24, generator=torch.Generator().manual_seed(3))
    # the field is stationary on the torus: the jump across the wrap-around seam has
    # the same statistics as an interior neighbour difference
    seam = ((f[:, 0, :] - f[:, -1, :]) ** 2).mean()
    inner = ((f[:, 1:, :] - f[:, :-1, :]) ** 2).mean()
    assert abs(float(seam / inner) - 1) < 0.15
    # pointwise variance normalized to 1
    assert abs(float(f.var()) - 1) < 0.1
    # smoothness grows with alpha: relative roughness falls
    rough = lambda a: float(((torch.diff(V.grf(50, 24, 24, alpha=a, generator=torch.Generator().manual_seed(0)),
                                         dim=1)) ** 2).mean())
    assert rough(4.0) < rough(3.0) < rough(2.0)


def test_grf_bad_input():
    with pytest.raises(ValueError, match="n"):
        V.grf(0, 8, 8)
    with pytest.raises(ValueError, match="alpha"):
        V.grf(1, 8, 8, alpha=0.0)
    with pytest.raises(ValueError, match="tau"):
        V.grf(1, 8, 8, tau=-1.0)
    with pytest.raises(TypeError, match="generator"):
        V.grf(1, 8, 8, generator=0)


def test_rescale_range():
    f = V.grf(4, 16, 16, generator=torch.Generator().manual_seed(0))
    v = V.rescale(f)
    assert torch.allclose(v.amin(dim=(1, 2)), torch.full((4,), 1.5, dtype=torch.float64))
    assert torch.allclose(v.amax(dim=(1, 2)), torch.full((4,), 3.0, dtype=torch.float64))
    # affine per field: correlation with the input is exactly 1
    a, b = f[1].reshape(-1), v[1].reshape(-1)
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 1 - 1e-12
    const = V.rescale(torch.ones(8, 8), 1.0, 2.0)
    assert torch.allclose(const, torch.full((8, 8), 1.5))
    with pytest.raises(ValueError, match="vmax"):
        V.rescale(f, 2.0, 1.0)
    with pytest.raises(ValueError, match="fields"):
        V.rescale(torch.ones(5))


# ---------------------------------------------------------------- model families
def test_lens_shape_and_values():
    nx, nz, dx = 33, 41, 0.05
    v = V.gaussian_lens(nx, nz, dx, v0=2.0, dv=-0.4, width=0.2)
    assert v.shape == (nx, nz)
    i, j = np.unravel_index(int(torch.argmin(v)), v.shape)
    assert (i, j) == (16, 20)  # centre node (0.8 km, 1.0 km)
    assert math.isclose(float(v[16, 20]), 1.6, rel_tol=1e-12)
    # one width away along x: 2 - 0.4 exp(-1/2)
    assert math.isclose(float(v[20, 20]), 2.0 - 0.4 * math.exp(-0.5), rel_tol=1e-12)
    assert float(v.max()) <= 2.0 and float(v[0, 0]) > 1.99
    v2 = V.gaussian_lens(nx, nz, dx, center=(0.2, 0.3), width=0.1, dv=0.5)
    assert math.isclose(float(v2[4, 6]), 2.5, rel_tol=1e-12)
    with pytest.raises(ValueError, match="dv"):
        V.gaussian_lens(8, 8, 0.1, v0=1.0, dv=-1.5)
    with pytest.raises(ValueError, match="center"):
        V.gaussian_lens(8, 8, 0.1, center=(5.0, 0.1))
    with pytest.raises(ValueError, match="dx"):
        V.gaussian_lens(8, 8, 0.0)


def test_layered_values():
    v = V.layered(10, 10, 0.1, velocities=[1.5, 2.0, 2.5], depths=[0.25, 0.55])
    assert v.shape == (10, 10)
    # depth j*0.1: 0,0.1,0.2 -> layer 0; 0.3..0.5 -> layer 1; 0.6.. -> layer 2
    assert v[4].tolist() == [1.5] * 3 + [2.0] * 3 + [2.5] * 4
    assert torch.equal(v[0], v[9])  # laterally invariant
    with pytest.raises(ValueError, match="depths"):
        V.layered(10, 10, 0.1, velocities=[1.5, 2.0], depths=[0.2, 0.4])
    with pytest.raises(ValueError, match="depths"):
        V.layered(10, 10, 0.1, velocities=[1.5, 2.0, 3.0], depths=[0.4, 0.2])
    with pytest.raises(ValueError, match="velocities"):
        V.layered(10, 10, 0.1, velocities=[1.5, -2.0], depths=[0.2])


def test_faulted_offsets_interfaces():
    nx, nz, dx = 40, 40, 0.05
    v = V.faulted(nx, nz, dx, velocities=(1.8, 2.6), depths=(0.8,), throw=0.3, fault_x=1.0, dip=90.0)
    # left of the fault the interface is at 0.8 km (j = 16), right at 1.1 km (j = 22)
    left, right = v[5], v[35]
    assert int((left == 1.8).sum()) == 16
    assert int((right == 1.8).sum()) == 22
    # zero throw gives the layered model
    assert torch.equal(V.faulted(nx, nz, dx, (1.8, 2.6), (0.8,), throw=0.0),
                       V.layered(nx, nz, dx, (1.8, 2.6), (0.8,)))
    # a dipping fault: the boundary moves right with depth
    vd = V.faulted(nx, nz, dx, (1.8, 2.6), (0.8,), throw=0.3, fault_x=0.5, dip=45.0)
    assert vd[35, 18] == 1.8 and vd[15, 18] == 2.6  # z = 0.9 km: right of x = 1.4 km is hanging wall
    first = lambda j: int(torch.nonzero(vd[:, j] == 1.8)[0])
    assert first(17) == 28 and first(20) == 31  # fault trace x = 0.5 + z
    with pytest.raises(ValueError, match="dip"):
        V.faulted(nx, nz, dx, dip=120.0)
    with pytest.raises(ValueError, match="throw"):
        V.faulted(nx, nz, dx, throw=-0.1)


def test_elliptical_lens_widths():
    """``width=(sx, sz)``: the closed form with separate widths; equal widths give the round lens exactly."""
    x = np.arange(20) * 0.1
    v = V.gaussian_lens(20, 20, 0.1, v0=2.0, dv=-0.5, width=(0.25, 0.15)).numpy()
    ref = 2.0 - 0.5 * np.exp(-((x[:, None] - 0.95) / 0.25) ** 2 / 2 - ((x[None, :] - 0.95) / 0.15) ** 2 / 2)
    assert np.allclose(v, ref, rtol=0, atol=1e-12)
    assert torch.equal(V.gaussian_lens(20, 20, 0.1, width=(0.3, 0.3)), V.gaussian_lens(20, 20, 0.1, width=0.3))
    with pytest.raises(ValueError, match="width"):
        V.gaussian_lens(20, 20, 0.1, width=(0.3,))
    with pytest.raises(ValueError, match="width"):
        V.gaussian_lens(20, 20, 0.1, width=(0.3, 0.0))

"""Tests for memprior.experiments.wave (chapter 6): the chapter's claims, independent references
(bilinear interpolation, the Hankel function, least squares, direct misfits, adjoint pairings,
reciprocity symmetry, noise statistics), reproducibility from the seed and bad input."""
import math

import numpy as np
import pytest
from scipy.special import hankel1

from memprior import plots, velocity
from memprior.experiments import wave as W
from memprior.plots import wave as figs
from memprior.wave import Acquisition, Helmholtz2D

N, DX = 64, 2 / 64  # the chapter's grid


@pytest.fixture(scope="module")
def chapter_problem():
    solver = Helmholtz2D(N, N, DX, npml=10, cache_size=4)
    v = velocity.gaussian_lens(N, N, DX).numpy()
    acq = Acquisition.transmission(N, N, DX, n_src=5, n_rec=40)
    return solver, 1.0 / v ** 2, acq


@pytest.fixture(scope="module")
def ver():
    return W.verification()


@pytest.fixture(scope="module")
def fwi():
    return W.short_fwi()


# ----------------------------------------------------------------------------- solver properties
def test_solver_properties_claims_and_bilinear_reference(chapter_problem):
    solver, m, _ = chapter_problem
    p = W.solver_properties()
    assert p.unknowns == (N + 20) ** 2 == 7056
    assert p.asymmetry == 0 and p.non_hermitian > 1.0  # complex symmetric, not Hermitian
    assert p.reciprocity < 1e-10
    assert p.fill_ratio > 1.5 and p.fill_ratio == pytest.approx(p.nnz_default / p.nnz_ordered)
    # points per wavelength from the slowest velocity, re-derived with numpy
    assert p.ppw == pytest.approx(float(np.sqrt(1 / m).min()) / (4.0 * DX), rel=1e-12)
    assert 12.5 < p.ppw < 13.0
    # the datum at b of a source at a is the bilinear interpolation of the wavefield of a at b
    u = solver.wavefield(m, 4.0, (0.41, 0.13))
    fx, fz = 1.52 / DX, 1.77 / DX
    i, j = int(fx), int(fz)
    tx, tz = fx - i, fz - j
    ref = ((1 - tx) * (1 - tz) * u[i, j] + tx * (1 - tz) * u[i + 1, j]
           + (1 - tx) * tz * u[i, j + 1] + tx * tz * u[i + 1, j + 1])
    assert abs(p.d_ab - ref) < 1e-12 * abs(ref)


# ----------------------------------------------------------------------------------- verification
def test_verification_chapter_claims(ver):
    e2, e4 = (lambda p: ver.error(2, p)), (lambda p: ver.error(4, p))
    assert e2(10) <= 0.19 and e2(16) <= 0.07 and e2(32) <= 0.02  # 5-point stencil
    assert e4(10) <= 0.02  # the 9-point cross at 10 points per wavelength
    assert -2.3 < ver.slope2 < -1.7 and -4.5 < ver.slope4 < -3.5  # second and fourth order
    assert e2(24) > 0.02 >= e2(32) and e4(6) > 0.02 >= e4(8)  # where each stencil crosses 2 %
    assert 3.2 < e2(16) / e2(32) < 4.8  # halving h divides the error by about 4
    assert ver.paper_ppw == pytest.approx(12.8089, abs=1e-4)
    assert ver.paper_err4 < 0.1 * ver.paper_err2 and 0.05 < ver.paper_err2 < 0.2
    assert ver.ppw2.dtype.kind == "i" and ver.ppw2.tolist() == [6, 8, 10, 16, 24, 32]


def test_verification_slopes_and_line_against_references(ver):
    for pp, ee, slope in ((ver.ppw2, ver.err2, ver.slope2), (ver.ppw4, ver.err4, ver.slope4)):
        x, y = np.log(pp.astype(float)), np.log(ee)
        ls = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()  # closed-form LS slope
        assert slope == pytest.approx(ls, rel=1e-10)
    # the analytic line is (i/4) H0^(1)(kr) with k = 2π / (ppw dx), dx = 10 m
    k = 2 * math.pi / (ver.line_ppw * 0.01)
    assert np.allclose(ver.line_g, 0.25j * hankel1(0, k * ver.line_r), rtol=1e-13, atol=0)
    assert np.allclose(np.diff(ver.line_r), 0.01)
    # the caption: amplitudes agree, the numerical phase lags more and more with distance
    lam = ver.line_ppw * 0.01
    ratio = ver.line_u / ver.line_g
    far = (ver.line_r >= lam) & (ver.line_r <= 3 * lam)
    assert np.all(np.abs(np.abs(ratio[far]) - 1) < 0.05)
    ph = np.unwrap(np.angle(ratio))
    at = lambda r: ph[np.argmin(np.abs(ver.line_r - r))]  # noqa: E731
    assert 0 < at(lam) < at(2 * lam) < at(3 * lam) and 2.5 < at(3 * lam) / at(lam) < 3.5


def test_verification_error_lookup_and_small_sweep():
    v = W.verification(ppw2=(8.0, 10.0), ppw4=(6, 8), line_ppw=8, paper_ppw=9.0)
    assert v.ppw2.dtype.kind == "f" and v.error(2, 10) == v.err2[1]
    with pytest.raises(ValueError, match="ppw"):
        v.error(2, 12)
    with pytest.raises(ValueError, match="order"):
        v.error(3, 8)


# --------------------------------------------------------------------------------- gradient check
def test_gradient_check_chapter_claims_and_direct_misfit(chapter_problem):
    solver, m_true, acq = chapter_problem
    chk = W.gradient_check()
    assert chk.max_rel_error < 1e-5 and chk.pixels.shape == (8, 2)
    assert np.array_equal(chk.adjoint, chk.grad[chk.pixels[:, 0], chk.pixels[:, 1]])
    # the misfit, recomputed from the forward map; the noise level and its statistics
    d = solver.forward(m_true, 4.0, acq)
    assert chk.sigma_d == pytest.approx(0.01 * np.abs(d).max(), rel=1e-14)
    assert 0.7 < np.mean(np.abs(chk.d_obs - d) ** 2) / chk.sigma_d ** 2 < 1.3
    phi = np.sum(np.abs(solver.forward(chk.m0, 4.0, acq) - chk.d_obs) ** 2) / chk.sigma_d ** 2
    assert chk.misfit == pytest.approx(phi, rel=1e-12)
    # a directional derivative along a smooth random direction, by central differences
    X, Z = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    dm = 0.01 * np.cos(0.13 * X + 0.3) * np.sin(0.07 * Z + 0.5)
    h = 1e-4
    fd = (np.sum(np.abs(solver.forward(chk.m0 + h * dm, 4.0, acq) - chk.d_obs) ** 2)
          - np.sum(np.abs(solver.forward(chk.m0 - h * dm, 4.0, acq) - chk.d_obs) ** 2)) / (2 * h * chk.sigma_d ** 2)
    assert fd == pytest.approx(np.sum(chk.grad * dm), rel=1e-6)


def test_gradient_check_reproducible_from_the_seed():
    kw = dict(n=20, dx=0.05, npml=5, n_src=2, n_rec=6, pixels=((3, 4),))
    a, b, c = W.gradient_check(**kw), W.gradient_check(**kw), W.gradient_check(seed=5, **kw)
    assert np.array_equal(a.d_obs, b.d_obs) and np.array_equal(a.grad, b.grad) and a.misfit == b.misfit
    assert not np.allclose(a.d_obs, c.d_obs)
    assert a.max_rel_error < 1e-5


# ---------------------------------------------------------------------------- sensitivity kernels
def test_sensitivity_kernels_claims_and_references():
    ker = W.sensitivity_kernels()
    f = ker.central_fraction
    assert f[0] < f[1] < f[2] and np.all((f > 0) & (f < 1))
    assert ker.kernels.shape == (3, N, N)
    # the central fraction, re-derived
    x = np.arange(N) * DX
    row = ker.kernels[1][:, N // 2]
    ref = (row[np.abs(x - 1.0) <= 0.25] ** 2).sum() / (row ** 2).sum()
    assert f[1] == pytest.approx(ref, rel=1e-12)
    # reciprocity: swapping source (top) and receiver (bottom) flips the kernel in depth
    K = ker.kernels[2]
    assert np.allclose(K, K[:, ::-1], rtol=0, atol=1e-8 * np.abs(K).max())
    # the kernel is Re of the Jacobian row: <K, dm> = Re(J dm)
    solver = Helmholtz2D(N, N, DX, npml=10)
    one = Acquisition(ker.source, ker.receiver)
    dm = np.random.default_rng(0).standard_normal((N, N))
    jdm = solver.jvp(np.full((N, N), 0.25), 4.0, one, dm)[0, 0]
    assert np.sum(ker.kernels[1] * dm) == pytest.approx(jdm.real, rel=1e-9)


# ------------------------------------------------------------------------------------- short FWI
def test_short_fwi_chapter_claims(fwi, chapter_problem):
    solver, m_true, acq = chapter_problem
    assert fwi.rel_error < 0.7 and fwi.misfit < 1.5 * fwi.expected and fwi.expected == 600
    assert 1.6 < fwi.v_min < 1.9  # the lens is found but not its full contrast
    assert fwi.v_inv[32, 32] < 1.9 and np.all(fwi.v_inv >= 1.4 - 1e-12) and np.all(fwi.v_inv <= 3.0 + 1e-12)
    assert fwi.nfev == len(fwi.history) == fwi.stage_end[-1] and np.all(np.diff(fwi.stage_end) > 0)
    stages = fwi.stages()
    assert len(stages) == 3 and all(s.min() < s[0] for s in stages)  # each stage lowers its misfit
    # the final misfit, recomputed from the forward map at the inverted model
    m_inv = 1 / fwi.v_inv ** 2
    phi = sum(np.sum(np.abs(solver.forward(m_inv, f, acq) - d) ** 2) / s ** 2
              for f, d, s in zip(fwi.freqs, fwi.d_obs, fwi.sigma_d))
    assert fwi.misfit == pytest.approx(phi, rel=1e-9)
    # the noise: sigma_d = 1 % of max |d| at each frequency
    for f, d, s in zip(fwi.freqs, fwi.d_obs, fwi.sigma_d):
        clean = solver.forward(m_true, f, acq)
        assert s == pytest.approx(0.01 * np.abs(clean).max(), rel=1e-14)
        assert 0.7 < np.mean(np.abs(d - clean) ** 2) / s ** 2 < 1.3
    assert np.allclose(fwi.v_true, np.sqrt(1 / m_true)) and np.all(fwi.v_start == 2.0)


def test_short_fwi_misfit_against_its_chi_square_distribution(fwi, chapter_problem):
    solver, m_true, acq = chapter_problem
    # misfit_true is the noise alone: recomputed from the forward map at the true model
    phi_true = sum(np.sum(np.abs(solver.forward(m_true, f, acq) - d) ** 2) / s ** 2
                   for f, d, s in zip(fwi.freqs, fwi.d_obs, fwi.sigma_d))
    assert fwi.misfit_true == pytest.approx(phi_true, rel=1e-9)
    fit, true = W.misfit_test(fwi.misfit, fwi.expected), W.misfit_test(fwi.misfit_true, fwi.expected)
    # the chapter's reading: the truth's misfit is ordinary noise, the inverted model's is not
    assert true.p_value > 0.05 and abs(true.z) < 2
    assert fit.p_value < 0.01 and fit.z > 2.5 and fwi.misfit > fwi.misfit_true  # the truth fits better


def test_misfit_test_against_scipy_chi2_and_simulated_noise():
    from scipy import stats
    for phi, n in ((671.0, 600), (609.9, 600), (3.0, 2), (0.0, 5), (150.0, 100)):
        t = W.misfit_test(phi, n)
        assert (t.dof, t.mean) == (2 * n, n) and t.std == pytest.approx(math.sqrt(n), rel=1e-15)
        # 2 * misfit is chi-square with 2n degrees of freedom: mean and variance of the scipy law
        assert 2 * t.mean == pytest.approx(stats.chi2.mean(2 * n))
        assert 4 * t.std ** 2 == pytest.approx(stats.chi2.var(2 * n))
        assert t.p_value == pytest.approx(stats.chi2.sf(2 * phi, 2 * n), rel=1e-10, abs=1e-300)
        assert t.z == pytest.approx((phi - n) / math.sqrt(n), rel=1e-14)
    # simulated circular complex noise with E|e|^2 = sigma^2: the misfit's mean, spread and p-values
    rng = np.random.default_rng(0)
    n, sig = 50, 0.3
    e = sig / math.sqrt(2) * (rng.standard_normal((4000, n)) + 1j * rng.standard_normal((4000, n)))
    phis = np.sum(np.abs(e) ** 2, axis=1) / sig ** 2
    assert abs(phis.mean() - n) < 4 * math.sqrt(n / 4000) and abs(phis.std() / math.sqrt(n) - 1) < 0.05
    p = np.array([W.misfit_test(v, n).p_value for v in phis])
    assert abs(np.mean(p < 0.05) - 0.05) < 0.015 and abs(np.mean(p < 0.5) - 0.5) < 0.03  # uniform p-values


def test_short_fwi_reproducible_from_the_seed():
    kw = dict(n=16, dx=0.1, npml=5, n_src=2, n_rec=8, freqs=(1.0, 1.5), maxiter=2)
    a, b, c = W.short_fwi(**kw), W.short_fwi(**kw), W.short_fwi(seed=3, **kw)
    assert np.array_equal(a.v_inv, b.v_inv) and np.array_equal(a.history, b.history) and a.misfit == b.misfit
    assert not np.allclose(a.d_obs, c.d_obs)
    assert a.expected == 2 * 2 * 8


# --------------------------------------------------------------------------------- figure budget
def test_chapter_sliders_fit_the_figure_budget(chapter_problem):
    solver, m_true, acq = chapter_problem
    freqs = np.arange(1.5, 6.01, 0.5)
    fields = [np.real(solver.wavefield(m_true, f, acq.sources[2])) for f in freqs]
    pts = {"source": acq.sources[2:3], "receivers": acq.receivers}
    x, z = solver.x, solver.z
    slider = figs.twin_frequency(fields, freqs, x, z, points=pts)
    anim = figs.fig_phase_animation(solver.wavefields(m_true, 4.0, acq)[2], x, z, n_phase=16, points=pts)
    assert max(plots.figure_bytes(slider), plots.figure_bytes(anim)) < 1.5e6


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn, kw, exc, match", [
    (W.solver_properties, dict(n=2), ValueError, "n"),
    (W.solver_properties, dict(dx=0.0), ValueError, "dx"),
    (W.solver_properties, dict(npml=3), ValueError, "npml"),
    (W.solver_properties, dict(freq=-1.0), ValueError, "freq"),
    (W.verification, dict(ppw2=(3, 8)), ValueError, "ppw2"),
    (W.verification, dict(ppw4=(8,)), ValueError, "ppw4"),
    (W.verification, dict(ppw2=()), ValueError, "ppw2"),
    (W.verification, dict(ppw2=5), TypeError, "ppw2"),
    (W.verification, dict(ppw4=(6, "8")), TypeError, r"ppw4\[1\]"),
    (W.verification, dict(line_ppw=3.0), ValueError, "line_ppw"),
    (W.verification, dict(paper_ppw=0.0), ValueError, "paper_ppw"),
    (W.gradient_check, dict(noise=0.0), ValueError, "noise"),
    (W.gradient_check, dict(seed=1.5), TypeError, "seed"),
    (W.gradient_check, dict(seed=-1), ValueError, "seed"),
    (W.gradient_check, dict(pixels=((0, 64),)), ValueError, "pixels"),
    (W.gradient_check, dict(pixels=((0.5, 1.0),)), ValueError, "pixels"),
    (W.gradient_check, dict(step=0.0), ValueError, "step"),
    (W.gradient_check, dict(n_src=0), ValueError, "n_src"),
    (W.sensitivity_kernels, dict(freqs=()), ValueError, "freqs"),
    (W.sensitivity_kernels, dict(freqs=(2.0, -4.0)), ValueError, r"freqs\[1\]"),
    (W.sensitivity_kernels, dict(half_width=0.0), ValueError, "half_width"),
    (W.sensitivity_kernels, dict(source_x=-0.5), ValueError, "source_x"),
    (W.short_fwi, dict(maxiter=0), ValueError, "maxiter"),
    (W.short_fwi, dict(v_bounds=(2.5, 3.0)), ValueError, "v_bounds"),
    (W.short_fwi, dict(v_bounds=(1.4,)), ValueError, "v_bounds"),
    (W.short_fwi, dict(seed="a"), TypeError, "seed"),
    (W.short_fwi, dict(n_rec=0), ValueError, "n_rec"),
    (W.misfit_test, dict(misfit=-1.0, n_data=10), ValueError, "misfit"),
    (W.misfit_test, dict(misfit=10.0, n_data=0), ValueError, "n_data"),
    (W.misfit_test, dict(misfit="a", n_data=10), TypeError, "misfit"),
])
def test_bad_input(fn, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(**kw)

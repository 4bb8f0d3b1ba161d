"""Tests for memprior.wave: verification against the analytic Green's function, adjoint
identities, finite differences on every pixel, Taylor convergence, Jacobians, torch, bad input."""
import math
import warnings

import numpy as np
import pytest
import torch

from scipy.special import hankel1, hankel2, j0, y0

from memprior.wave import Acquisition, Helmholtz2D, greens_function_2d, helmholtz_data, solver_backends

BACKENDS = [b for b in ("superlu", "pardiso") if solver_backends()[b]]


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request, monkeypatch):
    """Every test runs with every factorization backend this machine has (SuperLU always; PARDISO
    with the mkl wheel), as the default that ``Helmholtz2D(backend="auto")`` picks."""
    monkeypatch.setenv("MEMPRIOR_SOLVER", request.param)
    return request.param


# ----------------------------------------------------------------------------- helpers
def hankel_reference(ppw: float, order: int, v: float = 2.0, dx: float = 0.01):
    """The solver's point-source field against (i/4) H0^(1)(kr) from scipy.special, for 1 <= r/λ <= 3.

    Independent of :func:`memprior.wave.greens_function_2d` and :func:`~memprior.wave.greens_function_error`:
    the analytic field is scipy's Hankel function, distances come from integer node offsets. Homogeneous
    medium, a grid of ±3.4 wavelengths, a PML one wavelength thick, a unit point source s = δ/dx² at the
    centre node; (Δ + ω²m)u = −s with e^{−iωt}.

    Returns
    -------
    dict with ``err`` (relative L2 error on the ring), ``k`` (rad/km), and on the ring nodes ``r`` (km),
    ``theta`` (rad), ``u`` (solver) and ``g`` (analytic); ``field`` [n, n] the whole solution.
    """
    lam = ppw * dx
    f = v / lam
    n = int(round(6.8 * ppw)) + 1
    solver = Helmholtz2D(n, n, dx, npml=max(5, int(round(ppw))), order=order, pml_velocity=v)
    c = n // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # below 8 points per wavelength on purpose
        u = solver.wavefield(np.full((n, n), 1.0 / v ** 2), f, (c * dx, c * dx))
    i, j = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    r = dx * np.hypot(i, j)
    ring = (r >= lam) & (r <= 3 * lam)
    k = 2 * math.pi / lam
    g = 0.25j * hankel1(0, k * r[ring])
    return dict(err=float(np.linalg.norm(u[ring] - g) / np.linalg.norm(g)), k=k, r=r[ring],
                theta=np.arctan2(j, i)[ring], u=u[ring], g=g, field=u)


def greens_error(ppw: float, order: int) -> float:
    """Relative L2 error of the solver against scipy's (i/4) H0^(1)(kr) (see :func:`hankel_reference`)."""
    return hankel_reference(ppw, order)["err"]


def numerical_wavenumber(theta: np.ndarray, kdx: float, order: int) -> np.ndarray:
    """k_h(θ)·dx of a plane wave on the stencil: the root of the discrete dispersion relation.

    5-point: Σ_{c ∈ {cosθ, sinθ}} (2 − 2cos(k_h c dx)) = (k dx)². 9-point cross (4/3 δ_h² − 1/3 δ_2h²):
    each term is 4/3 (2 − 2cos ξ) − 1/12 (2 − 2cos 2ξ).
    """
    from scipy.optimize import brentq

    def term(xi):
        return 2 - 2 * np.cos(xi) if order == 2 else 4 / 3 * (2 - 2 * np.cos(xi)) - (2 - 2 * np.cos(2 * xi)) / 12

    return np.array([brentq(lambda q: term(q * math.cos(t)) + term(q * math.sin(t)) - kdx ** 2, 0.5 * kdx, 1.5 * kdx)
                     for t in np.ravel(theta)])


def small_problem(order=2, seed=0):
    """A 12 x 10 heterogeneous problem with off-node and corner sources/receivers."""
    rng = np.random.default_rng(seed)
    nx, nz, dx = 12, 10, 0.1
    solver = Helmholtz2D(nx, nz, dx, npml=5, order=order)
    v = 2.0 + 0.3 * rng.uniform(-1, 1, size=(nx, nz))
    m = 1.0 / v ** 2
    lx, lz = solver.extent
    acq = Acquisition([[0.0, 0.0], [lx, 0.45], [0.37, 0.52]],
                      [[lx, lz], [0.0, lz], [0.55, lz], [0.5, 0.3], [1.0, 0.0]])
    freq = 2.0
    m_true = m * (1 + 0.05 * rng.standard_normal((nx, nz)))
    d_obs = solver.forward(m_true, freq, acq)
    return solver, m, freq, acq, d_obs, rng


# ------------------------------------------------------------------- verification
@pytest.mark.parametrize("ppw, tol", [(10, 0.19), (16, 0.07), (32, 0.02)])
def test_greens_function_order2(ppw, tol):
    err = greens_error(ppw, order=2)
    assert err <= tol, f"5-point stencil at {ppw} ppw: error {err:.4f} > {tol}"


def test_greens_function_high_accuracy():
    err = greens_error(10, order=4)
    assert err <= 0.02
    # and it beats the 5-point stencil at the same grid by a wide margin
    assert err < 0.1 * greens_error(10, order=2)


def test_greens_function_is_outgoing_with_correct_sign():
    # the solution at one wavelength has the phase of +(i/4)H0^(1): an incoming wave (H0^(2)) or the
    # opposite sign convention would be off by far more than the dispersion error
    v, dx, ppw = 2.0, 0.01, 16
    lam = ppw * dx
    f = v / lam
    n = 81
    solver = Helmholtz2D(n, n, dx, npml=16, order=4)
    u = solver.wavefield(np.full((n, n), 0.25), f, (0.4, 0.4))
    k = 2 * math.pi * f / v
    g = 0.25j * hankel1(0, k * lam)      # outgoing, e^{+ikr}
    incoming = 0.25j * hankel2(0, k * lam)  # e^{-ikr}
    got = u[40 + ppw, 40]
    assert abs(got - g) < 0.02 * abs(g)
    assert abs(got + g) > 1.5 * abs(g)
    assert abs(got - incoming) > 0.5 * abs(g)


def test_greens_function_2d_is_the_outgoing_hankel_solution():
    """greens_function_2d against closed forms that do not use hankel1: (−Y0 + i J0)/4, the
    small-r expansion −(ln(kr/2) + γ_E)/(2π) + i/4, unit flux −2πr G′(r) → 1 (a source −δ), the
    Bessel equation G″ + G′/r + k²G = 0 by finite differences, and outgoing phase d(arg G)/dr → k."""
    k = 2.7
    r = np.linspace(0.05, 6.0, 200)
    g = greens_function_2d(r, k)
    np.testing.assert_allclose(g, (-y0(k * r) + 1j * j0(k * r)) / 4, rtol=1e-12, atol=1e-15)
    small = np.array([1e-8, 1e-6, 1e-4])
    np.testing.assert_allclose(greens_function_2d(small, k),
                               -(np.log(k * small / 2) + np.euler_gamma) / (2 * np.pi) + 0.25j, rtol=1e-6)
    h = 1e-6
    flux = -2 * np.pi * small * (greens_function_2d(small + h * small, k) - greens_function_2d(small - h * small, k)) \
        / (2 * h * small)
    np.testing.assert_allclose(flux.real, 1.0, rtol=1e-5)
    h = 1e-3
    rr = np.linspace(0.5, 5.0, 10)
    gm, g0, gp = (greens_function_2d(rr + s * h, k) for s in (-1, 0, 1))
    ode = (gp - 2 * g0 + gm) / h ** 2 + (gp - gm) / (2 * h * rr) + k ** 2 * g0
    assert np.abs(ode).max() < 1e-5 * k ** 2 * np.abs(g0).max()
    far = np.array([40.0, 40.001])
    phase = np.diff(np.unwrap(np.angle(greens_function_2d(far, k)))) / np.diff(far)
    assert abs(phase[0] - k) < 1e-3 * k  # e^{+ikr}: outgoing under e^{−iωt}


@pytest.mark.parametrize("order, ppw", [(2, 10), (2, 16), (4, 8)])
def test_greens_error_is_the_stencils_numerical_dispersion(order, ppw):
    """The error against the Hankel function is the phase error of the discrete dispersion relation:
    a wave that travels r km with the stencil's wavenumber k_h(θ) instead of k is off by
    |e^{i(k_h − k) r} − 1|. The prediction matches the measured error within 15 %, and putting
    k_h(θ) into the Hankel function removes most of the error."""
    ref = hankel_reference(ppw, order)
    dx = 0.01
    kh = numerical_wavenumber(ref["theta"], ref["k"] * dx, order) / dx
    g = ref["g"]
    predicted = np.linalg.norm(g * (np.exp(1j * (kh - ref["k"]) * ref["r"]) - 1)) / np.linalg.norm(g)
    assert 0.95 < ref["err"] / predicted < 1.15, (ref["err"], predicted)
    corrected = np.linalg.norm(ref["u"] - 0.25j * hankel1(0, kh * ref["r"])) / np.linalg.norm(g)
    assert corrected < 0.45 * ref["err"]
    # second-order (5-point) and fourth-order (9-point cross) dispersion: k_h/k − 1 ∝ (k dx)^order
    kh2 = numerical_wavenumber(np.array([0.0]), ref["k"] * dx / 2, order)[0] / (ref["k"] * dx / 2)
    kh1 = numerical_wavenumber(np.array([0.0]), ref["k"] * dx, order)[0] / (ref["k"] * dx)
    assert abs(math.log2((kh1 - 1) / (kh2 - 1)) - order) < 0.1


def test_matrix_is_complex_symmetric_and_reciprocity():
    for order in (2, 4):
        solver, m, freq, acq, _, _ = small_problem(order)
        A = solver.matrix(m, freq)
        assert abs(A - A.T).max() == 0.0
        assert abs(A - A.conj().T).max() > 0  # not Hermitian: the PML is lossy
        a, b = (0.13, 0.21), (0.97, 0.74)
        d_ab = solver.forward(m, freq, Acquisition([a], [b]))[0, 0]
        d_ba = solver.forward(m, freq, Acquisition([b], [a]))[0, 0]
        assert abs(d_ab - d_ba) <= 1e-10 * abs(d_ab)


def test_pad_adjoint_dot_product():
    solver = Helmholtz2D(7, 6, 0.1, npml=5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 6))
    y = rng.standard_normal((solver.NX, solver.NZ))
    lhs = np.sum(solver.pad(x) * y)
    rhs = np.sum(x * solver.pad_adjoint(y))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    # padding replicates edges: corners of the PML take the corner value
    assert solver.pad(x)[0, 0] == x[0, 0] and solver.pad(x)[-1, -1] == x[-1, -1]


@pytest.mark.parametrize("order", [2, 4])
def test_adjoint_dot_product(order):
    solver, m, freq, acq, _, rng = small_problem(order)
    dm = rng.standard_normal(m.shape)
    dd = rng.standard_normal((acq.n_src, acq.n_rec)) + 1j * rng.standard_normal((acq.n_src, acq.n_rec))
    lhs = np.real(np.vdot(dd, solver.jvp(m, freq, acq, dm)))  # Re <dd, J dm>
    rhs = np.sum(dm * solver.vjp(m, freq, acq, dd))  # <J^T dd, dm>
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


@pytest.mark.parametrize("order", [2, 4])
def test_gradient_matches_finite_differences_on_every_pixel(order):
    solver, m, freq, acq, d_obs, _ = small_problem(order)
    sigma = 0.05
    f0, g, _ = solver.misfit_gradient(m, freq, acq, d_obs, sigma)
    assert f0 > 0
    h = 1e-5 * m.mean()
    fd = np.empty_like(m)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            mp, mn = m.copy(), m.copy()
            mp[i, j] += h
            mn[i, j] -= h
            fp = solver.misfit_gradient(mp, freq, acq, d_obs, sigma)[0]
            fn = solver.misfit_gradient(mn, freq, acq, d_obs, sigma)[0]
            fd[i, j] = (fp - fn) / (2 * h)
    # the per-pixel test is meaningful only if no pixel's gradient is negligible
    assert np.abs(g).min() > 1e-3 * np.abs(g).max()
    rel = np.abs(fd - g) / np.abs(g)
    assert rel.max() <= 1e-5, f"worst pixel {np.unravel_index(rel.argmax(), rel.shape)}: {rel.max():.2e}"
    # edges and corners explicitly (they carry the PML padding adjoint)
    for idx in [(0, 0), (0, -1), (-1, 0), (-1, -1), (0, 4), (5, 0), (-1, 5), (6, -1)]:
        assert rel[idx] <= 1e-5


def test_misfit_is_complex_gaussian_nll_without_half():
    solver, m, freq, acq, d_obs, _ = small_problem()
    sigma = 0.3
    f, _, d = solver.misfit_gradient(m, freq, acq, d_obs, sigma)
    assert math.isclose(f, float(np.sum(np.abs(d - d_obs) ** 2) / sigma ** 2), rel_tol=1e-13)
    assert np.allclose(d, solver.forward(m, freq, acq), rtol=1e-13, atol=0)


def test_taylor_second_order():
    solver, m, freq, acq, d_obs, rng = small_problem(seed=3)
    sigma = 0.05
    f0, g, _ = solver.misfit_gradient(m, freq, acq, d_obs, sigma)
    dm = 0.01 * m * rng.standard_normal(m.shape)
    hs = 2.0 ** -np.arange(2, 8)
    r0, r1 = [], []
    for h in hs:
        fh = solver.misfit_gradient(m + h * dm, freq, acq, d_obs, sigma)[0]
        r0.append(abs(fh - f0))
        r1.append(abs(fh - f0 - h * np.sum(g * dm)))
    rate0 = np.log2(np.array(r0[:-1]) / np.array(r0[1:]))
    rate1 = np.log2(np.array(r1[:-1]) / np.array(r1[1:]))
    assert abs(rate0[-1] - 1) < 0.1  # zeroth-order remainder: first order (as h -> 0)
    assert np.all(np.abs(rate1 - 2) < 0.1)  # first-order remainder: second order at every step


def test_jvp_vjp_jacobian_consistency():
    solver, m, freq, acq, _, rng = small_problem(seed=2)
    K = 7
    basis = rng.standard_normal((K, solver.nx, solver.nz))
    J1 = solver.jacobian(m, freq, acq, basis, method="sensitivity")
    J2 = solver.jacobian(m, freq, acq, basis, method="reciprocal")
    assert J1.shape == (acq.n_src * acq.n_rec, K)
    assert np.allclose(J1, J2, rtol=0, atol=1e-11 * np.abs(J1).max())
    for k in range(K):
        col = solver.jvp(m, freq, acq, basis[k]).ravel()
        assert np.allclose(J1[:, k], col, rtol=0, atol=1e-11 * np.abs(col).max())
    dd = rng.standard_normal((acq.n_src, acq.n_rec)) + 1j * rng.standard_normal((acq.n_src, acq.n_rec))
    g = solver.vjp(m, freq, acq, dd)
    # projecting the vjp onto the basis equals Re(J^H dd)
    lhs = np.einsum("kij,ij->k", basis, g)
    rhs = np.real(J1.conj().T @ dd.ravel())
    assert np.allclose(lhs, rhs, rtol=1e-10, atol=1e-12 * np.abs(rhs).max())
    # the full pixel basis reproduces the vjp exactly
    eye = np.eye(solver.nx * solver.nz).reshape(-1, solver.nx, solver.nz)
    Jfull = solver.jacobian(m, freq, acq, eye, method="reciprocal")
    assert np.allclose(np.real(Jfull.conj().T @ dd.ravel()).reshape(m.shape), g, atol=1e-12 * np.abs(g).max())
    # chunking does not change the sensitivity result
    J3 = solver.jacobian(m, freq, acq, basis, chunk_mb=1e-3)
    assert np.allclose(J1, J3, rtol=0, atol=1e-13 * np.abs(J1).max())


def test_one_factorization_per_model_and_frequency():
    solver, m, freq, acq, d_obs, rng = small_problem()
    m2 = m * 1.01
    n0 = solver.n_factorizations
    solver.misfit_gradient(m2, freq, acq, d_obs, 0.1)
    assert solver.n_factorizations == n0 + 1
    solver.forward(m2, freq, acq)
    solver.jvp(m2, freq, acq, rng.standard_normal(m.shape))
    solver.vjp(m2, freq, acq, d_obs)
    solver.jacobian(m2, freq, acq, rng.standard_normal((3, solver.nx, solver.nz)))
    solver.wavefields(m2, freq, acq)
    assert solver.n_factorizations == n0 + 1
    solver.forward(m2, 1.5, acq)  # a new frequency is a new operator
    assert solver.n_factorizations == n0 + 2


def test_ordering_does_not_change_the_solution():
    solver, m, freq, acq, _, _ = small_problem()
    d = solver.forward(m, freq, acq)
    for spec in ("COLAMD", "NATURAL"):
        other = Helmholtz2D(solver.nx, solver.nz, solver.dx, npml=5, permc_spec=spec)
        assert np.allclose(other.forward(m, freq, acq), d, rtol=1e-11, atol=0)


@pytest.mark.parametrize("order", [2, 4])
def test_precomputed_ordering_has_the_fill_of_superlus_own(order):
    """The once-per-grid ordering is SuperLU's MMD(A+Aᵀ): factoring the renumbered matrix with
    NATURAL gives exactly the fill of letting splu order the natural matrix itself."""
    import scipy.sparse.linalg as spla
    solver, m, freq, _, _, _ = small_problem(order)
    solver = Helmholtz2D(solver.nx, solver.nz, solver.dx, npml=5, order=order, backend="superlu")
    assert sorted(solver._label.tolist()) == list(range(solver.N))  # a permutation
    A_nat = solver.matrix(m, freq)
    own = spla.splu(A_nat, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.1, options=dict(SymmetricMode=True))
    ours = solver.factorize(m, freq).lu
    assert ours.L.nnz + ours.U.nnz == own.L.nnz + own.U.nnz
    # and far less than with no ordering at all
    none = spla.splu(A_nat, permc_spec="NATURAL", diag_pivot_thresh=0.1, options=dict(SymmetricMode=True))
    assert none.L.nnz + none.U.nnz > 1.2 * (ours.L.nnz + ours.U.nnz)


def test_matrix_is_in_natural_numbering_and_matches_the_wavefield():
    """matrix() rows are node i·NZ + j of the extended grid: A u = −s for the extended wavefield."""
    solver, m, freq, _, _, _ = small_problem()
    i, j = 4, 3  # an interior node: source exactly on it
    u = solver.wavefield(m, freq, (i * solver.dx, j * solver.dx), extended=True)
    b = np.zeros(solver.N, complex)
    b[(i + solver.npml) * solver.NZ + (j + solver.npml)] = -1.0 / solver.dx ** 2
    A = solver.matrix(m, freq)
    assert np.linalg.norm(A @ u.ravel() - b) <= 1e-10 * np.linalg.norm(b)
    assert abs(u[i + solver.npml, j + solver.npml]) > 0


@pytest.mark.parametrize("n_src", [1, 2, 3, 9, 17])
def test_block_solves_do_not_change_gradient_or_data(monkeypatch, n_src):
    """Source blocks of every size (one column, the transposed two-column path, several blocks)
    give the same data and gradient as one block per source."""
    from memprior.wave import _Factor
    rng = np.random.default_rng(n_src)
    solver = Helmholtz2D(12, 10, 0.1, npml=5)
    lx, lz = solver.extent
    src = np.stack([rng.uniform(0, lx, n_src), rng.uniform(0, lz, n_src)], 1)
    acq = Acquisition(src, [[0.0, lz], [0.55, lz], [lx, 0.3]])
    m = 1.0 / (2.0 + 0.3 * rng.uniform(-1, 1, (12, 10))) ** 2
    d_obs = solver.forward(m * 1.02, 2.0, acq)
    results = {}
    for block in (1, 2, 3, 8):
        monkeypatch.setattr(_Factor, "BLOCK", block)
        monkeypatch.setattr(_Factor, "PARDISO_BLOCK", block)
        solver.clear_cache()
        f, g, d = solver.misfit_gradient(m, 2.0, acq, d_obs, 0.1)
        results[block] = (f, g, d, solver.forward(m, 2.0, acq), solver.vjp(m, 2.0, acq, d_obs))
    f1, g1, d1, fw1, v1 = results[1]
    for block, (f, g, d, fw, v) in results.items():
        assert abs(f - f1) <= 1e-12 * f1
        assert np.allclose(g, g1, rtol=0, atol=1e-12 * np.abs(g1).max())
        assert np.allclose(d, d1, rtol=1e-12, atol=0) and np.allclose(fw, d1, rtol=1e-12, atol=0)
        assert np.allclose(v, v1, rtol=0, atol=1e-12 * np.abs(v1).max())


def test_apply_rows_matches_sparse_product():
    import scipy.sparse as sp
    from memprior.wave import _apply_rows
    rng = np.random.default_rng(0)
    X = np.asfortranarray(rng.standard_normal((30, 4)) + 1j * rng.standard_normal((30, 4)))
    P = sp.random(5, 30, density=0.2, random_state=1, format="csr")
    P = sp.csr_matrix(P + sp.csr_matrix((np.ones(5), (np.arange(5), np.arange(5))), shape=(5, 30)))
    assert np.allclose(_apply_rows(P, X), P @ X, rtol=1e-14, atol=1e-14)
    Q = sp.csr_matrix((np.ones(2), ([0, 2], [3, 7])), shape=(4, 30))  # empty rows: falls back to P @ X
    assert np.allclose(_apply_rows(Q, X), Q @ X, rtol=0, atol=0)


def test_torch_wrapper_gradcheck_and_backward():
    solver, m, freq, acq, d_obs, _ = small_problem()
    mt = torch.tensor(m, dtype=torch.float64, requires_grad=True)
    # torch's own numerical-vs-analytical Jacobian check (complex output, real input)
    small = Helmholtz2D(4, 3, 0.1, npml=5)
    acq_s = Acquisition([[0.0, 0.0], [0.3, 0.1]], [[0.1, 0.2], [0.25, 0.05]])
    ms = torch.tensor(1 / (2.0 + 0.2 * np.random.default_rng(0).random((4, 3))) ** 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: helmholtz_data(x, small, 1.0, acq_s), (ms,), eps=1e-6, atol=1e-8,
                                    rtol=1e-6)
    # a real loss built in torch gives the adjoint-state gradient
    d = solver.torch_forward(mt, freq, acq)
    sigma = 0.05
    loss = (d - torch.from_numpy(d_obs)).abs().pow(2).sum() / sigma ** 2
    loss.backward()
    f, g, _ = solver.misfit_gradient(m, freq, acq, d_obs, sigma)
    assert math.isclose(loss.item(), f, rel_tol=1e-12)
    assert torch.allclose(mt.grad, torch.from_numpy(g), rtol=1e-10, atol=0)
    # torch in -> torch out for the array API
    out = solver.forward(mt.detach(), freq, acq)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.complex128


def test_transmission_geometry():
    acq = Acquisition.transmission(64, 64, 2 / 64, 5, 40)
    assert acq.n_src == 5 and acq.n_rec == 40
    assert np.all(acq.sources[:, 1] == 0.0) and np.allclose(acq.receivers[:, 1], 63 * 2 / 64)
    Helmholtz2D(64, 64, 2 / 64).check_acquisition(acq)


def test_high_contrast_extreme_is_finite():
    solver = Helmholtz2D(20, 20, 0.05, npml=6, order=4)
    m = np.full((20, 20), 1 / 1.5 ** 2)
    m[:, 10:] = 1 / 6.0 ** 2  # 4x velocity contrast
    acq = Acquisition.transmission(20, 20, 0.05, 2, 5)
    d_obs = np.zeros((2, 5), complex)
    f, g, d = solver.misfit_gradient(m, 3.0, acq, d_obs, 1e-3)
    assert np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(d))


# -------------------------------------------------------------------------- bad input
def test_bad_input():
    solver = Helmholtz2D(12, 10, 0.1, npml=5)
    m = np.full((12, 10), 0.25)
    acq = Acquisition.transmission(12, 10, 0.1, 2, 3)
    with pytest.raises(ValueError, match="npml"):
        Helmholtz2D(12, 10, 0.1, npml=4)
    with pytest.raises(ValueError, match="order"):
        Helmholtz2D(12, 10, 0.1, order=3)
    with pytest.raises(ValueError, match="dx"):
        Helmholtz2D(12, 10, -0.1)
    with pytest.raises(ValueError, match="permc_spec"):
        Helmholtz2D(12, 10, 0.1, permc_spec="METIS")
    bad = m.copy()
    bad[3, 3] = -0.1
    with pytest.raises(ValueError, match="m: squared slowness must be > 0"):
        solver.forward(bad, 2.0, acq)
    bad[3, 3] = 0.0
    with pytest.raises(ValueError, match="m:"):
        solver.forward(bad, 2.0, acq)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="m: contains NaN"):
        solver.forward(bad, 2.0, acq)
    with pytest.raises(ValueError, match=r"m: expected shape \[nx, nz\]"):
        solver.forward(np.full((10, 12), 0.25), 2.0, acq)
    with pytest.raises(TypeError, match="m:"):
        solver.forward(m + 0j, 2.0, acq)
    with pytest.raises(ValueError, match="inside the PML"):
        solver.forward(m, 2.0, Acquisition([[-0.2, 0.1]], [[0.5, 0.5]]))
    with pytest.raises(ValueError, match="receivers: .*outside the grid"):
        solver.forward(m, 2.0, Acquisition([[0.2, 0.1]], [[5.0, 0.5]]))
    with pytest.raises(ValueError, match="source: .*inside the PML"):
        solver.wavefield(m, 2.0, (0.5, 0.95))
    with pytest.raises(ValueError, match="sources: expected shape"):
        Acquisition(np.zeros((2, 3)), [[0.1, 0.1]])
    with pytest.raises(ValueError, match="receivers: positions must be finite"):
        Acquisition([[0.1, 0.1]], [[np.nan, 0.1]])
    with pytest.raises(TypeError, match="acq"):
        solver.forward(m, 2.0, "geometry")
    # points per wavelength: v = 2 km/s, dx = 0.1 km -> ppw = 20 / f
    with pytest.raises(ValueError, match="freq: .*points per wavelength"):
        solver.forward(m, 6.0, acq)  # 3.3 ppw
    with pytest.warns(RuntimeWarning, match="points per wavelength"):
        solver.forward(m, 4.0, acq)  # 5 ppw
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solver.forward(m, 2.0, acq)  # 10 ppw: silent
    with pytest.raises(ValueError, match="freq"):
        solver.forward(m, 0.0, acq)
    with pytest.raises(ValueError, match="freq"):
        solver.forward(m, float("nan"), acq)
    d = solver.forward(m, 2.0, acq)
    with pytest.raises(ValueError, match="sigma_d"):
        solver.misfit_gradient(m, 2.0, acq, d, 0.0)
    with pytest.raises(ValueError, match=r"d_obs: expected shape \[n_src, n_rec\]"):
        solver.misfit_gradient(m, 2.0, acq, d.T, 0.1)
    with pytest.raises(ValueError, match="d_obs: contains NaN"):
        solver.misfit_gradient(m, 2.0, acq, d * np.nan, 0.1)
    with pytest.raises(ValueError, match=r"dm: expected shape"):
        solver.jvp(m, 2.0, acq, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"basis: expected shape \[K, nx, nz\]"):
        solver.jacobian(m, 2.0, acq, np.zeros((12, 10)))
    with pytest.raises(ValueError, match="method"):
        solver.jacobian(m, 2.0, acq, np.zeros((1, 12, 10)), method="magic")
    with pytest.raises(ValueError, match="r:"):
        greens_function_2d([0.0, 1.0], 2.0)


# ------------------------------------------------------------------ figures and the live app
def test_wave_figures_and_slider_twins():
    from memprior import plots
    from memprior.plots import wave as wplots

    solver, m, freq, acq, d_obs, _ = small_problem()
    u = solver.wavefield(m, freq, (0.5, 0.0))
    fig = wplots.fig_field(np.real(u), solver.x, solver.z, symmetric=True, points={"s": acq.sources})
    hm = fig.data[0]
    assert hm.type == "heatmap" and hm.z.shape == (solver.nz, solver.nx)  # heatmap rows are depths
    assert hm.zmin == -hm.zmax == -np.abs(np.real(u)).max()
    assert fig.layout.yaxis.autorange == "reversed"  # depth increases downwards
    frames = [np.real(solver.wavefield(m, f, (0.5, 0.0))) for f in (1.0, 1.5, 2.0)]
    sl = wplots.twin_frequency(frames, [1.0, 1.5, 2.0], solver.x, solver.z, points={"s": acq.sources})
    assert len(sl.frames) == 3 and all(len(fr.data) == 1 and fr.data[0].type == "heatmap" for fr in sl.frames)
    assert len(sl.layout.shapes) == acq.n_src  # markers are shapes, not traces (plotly.js frame quirk)
    ph = wplots.fig_phase_animation(u, solver.x, solver.z, n_phase=8, clip=None)
    z0, z2 = np.asarray(ph.frames[0].data[0].z), np.asarray(ph.frames[2].data[0].z)
    s = np.abs(u).max()
    # frame k shows Re(u e^{-i k 2π/8}): a quarter period later it is Im(u)
    assert np.allclose(z0, (np.real(u) / s).T, atol=1e-6) and np.allclose(z2, (np.imag(u) / s).T, atol=1e-6)
    assert ph.layout.updatemenus  # play button
    robust = wplots.fig_phase_animation(u, solver.x, solver.z, n_phase=4)  # 99th-percentile scaling, clipped
    z_r = np.asarray(robust.frames[0].data[0].z)
    assert np.abs(z_r).max() == 1.0 and np.allclose(np.abs(z_r) < 1, np.abs(z0) < np.quantile(np.abs(u), 0.99) / s)
    assert max(plots.figure_bytes(f) for f in (sl, ph)) < 1.5e6
    with pytest.raises(ValueError, match="a: expected shape"):
        wplots.fig_field(np.zeros((3, 3)), solver.x, solver.z)
    with pytest.raises(ValueError, match="n_phase"):
        wplots.fig_phase_animation(u, solver.x, solver.z, n_phase=1)


def test_wavefield_app_updates_and_rejects_bad_input():
    from memprior.widgets import callback_latencies
    from memprior.widgets.wave import wavefield_app

    solver, m, freq, acq, _, _ = small_problem()
    models = {"a": m, "b": np.full_like(m, 0.25)}
    for live in (False, True):
        app = wavefield_app(solver, models, freqs=(1.0, 2.0, 0.5), live=live)
        app.update(freq=2.0, source_x=0.3, model="b")
        z = np.asarray(app.figure.data[0].z)
        assert z.shape == (solver.nz, solver.nx) and np.abs(z).max() == pytest.approx(1.0)
        assert list(app.figure.data[1].x) == [0.3]
    lat = callback_latencies(app, [dict(freq=1.5), dict(model="a")])
    assert lat.shape == (2,) and np.all(lat > 0)
    with pytest.raises(ValueError, match="freqs"):
        wavefield_app(solver, models, freqs=(1.0, 9.0, 0.5))  # < 4 points per wavelength at 9 Hz
    with pytest.raises(ValueError, match="models"):
        wavefield_app(solver, {})
    with pytest.raises(TypeError, match="live"):
        wavefield_app(solver, models, live="yes")
    with pytest.raises(TypeError, match="live=False"):
        wavefield_app(solver, models, freqs=(1.0, 2.0, 0.5), live=False).widget


def test_wavefield_app_shows_the_free_space_greens_function():
    """In homogeneous media the app's field is Re (i/4)H0^(1)(k r) about the source (scipy's Hankel
    function, up to the app's positive scale), for the frequency, source position and model selected;
    the wrong velocity does not fit."""
    from memprior.widgets.wave import wavefield_app

    solver = Helmholtz2D(81, 41, 0.025, npml=12, order=4)  # 2 km x 1 km
    models = {"2 km/s": np.full((81, 41), 1 / 2.0 ** 2), "1.6 km/s": np.full((81, 41), 1 / 1.6 ** 2)}
    app = wavefield_app(solver, models, freqs=(2.0, 8.0, 0.5), live=False)
    X, Z = np.meshgrid(solver.x, solver.z, indexing="ij")

    def fit(freq, source_x, v):
        """Least-squares scale of Re G onto the shown field, and the relative misfit, for 1 <= r/λ <= 2.5."""
        shown = np.asarray(app.figure.data[0].z, dtype=float).T  # heatmap rows are depths
        r = np.hypot(X - source_x, Z)
        ring = (r >= v / freq) & (r <= 2.5 * v / freq)
        g = np.real(0.25j * hankel1(0, 2 * np.pi * freq / v * r[ring]))
        c = shown[ring] @ g / (g @ g)
        return c, np.linalg.norm(shown[ring] - c * g) / np.linalg.norm(shown[ring])

    c, misfit = fit(4.0, 1.0, 2.0)  # the initial state: 4 Hz, source in the middle, the first model
    assert c > 0 and misfit < 0.02, (c, misfit)
    app.update(freq=6.0, source_x=0.7, model="1.6 km/s")
    c, misfit = fit(6.0, 0.7, 1.6)
    assert c > 0 and misfit < 0.02, (c, misfit)
    assert list(app.figure.data[1].x) == [0.7]
    assert fit(6.0, 0.7, 2.0)[1] > 0.5 and fit(6.0, 1.0, 1.6)[1] > 0.5  # wrong velocity, wrong source


def test_greens_function_error_is_the_error_against_scipys_hankel_function():
    """greens_function_error reports the solver's error against scipy's (i/4)H0^(1), computed here
    without memprior's Green's function; its line output is that field along the row of the source."""
    from memprior.wave import greens_function_error
    for ppw, order in ((10, 2), (8, 4)):
        ref = hankel_reference(ppw, order)
        # rel 5e-3, not 1e-12: nodes exactly 1 or 3 wavelengths away (i² + j² = ppw², 9 ppw²) fall inside
        # or outside the library's ring by rounding of hypot(x - c, z - c); here they are inside exactly
        assert greens_function_error(ppw, order=order) == pytest.approx(ref["err"], rel=5e-3)
    err, (r, u, g) = greens_function_error(10, order=2, return_line=True)
    ref = hankel_reference(10, 2)
    n = ref["field"].shape[0]
    np.testing.assert_allclose(r, 0.01 * np.arange(1, n - n // 2), rtol=1e-9)
    np.testing.assert_allclose(g, 0.25j * hankel1(0, ref["k"] * r), rtol=1e-12)
    np.testing.assert_allclose(u, ref["field"][n // 2 + 1:, n // 2], rtol=1e-9)
    with pytest.raises(ValueError, match="ppw"):
        greens_function_error(3.0)


def test_blas_threads_pins_and_restores():
    from threadpoolctl import threadpool_info

    from memprior import wave as W

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas()
    assert before, "numpy and scipy load a BLAS"
    with W.blas_threads(1):
        assert all(n == 1 for n in blas())
        with W.blas_threads(1):  # nesting is harmless
            assert all(n == 1 for n in blas())
    assert blas() == before
    with W.blas_threads(None):  # None leaves the pools alone
        assert blas() == before
    with pytest.raises(ValueError, match="n"):
        W.blas_threads(0)


def test_greens_line_figure_keeps_the_imaginary_part():
    from memprior.plots import wave as wplots

    r = np.linspace(0.5, 1.5, 20)
    g = greens_function_2d(r, 2 * np.pi)
    fig = wplots.fig_greens_line(r, g, g)
    im = [t for t in fig.data if t.name.startswith("Im")]
    assert len(im) == 2
    for t in im:  # Im (i/4) H0^(1)(kr) = J0(kr) / 4
        np.testing.assert_allclose(np.asarray(t.y, dtype=float), j0(2 * np.pi * r) / 4, rtol=1e-12)
    assert np.abs(g.imag).max() > 0.01

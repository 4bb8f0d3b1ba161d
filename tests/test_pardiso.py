"""Tests for memprior._pardiso (the MKL PARDISO binding) and the solver's backend choice."""
import gc

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from memprior import pardiso as _pardiso, wave
from memprior.wave import Acquisition, Helmholtz2D, solver_backends

needs_pardiso = pytest.mark.skipif(not _pardiso.available(), reason="MKL PARDISO not installed (pip install mkl)")


def complex_symmetric(n, seed, density=0.05):
    """A random sparse complex-symmetric (not Hermitian) indefinite matrix with a full diagonal, CSC."""
    rng = np.random.default_rng(seed)
    R = sp.random(n, n, density=density, random_state=rng, dtype=np.complex128,
                  data_rvs=lambda k: rng.standard_normal(k)
                  + 1j * rng.standard_normal(k))
    A = (R + R.T + sp.diags(rng.standard_normal(n) + 1j * rng.standard_normal(n))).tocsc()
    A.sort_indices()
    return A


@needs_pardiso
@pytest.mark.parametrize("n", [1, 7, 200])
def test_ldlt_solves_like_a_dense_solve(n):
    A = complex_symmetric(n, n)
    assert abs(A - A.T).max() == 0 and (n == 1 or abs(A - A.conj().T).max() > 0)
    L = _pardiso.Pattern(A.indptr, A.indices, n).factor(A.data)
    rng = np.random.default_rng(1)
    B = rng.standard_normal((n, 5)) + 1j * rng.standard_normal((n, 5))
    X = L.solve(B)
    Xd = np.linalg.solve(A.toarray(), B)
    np.testing.assert_allclose(X, Xd, rtol=0, atol=1e-9 * np.abs(Xd).max())
    np.testing.assert_allclose(L.solve(B[:, 2]), Xd[:, 2], rtol=0, atol=1e-9 * np.abs(Xd).max())
    assert X.flags.f_contiguous
    B0 = B.copy()
    L.solve(np.asfortranarray(B))
    np.testing.assert_array_equal(B, B0)  # the right-hand sides are not overwritten
    assert L.solve(np.zeros((n, 0), complex)).shape == (n, 0)


@needs_pardiso
def test_analysis_is_reused_for_new_values_of_the_same_pattern():
    A = complex_symmetric(150, 3)
    P = _pardiso.Pattern(A.indptr, A.indices, A.shape[0])
    L1 = P.factor(A.data)
    assert not L1.reused_analysis and P.n_analyses == 1 and P.perm is not None
    assert sorted(P.perm.tolist()) == list(range(150))  # the stored ordering is a permutation
    del L1
    gc.collect()
    rng = np.random.default_rng(0)
    rows, cols = A.indices, np.repeat(np.arange(150), np.diff(A.indptr))
    for k in range(3):
        dd = 1 + 0.5 * rng.standard_normal(150) + 0.3j * rng.standard_normal(150)
        data = A.data * dd[rows] * dd[cols]  # D A D: new values, same pattern, still complex symmetric
        A2 = sp.csc_matrix((data, A.indices, A.indptr), shape=A.shape)
        L2 = P.factor(data)
        assert L2.reused_analysis and P.n_analyses == 1
        b = rng.standard_normal(150) + 0j
        np.testing.assert_allclose(A2 @ L2.solve(b), b, rtol=0, atol=1e-9 * np.abs(b).max())
        del L2
        gc.collect()
    # two factorizations alive at once: the second needs its own analysis, and both stay valid
    La, Lb = P.factor(A.data), P.factor(2 * A.data)
    b = np.ones(150, complex)
    np.testing.assert_allclose(La.solve(b), 2 * Lb.solve(b), rtol=1e-10)


@needs_pardiso
def test_bad_input_to_the_binding():
    A = complex_symmetric(20, 4)
    P = _pardiso.Pattern(A.indptr, A.indices, 20)
    with pytest.raises(ValueError, match="data"):
        P.factor(A.data[:-1])
    with pytest.raises(ValueError, match="data"):
        P.factor(np.where(np.arange(A.data.size) == 0, np.nan, A.data))
    L = P.factor(A.data)
    with pytest.raises(ValueError, match="b"):
        L.solve(np.ones(19))
    with pytest.raises(ValueError, match="indptr"):
        _pardiso.Pattern(A.indptr[:-1], A.indices, 20)
    no_diag = sp.csc_matrix(np.array([[0, 1], [1, 0]], dtype=complex))
    with pytest.raises(ValueError, match="diagonal"):
        _pardiso.Pattern(no_diag.indptr, no_diag.indices, 2)


@needs_pardiso
def test_backends_agree_on_data_and_gradient():
    rng = np.random.default_rng(5)
    kw = dict(npml=6)
    a = Helmholtz2D(30, 24, 0.05, backend="pardiso", **kw)
    b = Helmholtz2D(30, 24, 0.05, backend="superlu", **kw)
    assert a.backend == "pardiso" and b.backend == "superlu"
    m = 1 / (2 + 0.3 * rng.uniform(-1, 1, (30, 24))) ** 2
    acq = Acquisition.transmission(30, 24, 0.05, 19, 11)
    d_obs = b.forward(m * 1.01, 3.0, acq)
    fa, ga, da = a.misfit_gradient(m, 3.0, acq, d_obs, 0.1)
    fb, gb, db = b.misfit_gradient(m, 3.0, acq, d_obs, 0.1)
    assert abs(fa - fb) <= 1e-11 * fb
    np.testing.assert_allclose(ga, gb, rtol=0, atol=1e-10 * np.abs(gb).max())
    np.testing.assert_allclose(da, db, rtol=1e-11)


@needs_pardiso
def test_replica_is_an_independent_factorization_usable_from_another_thread():
    import threading
    A = complex_symmetric(120, 8)
    L = _pardiso.Pattern(A.indptr, A.indices, 120).factor(A.data)
    R = L.replica()
    assert R._h is not L._h and R.pattern is L.pattern
    rng = np.random.default_rng(2)
    B = rng.standard_normal((120, 40)) + 1j * rng.standard_normal((120, 40))
    Xd = np.linalg.solve(A.toarray(), B)
    out = {}

    def work(name, lu, cols):
        for _ in range(20):  # many calls at once on the two handles
            out[name] = lu.solve(B[:, cols])

    ts = [threading.Thread(target=work, args=("a", L, slice(0, 20))),
          threading.Thread(target=work, args=("b", R, slice(20, 40)))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    np.testing.assert_allclose(np.hstack([out["a"], out["b"]]), Xd, rtol=0, atol=1e-9 * np.abs(Xd).max())


@needs_pardiso
@pytest.mark.parametrize("n_src", [1, 3, 19])
def test_threaded_gradient_equals_the_serial_one(n_src):
    """threads=k splits the sources over k threads, each with its own factorization: same numbers
    (to the round-off of summing the groups' contractions in another order)."""
    rng = np.random.default_rng(6)
    m = 1 / (2 + 0.3 * rng.uniform(-1, 1, (30, 24))) ** 2
    acq = Acquisition.transmission(30, 24, 0.05, n_src, 11)
    one = Helmholtz2D(30, 24, 0.05, npml=6, backend="pardiso")
    d_obs = one.forward(m * 1.01, 3.0, acq)
    f1, g1, d1 = one.misfit_gradient(m, 3.0, acq, d_obs, 0.1)
    dd = rng.standard_normal(d1.shape) + 1j * rng.standard_normal(d1.shape)
    v1 = one.vjp(m, 3.0, acq, dd)
    for k in (2, 3):
        many = Helmholtz2D(30, 24, 0.05, npml=6, backend="pardiso", threads=k)
        many.MIN_WORK_PER_THREAD = many.N  # this small grid: a thread from one source on
        fk, gk, dk = many.misfit_gradient(m, 3.0, acq, d_obs, 0.1)
        assert abs(fk - f1) <= 1e-12 * f1
        np.testing.assert_allclose(gk, g1, rtol=0, atol=1e-12 * np.abs(g1).max())
        np.testing.assert_array_equal(dk, d1)  # each source's data is computed the same way
        np.testing.assert_allclose(many.vjp(m, 3.0, acq, dd), v1, rtol=0, atol=1e-12 * np.abs(v1).max())
        assert many._source_groups(n_src) == min(k, n_src)
        assert Helmholtz2D(30, 24, 0.05, npml=6, backend="pardiso", threads=k)._source_groups(n_src) == 1  # too small
        assert many.n_factorizations == 1  # the copies for the threads are not new models
    with pytest.raises(ValueError, match="threads"):
        Helmholtz2D(30, 24, 0.05, npml=6, backend="pardiso", threads=0)


def test_backend_choice_and_bad_values(monkeypatch):
    with pytest.raises(ValueError, match="backend"):
        Helmholtz2D(12, 10, 0.1, npml=5, backend="mumps")
    monkeypatch.setenv("MEMPRIOR_SOLVER", "superlu")
    assert Helmholtz2D(12, 10, 0.1, npml=5).backend == "superlu"
    monkeypatch.setenv("MEMPRIOR_SOLVER", "umfpack")
    with pytest.raises(ValueError, match="MEMPRIOR_SOLVER"):
        Helmholtz2D(12, 10, 0.1, npml=5)
    monkeypatch.delenv("MEMPRIOR_SOLVER")
    monkeypatch.setattr(_pardiso, "available", lambda: False)
    monkeypatch.setattr(_pardiso, "load_error", lambda: "not installed")
    assert solver_backends() == {"superlu": True, "pardiso": False, "auto": "superlu"}
    assert Helmholtz2D(12, 10, 0.1, npml=5).backend == "superlu"  # the fallback
    with pytest.raises(ValueError, match="pardiso"):
        Helmholtz2D(12, 10, 0.1, npml=5, backend="pardiso")
    assert "backend='superlu'" in repr(wave.Helmholtz2D(12, 10, 0.1, npml=5))

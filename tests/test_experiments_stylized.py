"""Tests for memprior.experiments.stylized: the chapter-3 experiments against independent references,
the chapter's claims, determinism and bad input."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from memprior import posterior as P
from memprior.experiments import stylized as st

torch.set_num_threads(1)
D64 = torch.float64
X5 = np.array([-1.5, -0.4, 0.4, 1.2, 2.5])


def cubic_np(x):
    return x + 0.3 * x ** 3


# ----------------------------------------------------------------------------- fixtures: the chapter's runs
@pytest.fixture(scope="module")
def panels():
    return st.panels_over_sigma()  # sigma = 0.5, 0.3, 0.05, the paper's panels


@pytest.fixture(scope="module")
def errors():
    return st.error_curves()


@pytest.fixture(scope="module")
def sweep():
    return st.components_sweep()


# ----------------------------------------------------------------------------- panels
def test_panel_1d_against_independent_references(panels):
    pan = panels.panels[1]  # sigma = 0.3
    x, gamma, sigma = pan.x, 0.3, 0.3
    dx = np.diff(x)
    vol = np.r_[dx[0], 0.5 * (dx[1:] + dx[:-1]), dx[-1]]
    for key in ("prior", "likelihood", "exact", "lin", "lin0"):
        dens = getattr(pan, key)
        assert dens.shape == (500,) and (dens >= 0).all()
        if key != "prior":
            assert abs((dens * vol).sum() - 1) < 1e-9, key
    # prior: the Gaussian mixture written out with numpy
    prior = np.exp(-(x[:, None] - X5[None]) ** 2 / (2 * sigma ** 2)).mean(1) / math.sqrt(2 * math.pi * sigma ** 2)
    np.testing.assert_allclose(pan.prior, prior, rtol=1e-10)
    # exact weights: Z_n by adaptive quadrature (scipy), independent of the library's grid rule
    Z = [integrate.quad(lambda t, c=c: math.exp(-(t - c) ** 2 / (2 * sigma ** 2) - cubic_np(t) ** 2 / (2 * gamma ** 2)),
                        c - 10 * sigma, c + 10 * sigma, epsabs=0, epsrel=1e-11, limit=200)[0] for c in X5]
    np.testing.assert_allclose(pan.w_exact, np.array(Z) / sum(Z), atol=1e-5)
    # lookup weights: softmax of the misfits
    look = np.exp(-cubic_np(X5) ** 2 / (2 * gamma ** 2))
    np.testing.assert_allclose(pan.w_lookup, look / look.sum(), rtol=1e-12)
    # exp(H) re-derived from the weights
    w = pan.w_exact
    assert abs(pan.exp_h - math.exp(-(w * np.log(w)).sum())) < 1e-10
    assert 0 <= pan.tv_lin <= 1 and pan.sigma == 0.3 and pan.x_train.tolist() == X5.tolist()


def test_paper_panels_claims(panels):
    """The claims of the chapter's section 'The one-dimensional problem'."""
    np.testing.assert_array_equal(panels.values, [0.5, 0.3, 0.05])
    assert panels.w_exact.shape == (3, 5) and panels.tv_lin.shape == (3,)
    i5, i3, i05 = 0, 1, 2
    # the log-det helps at moderate sigma
    assert panels.tv_lin[i5] < panels.tv_lin0[i5] and panels.tv_lin[i3] < panels.tv_lin0[i3]
    # both linearized mixtures overweight x = 1.2 at sigma = 0.5, the paper's code more
    assert panels.w_lin0[i5, 3] > panels.w_lin[i5, 3] > panels.w_exact[i5, 3]
    outer = [0, 3, 4]
    assert panels.w_lin[i5, outer].sum() > panels.w_exact[i5, outer].sum()
    assert panels.w_lin0[i5, outer].sum() > panels.w_lin[i5, outer].sum()
    # sigma = 0.05: two spikes of weight 1/2 on +-0.4, nothing at the true model x = 0
    np.testing.assert_allclose(panels.w_exact[i05, [1, 2]], [0.5, 0.5], atol=1e-3)
    assert panels.modes[i5] == 1 and panels.modes[i05] == 2
    assert panels.mass_near_zero[i05] < 1e-6 < panels.mass_near_zero[i5]
    assert max(panels.tv_lin[i05], panels.tv_lin0[i05]) < 0.01


def test_panels_over_datum_symmetry_and_values():
    res = st.panels_over_datum((-1.0, 0.0, 1.0), sigma=0.3, n_grid=301)
    np.testing.assert_array_equal(res.values, [-1.0, 0.0, 1.0])
    assert [float(p.y[0]) for p in res.panels] == [-1.0, 0.0, 1.0]
    # the paper's points are not symmetric, but y = 0 gives equal weight to the mirror pair +-0.4
    assert abs(res.w_exact[1, 1] - res.w_exact[1, 2]) < 1e-10
    # a larger datum moves the weight to larger training points (F is increasing)
    mean_x = res.w_exact @ X5
    assert mean_x[0] < mean_x[1] < mean_x[2]


def test_panel_2d_and_pentagon():
    pent = st.pentagon((0.8, 0.15), n_grid=120, n_display=40)
    assert pent.panels[0].exact.shape == (40, 40) and pent.panels[0].x1.shape == (40,)
    # the true model 0.7 x_0 sits 0.3 |x_0| = 0.6 from x_0 (closed form)
    assert abs(pent.true_dist - 0.6) < 1e-12
    np.testing.assert_allclose(pent.w_exact.sum(1), 1.0)
    ref = P.component_weights(*P.stylized_2d(n_grid=120).args(), 0.15, 0.3, P.stylized_2d(n_grid=120).grid)
    np.testing.assert_allclose(pent.w_exact[1], ref.numpy(), rtol=1e-12)
    assert pent.exp_h[0] > pent.exp_h[1] >= 1.0
    assert pent.panels[0].tv_lin <= pent.panels[0].tv_lin0 + 1e-12


def test_pentagon_claims_chapter_settings():
    pent = st.pentagon((0.8, 0.15), n_display=20)
    assert pent.w_exact[1, 0] > 0.999  # one training point takes everything at sigma = 0.15
    assert pent.w_exact[0, 0] == pent.w_exact[0].max()


# ----------------------------------------------------------------------------- the log-determinant
def test_logdet_factor_closed_form():
    res = st.logdet_factor()
    slopes = 1 + 0.9 * X5 ** 2  # |F'(x)| = 1 + 0.9 x^2
    np.testing.assert_allclose(res.slopes, slopes, rtol=1e-12)
    # 1-D: C_n = gamma^2 + sigma^2 F'(x_n)^2, so the factor is sqrt(C_steep / C_flat)
    C = 0.3 ** 2 + 0.5 ** 2 * slopes ** 2
    assert abs(res.factor - math.sqrt(C[3] / C[2])) < 1e-12 * res.factor
    assert abs(res.ratio_change - res.factor) < 1e-9 * res.factor and res.factor > 1.5
    # at tiny sigma the factor is 1 (the missing term no longer differs between components)
    assert abs(st.logdet_factor(sigma=1e-4).factor - 1) < 1e-6


def test_linearization_identities():
    res = st.linearization_identities()
    assert res.corollary_err < 1e-6
    assert max(res.logdet_err, res.library_logdet_err) < 1e-10 and res.quad_err < 1e-9


# ----------------------------------------------------------------------------- linearization errors
def test_linearization_errors_vanish_for_linear_forward():
    pr = P.Problem(lambda x: 1.7 * x - 0.4, torch.tensor([[-1.0], [0.2], [1.1]], dtype=D64),
                   torch.tensor([0.3], dtype=D64), 0.3, torch.linspace(-6, 6, 6001, dtype=D64))
    e = st.linearization_errors(pr, [0.5, 0.1])
    assert (e.weight_l1 < 1e-5).all() and (e.tv < 2e-3).all()
    np.testing.assert_allclose(e.weight_l1, e.weight_l1_no_logdet, atol=1e-12)


def test_linearization_errors_small():
    e = st.linearization_errors(P.stylized_1d(n_grid=2001), [0.5, 0.1, 0.03])
    assert (np.diff(e.tv) < 0).all() and (np.diff(e.weight_l1) < 0).all()
    assert e.tv[0] < e.tv_no_logdet[0] and e.weight_l1[0] < e.weight_l1_no_logdet[0]
    # weight error re-derived from the library's weights
    pr = P.stylized_1d(n_grid=2001)
    w = P.component_weights(*pr.args(), 0.1, 0.3, pr.grid)
    w1 = P.linearized_mixture(*pr.args(), 0.1, 0.3).weights
    assert abs(e.weight_l1[1] - float((w1 - w).abs().sum())) < 1e-14


def test_error_curves_claims(errors):
    """The three observations of the chapter's section on the linearization error."""
    for e in (errors.cubic, errors.pentagon):
        for key in ("tv", "tv_no_logdet"):
            assert (np.diff(getattr(e, key)) > 0).all(), key
        below = e.sigma <= 0.5
        for key in ("weight_l1", "weight_l1_no_logdet"):
            assert (np.diff(getattr(e, key)[below]) > 0).all(), key
    c = errors.cubic
    assert c.tv[0] < 2e-3 and c.weight_l1[0] < 1e-6
    big = c.sigma >= 0.2
    assert (c.weight_l1[big] < c.weight_l1_no_logdet[big]).all() and (c.tv[big] < c.tv_no_logdet[big]).all()
    low = c.sigma <= 0.1
    assert (abs(c.tv[low] - c.tv_no_logdet[low]) < 1e-3 * c.tv_no_logdet[low]).all()
    p = errors.pentagon
    assert p.tv[-1] < p.tv_no_logdet[-1] and p.weight_l1[-1] < p.weight_l1_no_logdet[-1]
    # the rate, re-derived: a least-squares slope by hand
    lx, ly = np.log(c.sigma[low]), np.log(c.tv[low])
    slope = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    assert abs(errors.tv_slope - slope) < 1e-10 and errors.tv_slope > 1


def test_small_sigma_rates_against_quadrature_and_closed_forms():
    # y = 1: the measured weight errors approach c sigma^2, with c from the second-order expansion
    pr = P.stylized_1d(y=1.0, n_grid=4001)
    r = st.small_sigma_rates(pr)
    e = st.linearization_errors(pr, [0.02, 0.01])
    for key, c in (("weight_l1", r.rate), ("weight_l1_no_logdet", r.rate_no_logdet)):
        rel = np.abs(getattr(e, key) / e.sigma ** 2 / c - 1)
        assert rel[1] < rel[0] and rel[1] < 0.03, (key, rel)
    assert 2.5 < r.rate_no_logdet / r.rate < 3.5  # the omission triples the weight error at every small sigma
    # closed forms for the cubic: shift r F'' / 2 gamma^2; without the log-det also - F'^2 / 2 gamma^2
    res = 1.0 - cubic_np(X5)
    np.testing.assert_allclose(r.shift, res * 1.8 * X5 / 0.18, rtol=1e-12)
    np.testing.assert_allclose(r.shift_no_logdet, (res * 1.8 * X5 - (1 + 0.9 * X5 ** 2) ** 2) / 0.18, rtol=1e-12)
    w = np.exp(-res ** 2 / 0.18)
    w /= w.sum()
    np.testing.assert_allclose(r.lookup, w, rtol=1e-12)
    assert abs(r.rate - (w * np.abs(r.shift - (w * r.shift).sum())).sum()) < 1e-12
    # y = 0: the heavy pair +-0.4 is symmetric (same F'^2, same r F''), so there is no sigma^2 term
    r0 = st.small_sigma_rates(P.stylized_1d())
    assert max(r0.rate, r0.rate_no_logdet) < 1e-5 and r0.shift[1] == pytest.approx(r0.shift[2], rel=1e-12)
    # a linear map: no curvature and one Jacobian, so both rates vanish (the corollary)
    lin = P.Problem(lambda x: 1.7 * x - 0.4, torch.tensor(X5[:, None]), torch.tensor([0.3], dtype=D64), 0.3,
                    torch.linspace(-6, 6, 101, dtype=D64))
    rl = st.small_sigma_rates(lin)
    assert rl.rate == 0.0 and rl.rate_no_logdet < 1e-12
    # 2-D pentagon: Lap F = (0, 0.4) by hand, so the shift is 0.4 r_2 / 2 gamma^2
    p2 = P.stylized_2d(n_grid=30)
    res2 = (p2.y[None] - p2.forward(p2.x_train)).numpy()
    np.testing.assert_allclose(st.small_sigma_rates(p2).shift, 0.4 * res2[:, 1] / 0.18, rtol=1e-10, atol=1e-12)
    with pytest.raises(TypeError, match="problem"):
        st.small_sigma_rates("not a problem")


# ----------------------------------------------------------------------------- the lookup limit
def test_lookup_limit_claims():
    res = st.lookup_limit(sigmas=(2.0, 1e-3, 0.1))  # sorted on return
    np.testing.assert_array_equal(res.sigma, [1e-3, 0.1, 2.0])
    look = np.exp(-(0.45 - cubic_np(X5)) ** 2 / (2 * 0.3 ** 2))
    np.testing.assert_allclose(res.lookup, look / look.sum(), rtol=1e-12)
    np.testing.assert_allclose(res.weights.sum(1), 1.0)
    assert np.abs(res.weights[0] - res.lookup).max() < 1e-3
    gaps = res.gap
    assert (np.diff(gaps) < 0).all() and gaps[-1] < 1e-6 and gaps[1] < 0.02  # 0.3, 0.1, ..., 1e-4
    assert res.lookup[2] == res.lookup.max()  # x = 0.4 carries the datum 0.45


# ----------------------------------------------------------------------------- effective components
def test_stylized_sweep_problem():
    ps = st.stylized_sweep(10)
    torch.testing.assert_close(ps.x_train[:, 0], torch.linspace(-3, 3, 10, dtype=D64))
    assert float(ps.y[0]) == 0.0 and ps.gamma == 0.3 and ps.grid.numel() == 2001
    with pytest.raises(ValueError, match="n_train"):
        st.stylized_sweep(1)


def test_stylized_sweep_pool_subsets():
    """The paper's training sets: index subsets floor(k (P - 1) / (N - 1)) of a P-point pool."""
    even, paper = st.stylized_sweep(10), st.stylized_sweep(10, pool=100)  # 9 divides 99: the same set
    torch.testing.assert_close(paper.x_train, even.x_train, rtol=0, atol=1e-14)
    idx = [(k * 99) // 19 for k in range(20)]  # exact integer arithmetic
    assert idx[:7] == [0, 5, 10, 15, 20, 26, 31]  # uneven steps of 5 and 6
    np.testing.assert_allclose(st.stylized_sweep(20, pool=100).x_train[:, 0].numpy(), -3 + 6 * np.array(idx) / 99,
                               rtol=0, atol=1e-14)
    assert float(st.stylized_sweep(3, pool=100).x_train[1, 0]) == pytest.approx(-3 + 6 * 49 / 99, abs=1e-14)
    s = st.components_sweep(ns=(10, 20), sigmas=(0.01, 0.5), pool=100, n_grid=801)
    e = st.components_sweep(ns=(10, 20), sigmas=(0.01, 0.5), n_grid=801)
    assert s.pool == 100 and e.pool is None
    np.testing.assert_allclose(s.exact[0], e.exact[0], rtol=1e-9)  # N = 10: the same set
    assert 0 < abs(s.plateau[1] / e.plateau[1] - 1) < 0.01         # N = 20: slightly different
    with pytest.raises(ValueError, match="pool"):
        st.stylized_sweep(20, pool=10)
    with pytest.raises(TypeError, match="pool"):
        st.stylized_sweep(20, pool=50.0)


def test_count_modes():
    g = torch.linspace(-5, 5, 1001, dtype=D64)
    one = torch.exp(-g ** 2)
    two = torch.exp(-(g - 2) ** 2 / 0.5) + 0.5 * torch.exp(-(g + 2) ** 2 / 0.5)
    assert st.count_modes(one) == 1 and st.count_modes(two) == 2
    assert st.count_modes(two.numpy()) == 2  # numpy input
    tiny = one + 1e-6 * torch.exp(-(g - 4) ** 2 / 0.01)
    assert st.count_modes(tiny) == 1 and st.count_modes(tiny, rel_height=0.0) == 2
    with pytest.raises(ValueError, match="rel_height"):
        st.count_modes(one, rel_height=1.5)
    with pytest.raises(ValueError, match="density"):
        st.count_modes(-one)


def test_components_are_not_modes():
    """exp(H) near N with a single mode at large sigma; many modes at small sigma."""
    c = st.effective_components_curve(st.stylized_sweep(20, n_grid=1201), [0.005, 3.0])
    assert c.modes[1] == 1 and c.exact[1] > 15
    assert c.modes[0] > 1
    assert abs(c.exact[0] - c.lookup) < 0.02 * c.lookup and c.lookup > 3


def test_components_sweep_claims(sweep):
    """The claims of the chapter's sections on exp(H), sigma_crit and modes."""
    assert sweep.ns.tolist() == [3, 5, 10, 20, 100] and sweep.exact.shape == (5, 36)
    for k, N in enumerate(sweep.ns):
        assert abs(sweep.exact[k, -1] - N) < 0.01 * N          # large sigma: every component counts
        assert abs(sweep.plateau[k] - sweep.lookup[k]) < 0.01 * sweep.lookup[k]   # small sigma: lookup
        # sigma_crit re-derived with numpy: sqrt(delta gamma / mean |F'|) on an even grid
        xs = np.linspace(-3, 3, N)
        ref = math.sqrt((6 / (N - 1)) * 0.3 / np.mean(1 + 0.9 * xs ** 2))
        assert abs(sweep.sigma_crit[k] - ref) < 1e-10 * ref
    assert (np.diff(sweep.sigma_crit) < 0).all()                # denser set: smaller sigma_crit
    assert (sweep.crit_ratio[:, 0] < 1.2).all() and (sweep.crit_ratio[:, 1] > 1.2).all()
    c100 = sweep.curve(100)
    i1 = sweep.sigma_index(1.0)
    assert abs(sweep.sigma[i1] - 1.0) < 0.2
    assert c100.modes[i1] == 1 and c100.exact[i1] > 30          # one mode, dozens of components
    assert c100.modes[0] > c100.exact[0]                         # tiny sigma: more modes than exp(H)
    with pytest.raises(ValueError, match="n"):
        sweep.curve(7)


def test_plateau_estimate():
    g = torch.linspace(-5, 5, 20001, dtype=D64)
    est = st.plateau_estimate(lambda x: 2.0 * x, torch.zeros(1, dtype=D64), 0.3, 0.05, g)
    assert abs(est - math.sqrt(2 * math.pi * math.e) * 0.3 / (2.0 * 0.05)) < 1e-6 * est
    for gamma in (0.15, 0.6):
        pr = st.stylized_sweep(400, gamma=gamma)
        look = P.effective_components(P.lookup_weights(*pr.args(), gamma))
        est = st.plateau_estimate(P.cubic_forward, pr.y, gamma, 6 / 399, g)
        assert abs(look - est) < 0.01 * look, (gamma, look, est)
    with pytest.raises(ValueError, match="spacing"):
        st.plateau_estimate(P.cubic_forward, torch.zeros(1, dtype=D64), 0.3, 0.0, g)
    with pytest.raises(ValueError, match="grid"):
        st.plateau_estimate(P.cubic_forward, torch.zeros(1, dtype=D64), 0.3, 0.1, g.flip(0))


def test_plateau_claims(sweep):
    res = st.plateau()
    assert res.measured == sweep.plateau[-1]                     # the same number as the sweep's
    xs = np.linspace(-3, 3, 100)
    assert res.inside == int((np.abs(cubic_np(xs)) < 0.3).sum())
    assert abs(res.spacing - 6 / 99) < 1e-15
    assert abs(res.linear_rule - math.sqrt(2 * math.pi * math.e) * 0.3 / (6 / 99)) < 1e-12
    assert abs(res.measured - res.continuum) < 0.02 * res.measured
    assert 5 <= res.inside <= 15 and res.measured > res.inside
    assert abs(res.linear_rule - res.measured) < 0.15 * res.measured
    assert abs(res.ratio - res.measured / res.inside) < 1e-12


# ----------------------------------------------------------------------------- contracts
def test_results_are_frozen_and_deterministic():
    a = st.panels_over_sigma((0.3,), n_grid=201)
    b = st.panels_over_sigma((0.3,), n_grid=201)
    np.testing.assert_array_equal(a.w_exact, b.w_exact)
    np.testing.assert_array_equal(a.panels[0].exact, b.panels[0].exact)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.tv_lin = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.plateau(n_train=20).measured = 0.0


def test_bad_input():
    pr1, pr2 = P.stylized_1d(n_grid=101), P.stylized_2d(n_grid=30)
    with pytest.raises(ValueError, match="sigma"):
        st.panel_1d(pr1, -1.0)
    with pytest.raises(ValueError, match="problem"):
        st.panel_1d(pr2, 0.3)
    with pytest.raises(TypeError, match="problem"):
        st.panel_1d("not a problem", 0.3)
    with pytest.raises(ValueError, match="problem"):
        st.panel_2d(pr1, 0.3)
    with pytest.raises(ValueError, match="n_display"):
        st.panel_2d(pr2, 0.3, n_display=3)
    with pytest.raises(ValueError, match="sigmas"):
        st.panels_over_sigma(())
    with pytest.raises(ValueError, match="sigmas"):
        st.panels_over_sigma((0.3, 0.0))
    with pytest.raises(ValueError, match="ys"):
        st.panels_over_datum(())
    with pytest.raises(ValueError, match="steep"):
        st.logdet_factor(steep=5)
    with pytest.raises(ValueError, match="sigmas"):
        st.linearization_errors(pr1, [])
    with pytest.raises(TypeError, match="problem"):
        st.linearization_errors(None, [0.3])
    with pytest.raises(ValueError, match="slope_below"):
        st.error_curves(sigmas_1d=(0.5, 1.0), sigmas_2d=(1.0,), n_grid_1d=101, n_grid_2d=20)
    with pytest.raises(ValueError, match="gap_sigmas"):
        st.lookup_limit(gap_sigmas=(0.1, float("nan")))
    with pytest.raises(ValueError, match="ns"):
        st.components_sweep(ns=(1,))
    with pytest.raises(TypeError, match="ns"):
        st.components_sweep(ns=(2.5,))
    with pytest.raises(ValueError, match="problem"):
        st.effective_components_curve(pr2, [0.3])
    with pytest.raises(ValueError, match="n_fine"):
        st.plateau(n_fine=2)
    with pytest.raises(ValueError, match="gamma"):
        st.plateau(gamma=0.0)

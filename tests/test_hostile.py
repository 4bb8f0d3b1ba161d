"""Hostile but fair input: every class of bad input gets a clear error that names the parameter.

The table of ``book/bad_input.md`` is replayed row by row (so the documentation cannot drift from the
library), then each class is exercised with further cases: tensors (dtype, shape, finiteness), scalars
(type, range, squares that underflow), generators and seeds, callables (the forward map and the denoiser,
probed and guarded at run time), weights and log-weights, grids, training divergence, numerics far from
the origin, the student tool's solution tags and the command-line tools.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from memprior import diffusion, fwi, guidance, metrics, mixture, mle, posterior, practice, student, velocity, wave
from memprior import _checks
from memprior.experiments import _common

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "book" / "bad_input.md"
F64 = torch.float64


# ------------------------------------------------------------------------------------------- set-up
def F(v):
    return v ** 2


def F_nan(v):
    return v * float("nan")


def F_numpy(v):
    """A forward map computed in numpy: torch autograd cannot see through it."""
    return torch.as_tensor(v.detach().numpy() ** 2)


class FlakyForward:
    """A forward map that works for its first few calls, then returns NaN (a solver breaking down mid-run)."""

    def __init__(self, good_calls: int = 4):
        self.calls, self.good = 0, good_calls

    def __call__(self, v):
        self.calls += 1
        return v ** 2 if self.calls <= self.good else v * float("nan")


class _Toy:
    dim, dtype = 1, F64

    def eps(self, x_t, t):
        return torch.zeros_like(x_t)


class NanDenoiser(_Toy):
    def denoise(self, x_t, t):
        return torch.full_like(x_t, float("nan"))


class WideDenoiser(_Toy):
    def denoise(self, x_t, t):
        return torch.zeros(x_t.shape[0], 3, dtype=x_t.dtype)


def namespace() -> dict:
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=F64)
    sched = diffusion.Schedule.linear(10)
    return dict(torch=torch, np=np, math=math, diffusion=diffusion, guidance=guidance, posterior=posterior,
                mixture=mixture, mle=mle, metrics=metrics, wave=wave, fwi=fwi, velocity=velocity,
                x=x, y=torch.tensor([1.0], dtype=F64), F=F, F_nan=F_nan, F_numpy=F_numpy, FlakyForward=FlakyForward,
                sched=sched, den=diffusion.MemorizedDenoiser(x, sched), g=torch.linspace(-1, 3, 9, dtype=F64),
                NanDenoiser=NanDenoiser, WideDenoiser=WideDenoiser)


def _table(heading: str) -> list[list[str]]:
    """Rows of the first markdown table after ``heading`` in book/bad_input.md, cells stripped."""
    text = DOC.read_text().split(heading, 1)[1]
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return [r for r in rows[2:]]  # drop the header and the rule


def _code(cell: str) -> str:
    m = re.fullmatch(r"`(.+)`", cell)
    assert m, f"expected one inline-code example, got {cell!r}"
    return m.group(1)


LIB_ROWS = _table("## The library")
CLI_ROWS = _table("| tool | example | exit code |")
ERRORS = {"TypeError": TypeError, "ValueError": ValueError, "FloatingPointError": FloatingPointError}


def test_the_doc_table_is_listed_in_the_toc():
    assert "book/bad_input" in (ROOT / "_toc.yml").read_text()
    assert len(LIB_ROWS) >= 30 and len(CLI_ROWS) >= 5


@pytest.mark.parametrize("row", LIB_ROWS, ids=[r[0] for r in LIB_ROWS])
def test_doc_table_row_raises_what_it_says(row):
    _, example, error, names = row
    exc = ERRORS[_code(error)]
    with pytest.raises(exc) as info:
        eval(_code(example), namespace())  # noqa: S307  (the examples of our own docs page)
    assert type(info.value) is exc, f"{example}: got {type(info.value).__name__}, the table says {exc.__name__}"
    assert str(info.value).startswith(_code(names)), f"{example}: message {str(info.value)!r} should start " \
                                                     f"with {_code(names)!r}"


@pytest.mark.parametrize("row", CLI_ROWS, ids=[r[1] for r in CLI_ROWS])
def test_doc_table_command_line_rows(row):
    _, example, code = row
    argv = _code(example).split()
    assert argv[:2] == ["python", "-m"]
    r = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == int(code), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"python -m {argv[2]}: error: "), r.stderr


# ------------------------------------------------------------------------------------------- tensors
X = torch.tensor([[0.0, 0.0], [1.0, 0.5], [2.0, -1.0]], dtype=F64)


@pytest.mark.parametrize("bad, exc", [
    (X.to(torch.complex64), TypeError),
    (X > 0, TypeError),
    (np.array([["a", "b"]]), TypeError),
    ([[1.0, 2.0], [3.0]], TypeError),
    (X[:, :, None], ValueError),
    (X[0], ValueError),
    (torch.empty(0, 2), ValueError),
    (torch.empty(3, 0), ValueError),
    (torch.tensor([[0.0, float("inf")]]), ValueError),
    ("x", TypeError),
    (None, TypeError),
])
@pytest.mark.parametrize("make", [
    lambda v: mixture.GaussianMixturePrior(v, 0.5),
    lambda v: diffusion.MemorizedDenoiser(v, diffusion.Schedule.linear(5)),
    lambda v: posterior.lookup_weights(lambda z: z, v, torch.zeros(2), 0.3),
    lambda v: metrics.nearest(X, v),
    lambda v: mle.loo_log_likelihood(v, 0.5),
])
def test_bad_training_sets_name_x_train(make, bad, exc):
    with pytest.raises(exc, match=r"^x_train: "):
        make(bad)


def test_integer_and_half_tensors_are_promoted():
    assert mixture.GaussianMixturePrior(torch.tensor([[0], [2]]), 0.5).x_train.dtype == F64
    prior = mixture.GaussianMixturePrior(X.half(), 0.5)
    assert prior.x_train.dtype == torch.float32 and torch.isfinite(prior.log_prob(X)).all()
    assert mixture.GaussianMixturePrior(X.to(torch.bfloat16), 0.5).x_train.dtype == torch.float32


@pytest.mark.parametrize("bad, exc", [(X[:, :1], ValueError), (X.to(torch.complex128), TypeError),
                                      (X * float("nan"), ValueError), (X.numpy().astype(object), TypeError)])
def test_bad_query_points_name_their_parameter(bad, exc):
    prior = mixture.GaussianMixturePrior(X, 0.5)
    with pytest.raises(exc, match=r"^x: "):
        prior.log_prob(bad)
    den = diffusion.MemorizedDenoiser(X, diffusion.Schedule.linear(5))
    with pytest.raises(exc, match=r"^x_t: "):
        den.denoise(bad, 2)


# ------------------------------------------------------------------------------------------- scalars
@pytest.mark.parametrize("bad, exc, what", [
    ("0.5", TypeError, "convert strings"), (None, TypeError, "got NoneType"), (True, TypeError, "got bool"),
    (1 + 2j, TypeError, "got complex"), (torch.ones(2), TypeError, "shape"),
    (0.0, ValueError, r"\(0, inf\)"), (-1, ValueError, r"\(0, inf\)"), (float("nan"), ValueError, "nan"),
    (float("inf"), ValueError, "inf"), (1e-200, ValueError, "underflows"), (1e-160, ValueError, "underflows"),
    (1e160, ValueError, "overflows"),
])
@pytest.mark.parametrize("call, name", [
    (lambda v: mixture.GaussianMixturePrior(X, v), "sigma"),
    (lambda v: posterior.lookup_weights(lambda z: z, X, torch.zeros(2), v), "gamma"),
    (lambda v: guidance.log_likelihoods(lambda z: z, X, torch.zeros(2), v), "gamma"),
    (lambda v: mle.log_likelihood(X, X, v), "sigma"),
    (lambda v: posterior.linearized_mixture(lambda z: z, X, torch.zeros(2), v, 0.3), "sigma"),
])
def test_bad_scales(call, name, bad, exc, what):
    with pytest.raises(exc, match=rf"^{name}: .*{what}"):
        call(bad)


def test_small_but_representable_scales_still_work():
    w = posterior.lookup_weights(lambda z: z, X, torch.zeros(2), 1e-150)
    assert torch.isfinite(w).all() and float(w.sum()) == pytest.approx(1.0)
    assert w.argmax() == 0
    assert torch.isfinite(mixture.GaussianMixturePrior(X, 1e-150).log_prob(X)).all()


@pytest.mark.parametrize("bad, exc", [(10.0, TypeError), ("10", TypeError), (0, ValueError), (-3, ValueError),
                                      (True, TypeError)])
def test_bad_integers(bad, exc):
    with pytest.raises(exc, match=r"^n_steps: "):
        diffusion.Schedule.linear(bad)
    with pytest.raises(exc, match=r"^n: "):
        diffusion.terminal_sample(X, diffusion.Schedule.linear(5), bad)


def test_integer_valued_tensors_count_as_integers():
    assert diffusion.Schedule.linear(torch.tensor(7)).n_steps == 7


@pytest.mark.parametrize("betas, exc", [
    (torch.full((4,), 0.01, dtype=torch.complex128), TypeError),
    (np.full(4, 0.01) + 0j, TypeError),
    (torch.tensor([0.01, 1.0]), ValueError),
    (torch.tensor([0.01, float("nan")]), ValueError),
    (torch.ones(2, 2) * 0.01, ValueError),
    (["a", "b"], TypeError),
])
def test_bad_schedules(betas, exc):
    with pytest.raises(exc, match=r"^betas: "):
        diffusion.Schedule(betas)


# ------------------------------------------------------------------------------------------- generators, seeds
SCHED = diffusion.Schedule.linear(10)
DEN = diffusion.MemorizedDenoiser(X, SCHED)


@pytest.mark.parametrize("call", [
    lambda g: diffusion.ddim_sample(DEN, SCHED, 2, generator=g),
    lambda g: diffusion.ddpm_sample(DEN, SCHED, 2, generator=g),
    lambda g: diffusion.terminal_sample(X, SCHED, 2, generator=g),
    lambda g: SCHED.q_sample(X, 3, generator=g),
    lambda g: mixture.GaussianMixturePrior(X, 0.5).sample(2, generator=g),
    lambda g: guidance.exact_posterior_sample(X, lambda z: z, torch.zeros(2), 0.3, SCHED, 2, generator=g),
    lambda g: guidance.smc_sample(X, lambda z: z, torch.zeros(2), 0.3, SCHED, 2, generator=g),
    lambda g: posterior.component_weights_is(lambda z: z, X, torch.zeros(2), 0.3, 0.3, generator=g),
    lambda g: velocity.grf(1, 8, 8, generator=g),
    lambda g: fwi.complex_noise((2,), 0.1, generator=g),
])
@pytest.mark.parametrize("bad", [42, np.int64(3), "0", torch.tensor(1)])
def test_generator_misuse_names_generator(call, bad):
    with pytest.raises(TypeError, match=r"^generator: expected a torch\.Generator or None"):
        call(bad)


def test_generator_misuse_shows_how_to_seed():
    with pytest.raises(TypeError, match=r"torch\.Generator\(\)\.manual_seed\(42\)"):
        diffusion.ddim_sample(DEN, SCHED, 2, generator=42)


@pytest.mark.parametrize("bad, exc", [(2 ** 63, ValueError), (2 ** 64 + 5, ValueError), (-1, ValueError),
                                      (1.0, TypeError), ("0", TypeError), (None, TypeError)])
@pytest.mark.parametrize("call", [
    lambda s: mle.fit_flexible_mixture(X, seed=s, steps=1),
    lambda s: diffusion.train_denoiser(X, SCHED, seed=s, steps=1, cache=False, show_progress=False),
    lambda s: _common.generator(s),
    lambda s: fwi.make_training_set(velocity.KLBasis(8, 8, K=2), 3, seed=s),
])
def test_bad_seeds(call, bad, exc):
    with pytest.raises(exc, match=r"^seed: .*2\*\*63 - 1"):
        call(bad)


def test_largest_seed_is_accepted():
    g = _common.generator(2 ** 63 - 1)
    assert isinstance(g, torch.Generator)
    assert torch.isfinite(mle.fit_flexible_mixture(X, seed=2 ** 63 - 1, steps=2).means).all()


# ------------------------------------------------------------------------------------------- callables
Y2 = torch.tensor([1.0, 0.0], dtype=F64)


def _detached(v):
    return v.detach() * 2.0


@pytest.mark.parametrize("forward", [F_numpy, _detached])
@pytest.mark.parametrize("call", [
    lambda f: guidance.dps_sample(DEN, SCHED, f, Y2, 0.3, 2),
    lambda f: guidance.dps_normalized_sample(DEN, SCHED, f, Y2, 2),
    lambda f: guidance.smc_sample(X, f, Y2, 0.3, SCHED, 2),
])
def test_non_differentiable_forward_maps(call, forward):
    with pytest.raises(TypeError, match=r"^forward: .*autograd"):
        call(forward)


@pytest.mark.parametrize("forward, exc, what", [
    (F_nan, ValueError, "NaN or inf"),
    (lambda v: v[:, :1], ValueError, "m = len"),
    (lambda v: v.detach().numpy(), TypeError, "torch.Tensor"),
    (lambda v: v.to(torch.complex128), TypeError, "real"),
    (lambda v, w: v, TypeError, "calling it"),
    (42, TypeError, "callable"),
])
@pytest.mark.parametrize("call", [
    lambda f: guidance.dps_normalized_sample(DEN, SCHED, f, Y2, 2),
    lambda f: guidance.dps_sample(DEN, SCHED, f, Y2, 0.3, 2),
    lambda f: guidance.smc_sample(X, f, Y2, 0.3, SCHED, 2),
])
def test_broken_forward_maps_are_caught_before_the_run(call, forward, exc, what):
    with pytest.raises(exc, match=rf"^forward: .*{re.escape(what)}"):
        call(forward)


@pytest.mark.parametrize("call", [
    lambda f: guidance.dps_normalized_sample(DEN, SCHED, f, Y2, 3),
    lambda f: guidance.dps_sample(DEN, SCHED, f, Y2, 0.3, 3),
])
def test_forward_map_breaking_down_mid_run_is_named(call):
    """The silent case of the issue: a NaN forward map used to give unguided prior samples."""
    with pytest.raises(FloatingPointError, match=r"^forward: .*level t="):
        call(FlakyForward(good_calls=5))


def test_smc_forward_breaking_down_mid_run_is_named():
    with pytest.raises(FloatingPointError, match=r"^forward: .*level t="):
        guidance.smc_sample(X, FlakyForward(good_calls=6), Y2, 0.3, SCHED, 2)


class _Nth(_Toy):
    """A denoiser that goes bad (NaN, or the wrong shape) on its k-th call."""

    def __init__(self, k, kind):
        self.k, self.kind, self.calls = k, kind, 0
        self.dim = 2
        self.x_train = X

    def denoise(self, x_t, t):
        self.calls += 1
        out = DEN.denoise(x_t, t)
        if self.calls >= self.k:
            return out * float("nan") if self.kind == "nan" else out[:, :1]
        return out


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("kind, exc, what", [("nan", FloatingPointError, "NaN or inf"),
                                             ("shape", ValueError, "shape")])
@pytest.mark.parametrize("run", [
    lambda d: diffusion.ddim_sample(d, SCHED, 3),
    lambda d: diffusion.ddpm_sample(d, SCHED, 3),
    lambda d: guidance.dps_normalized_sample(d, SCHED, F, Y2, 3),
    lambda d: guidance.dps_sample(d, SCHED, F, Y2, 0.3, 3),
])
def test_the_sampling_loop_guards_the_denoiser(run, kind, exc, what, k):
    with pytest.raises(exc, match=rf"^denoiser: .*{what}.*level t="):
        run(_Nth(k, kind))


@pytest.mark.parametrize("zeta", [1e308, 1e306])
def test_step_sizes_that_overflow_are_named(zeta):
    with pytest.raises(FloatingPointError, match=r"^zeta \(the step size\): .*level t=.*reduce zeta"):
        guidance.dps_sample(DEN, SCHED, F, Y2, 0.3, 3, zeta=zeta)


def test_a_huge_forward_gradient_is_blamed_on_the_forward_map():
    with pytest.raises(FloatingPointError, match=r"^forward: the gradient .* is NaN or inf"):
        guidance.dps_normalized_sample(DEN, SCHED, lambda v: 1e200 * v, Y2, 3)


def test_a_step_that_blows_up_the_iterate_is_blamed_on_the_step_size():
    """A normalized step of absurd length leaves a finite but huge iterate; the denoiser then fails on it."""
    with pytest.raises(FloatingPointError, match=r"^step_size: .*max \|x_t\| = [\d.]+e\+30\d.*reduce step_size"):
        guidance.dps_normalized_sample(DEN, SCHED, F, Y2, 3, step_size=1e306)


def test_non_finite_start_is_rejected():
    with pytest.raises(ValueError, match=r"^x_T: "):
        diffusion.ddim_sample(DEN, SCHED, 3, x_T=torch.full((3, 2), float("nan")))


# ------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("ll", [torch.full((3,), -math.inf), torch.tensor([0.0, float("nan"), 0.0]),
                                torch.tensor([0.0, math.inf, 0.0]), torch.zeros(2), torch.zeros(3, 1)])
@pytest.mark.parametrize("call", [
    lambda ll: guidance.posterior_terminal_sample(X, SCHED, ll, 2),
    lambda ll: guidance.PosteriorDenoiser(X, SCHED, ll),
    lambda ll: guidance.ExactGuidance(ll).denoise(DEN, X, 2),
])
def test_bad_log_likelihoods(call, ll):
    """posterior_terminal_sample used to accept what PosteriorDenoiser rejected."""
    with pytest.raises(ValueError, match=r"^log_lik: "):
        call(ll)


@pytest.mark.parametrize("lw", [torch.zeros(3), torch.log(torch.tensor([0.5, 0.5, 0.5])),
                                torch.full((3,), -math.inf), torch.tensor([0.0, float("nan"), 0.0])])
def test_mixture_log_prob_needs_normalized_log_weights(lw):
    with pytest.raises(ValueError, match=r"^log_weights: "):
        mle.mixture_log_prob(X, X, lw, 0.5)


def test_mixture_log_prob_accepts_normalized_weights_with_zeros():
    lw = torch.log(torch.tensor([0.5, 0.5, 0.0], dtype=F64))
    out = mle.mixture_log_prob(X, X, lw, 0.5)
    ref = mle.mixture_log_prob(X, X[:2], torch.log(torch.tensor([0.5, 0.5], dtype=F64)), 0.5)
    assert torch.allclose(out, ref)


@pytest.mark.parametrize("w", [torch.zeros(3), torch.tensor([1.5, -0.5, 0.0]), torch.tensor([1.0, float("nan"), 0.0]),
                               torch.ones(2)])
@pytest.mark.parametrize("call", [lambda w: guidance.chi2_test(X, X, w), lambda w: guidance.tv_to_weights(X, X, w)])
def test_bad_target_weights(call, w):
    with pytest.raises(ValueError, match=r"^weights: "):
        call(w)


def test_chi2_rejects_samples_where_the_target_has_no_mass():
    samples = torch.cat([X[:1].expand(30, 2), X[2:].expand(30, 2)])
    for min_expected in (1.0, 5.0, 50.0):
        stat, dof, p = guidance.chi2_test(samples, X, torch.tensor([0.5, 0.5, 0.0]), min_expected=min_expected)
        assert p == 0.0 and stat == math.inf and dof >= 1
    stat, dof, p = guidance.chi2_test(samples, X, torch.tensor([0.5, 0.0, 0.5]))
    assert p == pytest.approx(1.0) and stat == pytest.approx(0.0) and dof == 1


# ------------------------------------------------------------------------------------------- grids
G = torch.linspace(-1, 3, 9, dtype=F64)


@pytest.mark.parametrize("grid, what", [
    ((G, G, G), "3 axes"), ((), "0 axes"), (torch.ones(3, 3), "1-D"), (torch.tensor([1.0, 0.0]), "increasing"),
    (torch.tensor([0.0]), "at least 2"), (torch.tensor([0.0, float("nan")]), "NaN"),
])
def test_bad_grids(grid, what):
    with pytest.raises(ValueError, match=rf"^grid.*{what}"):
        posterior.cell_volumes(grid)


def test_cell_volumes_still_work_for_one_and_two_axes():
    assert float(posterior.cell_volumes(G).sum()) == pytest.approx(4.5)
    assert posterior.cell_volumes((G, G)).shape == (9, 9)
    assert torch.equal(posterior.cell_volumes((G,)), posterior.cell_volumes(G))


def test_helmholtz_pad_checks_the_model_shape():
    s = wave.Helmholtz2D(8, 6, 0.1, npml=5)
    for bad in (np.ones((6, 8)), np.ones(48), np.ones((8, 6, 1))):
        with pytest.raises(ValueError, match=r"^m: expected the interior shape \[nx, nz\] = \[8, 6\]"):
            s.pad(bad)
    assert s.pad(np.ones((8, 6))).shape == (s.NX, s.NZ)
    with pytest.raises(ValueError, match=r"^g_ext: "):
        s.pad_adjoint(np.ones((8, 6)))


@pytest.mark.parametrize("order, exc", [(3, ValueError), (5, ValueError), (1, ValueError), (2.0, TypeError)])
def test_fwi_config_order(order, exc):
    with pytest.raises(exc, match=r"^order: "):
        fwi.FWIConfig(order=order)


# ------------------------------------------------------------------------------------------- training
def test_training_divergence_stops_with_a_clear_error():
    with pytest.raises(FloatingPointError, match=r"training diverged at step \d+ .*lr"):
        diffusion.train_denoiser(X, SCHED, steps=50, lr=1e20, hidden=8, depth=1, cache=False, show_progress=False)


def test_flexible_mixture_divergence_stops_with_a_clear_error(monkeypatch):
    def exploding(x, means, log_weights, sigma):
        return torch.full((x.shape[0],), float("nan"), dtype=x.dtype) + means.sum() * 0
    monkeypatch.setattr(mle, "_mixture_log_prob", exploding)
    with pytest.raises(FloatingPointError, match=r"training diverged at step 0"):
        mle.fit_flexible_mixture(X, steps=5)


# ------------------------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("offset", [1e6, 1e8, -3e9])
def test_far_off_training_sets_keep_their_precision(offset):
    """Distances from differences: a translated problem gives the same answers (the expansion does not)."""
    base = torch.tensor([[0.0, 0.0], [1e-3, 0.0], [0.0, 2e-3]], dtype=F64)
    delta = torch.tensor([[3e-4, 1e-4]], dtype=F64)
    shift = torch.full((1, 2), offset, dtype=F64)
    sched = diffusion.Schedule(torch.full((3,), 1e-6, dtype=F64))  # noise std 1e-3 at level 0, like the spacing
    r = sched.alpha_bar[0].sqrt()
    a = diffusion.MemorizedDenoiser(base, sched).weights(r * base[:1] + delta, 0)
    b = diffusion.MemorizedDenoiser(base + shift, sched).weights(r * (base[:1] + shift) + delta, 0)
    assert 0.2 < float(a[0, 0]) < 0.9, a  # a problem where every weight matters
    assert torch.allclose(a, b, atol=1e-2), (a, b)  # the expansion |x|^2 - 2x.c + |c|^2 gives 0/1 garbage here
    q = base[:1] + delta
    d0 = metrics.sorted_distances(q.expand(40, 2), base, 3)
    d1 = metrics.sorted_distances((q + shift).expand(40, 2), base + shift, 3)
    assert torch.allclose(d0, d1, rtol=1e-3), (d0[0], d1[0])  # representation error of the shift only
    e0 = practice.energy_distance(base, base + 1e-3)
    e1 = practice.energy_distance(base + shift, base + shift + 1e-3)
    assert e1 == pytest.approx(e0, rel=1e-2)


# ------------------------------------------------------------------------------------------- student tool
@pytest.mark.parametrize("tag", ["solution", "Solution", "SOLUTION", " solution "])
def test_solution_tags_match_in_any_case(tag):
    nb = new_notebook(cells=[
        new_markdown_cell("```{exercise}\n:label: t-ex\n\nDo it.\n```"),
        new_code_cell("secret_answer = 42", metadata={"tags": [tag]}),
        new_markdown_cell("The answer is secret_md.", metadata={"tags": [tag]}),
        new_code_cell("print('kept')"),
    ])
    nb.nbformat = 4
    out, _ = student.strip_solutions(nb)
    text = nbformat.writes(out)
    assert "secret_answer" not in text and "secret_md" not in text and "kept" in text


# ------------------------------------------------------------------------------------------- command line
def _cli(*argv, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("argv, option", [
    (("memprior.budgets", "--timeout", "0"), "--timeout"),
    (("memprior.budgets", "--timeout", "inf", "--no-run"), "--timeout"),
    (("memprior.budgets", "--no-run", "--no-pages"), "--no-run"),
    (("memprior.trained", "--write", "{tmp}/w", "--jobs", "0"), "--jobs"),
    (("memprior.trained", "--write", "{tmp}/w", "--ema-decay", "1.0"), "--ema-decay"),
    (("memprior.trained", "--write", "{tmp}/w", "--sizes", "ten"), "--sizes"),
    (("memprior.trained", "--write", "{tmp}/w", "--seed", "-1"), "--seed"),
    (("memprior.trained", "--write", "{tmp}/file.txt/w"), "--write"),
    (("memprior.handout", "{tmp}/folder"), "out"),
    (("memprior.handout", "{tmp}/file.txt/h.pdf"), "out"),
    (("memprior.student", "{tmp}/file.txt"), "outdir"),
    (("memprior.edition", "{tmp}/file.txt"), "outdir"),
])
def test_command_line_usage_errors(tmp_path, argv, option):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    r = _cli(*(a.format(tmp=tmp_path) for a in argv))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and option in r.stderr, r.stderr
    assert not (tmp_path / "w").exists(), "nothing is written on a usage error"


def test_budgets_checks_its_output_before_running(tmp_path, monkeypatch):
    from memprior import budgets

    nb = tmp_path / "a.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), nb)
    ran = []
    monkeypatch.setattr(budgets, "run_notebook", lambda path, timeout: ran.append(path))
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(SystemExit) as info:
        budgets.main([str(nb), "--no-pages", "--json", str(tmp_path / "blocker" / "r.json")])
    assert info.value.code == 2 and ran == []


def test_library_errors_in_a_tool_are_usage_errors_and_failures_exit_3(capsys):
    import argparse

    from memprior import _cli

    p = argparse.ArgumentParser(prog="tool")
    with pytest.raises(SystemExit) as info:
        _cli.run(p, lambda: mixture.GaussianMixturePrior(X, -1.0))
    assert info.value.code == 2 and "tool: error: sigma: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _cli.run(p, lambda: diffusion.train_denoiser(X, SCHED, steps=20, lr=1e20, hidden=4, depth=0, cache=False,
                                                     show_progress=False))
    assert info.value.code == 3 and "training diverged" in capsys.readouterr().err
    assert _cli.run(p, lambda: None) == 0 and _cli.run(p, lambda: 1) == 1


# ------------------------------------------------------------------------------------------- the validators
def test_validators_name_the_parameter_and_the_range():
    with pytest.raises(ValueError, match=r"^lr: must be in \(0, 1\.0\]"):
        _checks.check_positive("lr", 2.0, upper=1.0)
    with pytest.raises(ValueError, match=r"^a: must be a finite number in \[0, 1\]"):
        _checks.check_real("a", 2, low=0, high=1)
    with pytest.raises(TypeError, match=r"^flag: expected True or False"):
        _checks.check_bool("flag", 1)
    with pytest.raises(ValueError, match=r"^mode: must be one of 'a', 'b'"):
        _checks.check_choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match=r"^w: must sum to 1"):
        _checks.check_weights("w", [0.2, 0.2])
    assert float(_checks.check_weights("w", [0.25, 0.75]).sum()) == 1.0
    with pytest.raises(FloatingPointError, match=r"^forward: the thing is NaN or inf at level t=3; fix it"):
        _checks.guard_finite(torch.tensor([math.nan]), "forward", "the thing", 3, "fix it")
    assert _checks.SQUARE_MIN ** 2 > 0 and (_checks.SQUARE_MIN / 2) ** 2 < np.finfo(np.float64).tiny
    assert _checks.probe_forward(F, X) == 2
    with pytest.raises(TypeError, match=r"^forward: "):
        _checks.probe_forward(F_numpy, X, differentiable=True)

"""The course kit: syllabus, refresher, assignments and capstone, API reference, changelog, answer key."""
from __future__ import annotations

import importlib
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
import yaml

import memprior
from memprior import answerkey as A
from memprior import refresher as R
from memprior.experiments import capstone as C

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables of ``text``: each a list of rows (header first, separator dropped) of stripped cells."""
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables


def _minutes(cell: str) -> float:
    return float(cell.split()[0]) if cell else 0.0


def _hours(cell: str) -> float:
    m = re.search(r"([\d.]+) h", cell)
    return float(m.group(1)) if m else 0.0


# =========================================================================== the refresher
def test_gaussian_conditioning_two_forms_and_the_evidence_agree():
    for d, m in ((4, 3), (2, 6), (6, 1)):
        res = R.gaussian_conditioning(d=d, m=m, gamma=0.4, seed=3)
        assert res.max_abs_diff < 1e-10
        assert res.log_evidence == pytest.approx(res.log_evidence_ratio, abs=1e-9)
        assert torch.allclose(res.cov_schur, res.cov_schur.T, atol=1e-12)
        assert bool((torch.linalg.eigvalsh(res.cov_precision) > 0).all())


def test_woodbury_and_determinant_lemma_in_either_dimension():
    for d, m in ((5, 3), (50, 2), (2, 50)):
        res = R.woodbury(d=d, m=m, sigma=0.3, gamma=0.2, seed=1)
        assert res.logdet_data == pytest.approx(res.logdet_model, abs=1e-8)
        assert res.quad_data == pytest.approx(res.quad_model, rel=1e-8)
        assert res.inverse_error < 1e-6 * max(1.0, 1 / 0.2 ** 2)


def test_jensen_gaps_have_the_predicted_sign_and_size():
    res = R.jensen(mu=0.3, s=0.8, a=1.0, gamma=0.3, seed=2)
    assert res.mean_of_exp > res.exp_of_mean
    assert res.mean_of_exp == pytest.approx(math.exp(0.3 + 0.32))
    assert abs(res.mean_of_exp_mc - res.mean_of_exp) < 4 * res.mean_of_exp_se
    ratio = res.likelihood_of_mean / res.mean_likelihood
    assert ratio == pytest.approx(2 * math.exp(-1 / (2 * 0.09)) / (1 + math.exp(-4 / (2 * 0.09))), rel=1e-9)
    assert ratio < 0.01


def test_tweedie_matches_quadrature_at_several_noise_levels():
    for abar in (0.9, 0.5, 0.1):
        res = R.tweedie(abar=abar, seed=4)
        assert res.max_abs_diff < 1e-6, abar


def test_importance_estimate_is_unbiased_and_its_log_is_biased_low():
    res = R.importance_sampling(n=50, repeats=2000, seed=0)
    assert abs(res.mean_z_hat - math.exp(res.log_z)) < 4 * res.se_mean_z_hat
    bias = res.mean_log_z_hat - res.log_z
    assert bias < -2 * res.se_mean_log_z_hat                  # biased low, significantly
    assert abs(bias - res.delta_method_bias) < 4 * res.se_mean_log_z_hat + 0.5 * abs(res.delta_method_bias)
    assert 0 < res.ess_fraction <= 1
    more = R.importance_sampling(n=400, repeats=2000, seed=0)
    assert abs(more.mean_log_z_hat - more.log_z) < abs(bias)  # the bias shrinks with n


def test_complex_gaussian_moments_and_likelihood():
    res = R.complex_gaussian(sigma=0.7, m=6, n=200_000, seed=0)
    assert abs(res.mean_abs2 - 0.49) < 4 * res.se_abs2
    assert res.var_real == pytest.approx(0.245, rel=0.03) and res.var_imag == pytest.approx(0.245, rel=0.03)
    assert abs(res.mean_real_imag) < 0.01 and res.mean_e2 < 0.01
    assert res.nll_complex == pytest.approx(res.nll_real_stacked, rel=1e-12)


@pytest.mark.parametrize("call, name", [
    (lambda: R.gaussian_conditioning(d=0), "d"),
    (lambda: R.gaussian_conditioning(gamma=-1.0), "gamma"),
    (lambda: R.woodbury(sigma=0.0), "sigma"),
    (lambda: R.jensen(mu=float("nan")), "mu"),
    (lambda: R.jensen(n=1), "n"),
    (lambda: R.tweedie(abar=1.0), "abar"),
    (lambda: R.tweedie(grid=10), "grid"),
    (lambda: R.importance_sampling(repeats=1), "repeats"),
    (lambda: R.complex_gaussian(sigma=0), "sigma"),
    (lambda: R.woodbury(seed=-1), "seed"),
])
def test_refresher_rejects_bad_input_naming_the_parameter(call, name):
    with pytest.raises((ValueError, TypeError), match=rf"^{name}\b"):
        call()


def test_refresher_page_names_a_check_for_every_prerequisite_and_links_the_chapters():
    text = (BOOK / "refresher.md").read_text()
    for fn in ("gaussian_conditioning", "woodbury", "jensen", "tweedie", "importance_sampling", "complex_gaussian"):
        assert f"refresher.{fn}()" in text, fn
    for label in ("ch3-prop-linearized", "ch3-lem-det", "ch5-prop-jensen", "ch4-prop-optimal", "ch7-prop-complex",
                  "ch6-prop-gradient", "ch8-prop-reference"):
        assert f"{{prf:ref}}`{label}`" in text, label
    labels = set()
    for path in CHAPTERS:
        labels |= set(re.findall(r":label: (\S+)", "".join(c.source for c in nbformat.read(path, 4).cells)))
    for label in re.findall(r"\{prf:ref\}`([^`]+)`", text):
        assert label in labels, f"refresher links {label}, which no chapter defines"


# =========================================================================== syllabus and teaching page
def _plan_minutes() -> dict:
    text = (BOOK / "teaching.md").read_text()
    rows = next(t for t in _tables(text) if t[0][:3] == ["chapter", "lecture", "lab"])[1:]
    return {re.search(r"`(\d\d_\w+)`", r[0]).group(1): (_minutes(r[1]), _minutes(r[2])) for r in rows}


@pytest.mark.parametrize("heading, weeks, capstone_hours", [("## Three weeks", 3, 9), ("## Four weeks", 4, 6)])
def test_syllabus_weeks_add_up_and_match_the_teaching_plan(heading, weeks, capstone_hours):
    text = (BOOK / "syllabus.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    sessions, summary = _tables(section)[:2]
    assert sessions[0][:7] == ["week", "day", "session", "reading before", "lecture", "lab", "deliverable due"]
    plan = _plan_minutes()
    seen, totals = [], {w: dict(reading=0.0, lecture=0.0, lab=0.0, homework=0.0) for w in range(1, weeks + 1)}
    days = []
    for week, day, session, reading, lecture, lab, due in sessions[1:]:
        w = int(week)
        d = int(re.search(r"day (\d+)", day).group(1))
        assert (d - 1) // 7 + 1 == w, f"{day} is not in week {w}"
        days.append(d)
        m = re.search(r"[`<](\d\d_\w+)[`>]", session)
        if m:
            seen.append(m.group(1))
            assert (_minutes(lecture), _minutes(lab)) == plan[m.group(1)], f"{m.group(1)}: not the teaching plan"
        totals[w]["reading"] += _hours(reading)
        totals[w]["lecture"] += _minutes(lecture) / 60
        totals[w]["lab"] += _minutes(lab) / 60
        for item in filter(None, (s.strip() for s in due.split(";"))):
            totals[w]["homework"] += 3 if re.search(r"\bA\d\b", item) else 1 if "proposal" in item else \
                capstone_hours if "capstone report" in item else 0
    assert days == sorted(days)
    assert sorted(seen) == sorted(plan), "every chapter once"
    assert "capstone report" in sessions[-1][6]
    assert f"about {capstone_hours} hours" in section
    assert [r[0] for r in summary] == ["week"] + [str(w) for w in range(1, weeks + 1)]
    for row in summary[1:]:
        w = int(row[0])
        got = [_hours(c) for c in row[1:]]
        want = [totals[w][k] for k in ("reading", "lecture", "lab", "homework")]
        assert got[:4] == pytest.approx(want), f"week {w}: {got} != {want}"
        assert got[4] == pytest.approx(sum(got[:4])), f"week {w}: total"


def test_syllabus_lecture_and_lab_hours_are_the_teaching_plan():
    plan = _plan_minutes()
    assert sum(v[0] for v in plan.values()) / 60 == pytest.approx(8.25)
    assert sum(v[1] for v in plan.values()) / 60 == pytest.approx(7.5)
    assert "8.25 hours of lectures and 7.5 hours of labs" in (BOOK / "syllabus.md").read_text()


def test_four_week_plan_collects_every_assignment_once():
    text = (BOOK / "syllabus.md").read_text().split("## Four weeks", 1)[1].split("\n## ", 1)[0]
    due = " ".join(r[6] for r in _tables(text)[0][1:])
    assert sorted(re.findall(r"\bA(\d)\b", due)) == [str(k) for k in range(1, 9)]


def test_teaching_page_counts_four_parts_and_points_to_the_course_pages():
    text = (BOOK / "teaching.md").read_text()
    assert "three parts" not in text
    parts = next(t for t in _tables(text) if t[0][:2] == ["part", "chapters"])[1:]
    assert len(parts) == 4 and "four parts" in text
    for doc in ("syllabus", "assignments", "refresher", "changelog"):
        assert f"{{doc}}`{doc}`" in text, doc
    for label in ("teaching-answer-key", "teaching-pin", "teaching-plan"):
        assert f"({label})=" in text


def test_toc_lists_the_course_and_reference_pages_and_they_exist():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for page in ("syllabus", "refresher", "assignments", "api", "changelog", "teaching"):
        assert f"book/{page}" in files, page
        assert (BOOK / f"{page}.md").is_file(), page


# =========================================================================== assignments and capstone
def test_assignments_have_statements_and_rubrics_and_the_sketches_stay_private():
    public = (BOOK / "assignments.md").read_text()
    private = (ROOT / "instructor" / "assignments.md").read_text()
    for k in range(1, 9):
        assert f"(assign-{k})=\n## A{k}." in public, k
        body = public.split(f"## A{k}.", 1)[1].split("\n## ", 1)[0]
        assert "*Specific criteria:*" in body, k
        sketch = private.split(f"### A{k}.", 1)[1].split("\n### ", 1)[0]
        assert "**Sketch.**" in sketch and "**Grading notes.**" in sketch, k
        first = sketch.split("**Sketch.**", 1)[1].strip().split(".")[0]
        assert len(first) > 20 and first not in public, f"A{k}: the sketch is on the public page"
    assert "Sketch" not in public
    rubric = next(t for t in _tables(public) if t[0][:2] == ["criterion", "points"])
    assert sum(int(r[1]) for r in rubric[1:]) == 10
    capstone = _tables(public.split("(capstone)=", 1)[1])[0]
    assert sum(int(r[1]) for r in capstone[1:]) == 25
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "instructor" in cfg["exclude_patterns"], "the private notes must never be built"


def test_the_assignments_link_only_labels_that_exist():
    text = (BOOK / "assignments.md").read_text()
    labels = set()
    for path in CHAPTERS:
        labels |= set(re.findall(r":label: (\S+)", "".join(c.source for c in nbformat.read(path, 4).cells)))
    for label in re.findall(r"\{prf:ref\}`([^`]+)`", text):
        assert label in labels, label
    for doc in re.findall(r"\{doc\}`([^`]+)`", text):
        assert (BOOK / f"{doc}.md").is_file() or (BOOK / f"{doc}.ipynb").is_file(), doc


TINY = dict(grid=6, n_small=4, n_large=12, n_fresh=40, n_held=10, steps=40, hidden=16, depth=1, n_samples=24,
            snapshot_fractions=(0.5, 1.0))


def test_family_models_are_layered_with_velocity_increasing_downwards():
    v = C.family_models("layered", 20, grid=10, extent=1.0, seed=1)
    assert v.shape == (20, 10, 10) and v.dtype == torch.float64
    assert bool((v.diff(dim=2) >= 0).all()), "velocity never decreases with depth"
    assert bool((v[:, :, :1] == v[:, :1, :1]).all()), "layered: the same at every x"
    assert float(v.min()) >= 1.6 and float(v.max()) <= 3.2
    assert all(len(torch.unique(m)) == 3 for m in v)
    f = C.family_models("faulted", 20, grid=16, extent=1.0, seed=1)
    differ = [(m[0] != m[-1]).any().item() for m in f]
    assert sum(differ) >= 15, "a fault with a throw offsets the layers between the two sides"
    assert torch.equal(C.family_models("faulted", 5, seed=3), C.family_models("faulted", 5, seed=3))


@pytest.mark.parametrize("call, name", [
    (lambda: C.family_models("folded", 3), "family"),
    (lambda: C.family_models("layered", 0), "n"),
    (lambda: C.family_models("layered", 3, grid=2), "grid"),
    (lambda: C.CapstoneConfig(family="x"), "family"),
    (lambda: C.CapstoneConfig(n_small=1), "n_small"),
    (lambda: C.CapstoneConfig(noise=0), "noise"),
    (lambda: C.CapstoneConfig(well=1.5), "well"),
    (lambda: C.CapstoneConfig(snapshot_fractions=(0.5,)), "snapshot_fractions"),
    (lambda: C.make_data("config"), "config"),
    (lambda: C.report_markdown(None), "result"),
])
def test_capstone_rejects_bad_input_naming_the_parameter(call, name):
    with pytest.raises((ValueError, TypeError), match=rf"^{name}\b"):
        call()


def test_capstone_detection_flags_a_closed_form_memorized_prior_far_above_the_null():
    from memprior import diffusion as dif

    data = C.make_data(C.CapstoneConfig(**TINY))
    s = dif.Schedule.linear(200)
    priors = C.Priors(s, dif.MemorizedDenoiser(data.small, s), dif.MemorizedDenoiser(data.large, s), {}, 0.0)
    det = C.detect(data, priors)
    for key in ("small", "large"):
        assert det.flagged[key] > 0.9, key          # samples of the memorized prior are training points
        assert det.flagged[key] > det.null[key] + 5 * max(det.null_se[key], 0.01)


def test_capstone_reference_solution_runs_and_writes_the_checklist_report():
    cfg = C.CapstoneConfig(**TINY)
    res = C.run(cfg, cache=False)
    d = res.data
    assert d.small.shape == (4, 36) and d.large.shape == (12, 36) and torch.equal(d.small, d.large[:4])
    assert d.forward(d.small).shape == (4, 3)
    assert torch.allclose(d.to_velocity(d.small).reshape(4, -1), d.mean + d.scale * d.small)
    assert float(res.lookup.sum()) == pytest.approx(1.0) and 1.0 <= res.lookup_components <= 4.0
    assert res.curve.best_step in res.curve.steps and list(res.curve.steps) == list(cfg.snapshot_steps)
    assert len(res.rows) == 5
    ref = res.rows[-1]
    assert ref.flagged == ref.null, "the true prior is its own null"
    for row in res.rows:
        assert 1.0 <= row.posterior.ess and 0 <= row.posterior.copy_fraction <= 1 and row.posterior.error >= 0
    text = C.report_markdown(res)
    for k, title in enumerate(("The training set", "Training", "A memorization score with its null",
                               "Nearest-neighbour galleries", "The posterior against the lookup", "Sampler checks",
                               "Sensitivity to the prior", "Seeds and budgets"), start=1):
        assert f"## {k}. {title}" in text, title
    assert f"{100 * res.detection.flagged['small']:.1f} %" in text
    assert f"{ref.posterior.error:.3f}" in text


# =========================================================================== API reference
def _exercise_calls() -> set:
    """``module.name`` for every library function or class that a chapter's code calls."""
    calls = set()
    for path in CHAPTERS:
        nb = nbformat.read(path, 4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        alias = {}
        for m in re.finditer(r"^\s*from (memprior(?:\.\w+)*) import (\w+)(?: as (\w+))?", code, re.M):
            alias[m.group(3) or m.group(2)] = f"{m.group(1)}.{m.group(2)}"
        for m in re.finditer(r"^\s*import (memprior(?:\.\w+)*) as (\w+)", code, re.M):
            alias[m.group(2)] = m.group(1)
        for name, target in alias.items():
            for m in re.finditer(rf"\b{name}\.(\w+)\s*\(", code):
                calls.add((target, m.group(1)))
    return calls


def test_api_page_documents_every_library_function_the_chapters_call():
    text = (BOOK / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (\S+)", text, re.M))
    calls = _exercise_calls()
    assert len(calls) > 40
    missing = []
    for target, name in sorted(calls):
        try:
            mod = importlib.import_module(target)
        except ModuleNotFoundError:
            continue                                   # a class or function imported by name
        if not mod.__name__.startswith("memprior") or name.startswith("_"):
            continue
        public = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        if mod.__name__ not in documented or name not in public:
            missing.append(f"{mod.__name__}.{name}")
    assert not missing, f"not on the API page: {missing}"
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon"} <= set(cfg["sphinx"]["extra_extensions"])


# =========================================================================== changelog and editions
def test_changelog_lists_the_current_version_and_is_shown_in_the_book():
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d\d-\d\d)$", text, re.M)
    assert versions and versions[0][0] == memprior.__version__
    assert text.index("## [Unreleased]") < text.index(f"## [{memprior.__version__}]")
    assert "{include} ../CHANGELOG.md" in (BOOK / "changelog.md").read_text()
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    book = release["jobs"]["book"]
    runs = "\n".join(s.get("run", "") for s in book["steps"])
    assert "set_repository.py" in runs and "github.ref_name" in runs and "jupyter-book build" in runs
    assert book["permissions"]["contents"] == "write"


# =========================================================================== the answer key
def test_strip_for_book_removes_every_solution_and_keeps_every_exercise():
    for path in CHAPTERS:
        nb = nbformat.read(path, 4)
        out, removed = A.strip_for_book(nb, path.name)
        text = "\n".join(c.source for c in out.cells)
        assert "solution-start" not in text and "solution-end" not in text
        assert not any("solution" in (c.metadata.get("tags") or []) or "answer" in (c.metadata.get("tags") or [])
                       for c in out.cells)
        before = "\n".join(c.source for c in nb.cells)
        assert text.count("{exercise}") == before.count("{exercise}") == len(removed), path.name
        assert len(out.cells) < len(nb.cells)


def test_every_exercise_of_the_book_has_a_solution_in_the_export():
    from memprior.edition import collect_labels

    labels = collect_labels(CHAPTERS)
    total = 0
    for path in CHAPTERS:
        sols = A.chapter_solutions(nbformat.read(path, 4), path.stem, labels)
        total += len(sols)
        for s in sols:
            assert s.parts, f"{s.label}: no solution"
            assert s.number.startswith("Exercise "), s.label
            assert "solution-start" not in s.statement and ":label:" not in s.statement
    assert total >= 29


def test_answer_key_sets_hide_solutions_and_changes_nothing_else():
    text = (ROOT / "_config.yml").read_text()
    before = yaml.safe_load(text)
    after = yaml.safe_load(A._set_hide_solutions(text))
    assert after["sphinx"]["config"].pop("hide_solutions") is True
    assert after == before
    again = yaml.safe_load(A._set_hide_solutions(A._set_hide_solutions(text)))
    assert again["sphinx"]["config"]["hide_solutions"] is True


def test_solutions_in_html_finds_solution_elements_and_not_their_names_in_text(tmp_path):
    pages = {
        "a.html": '<p>x</p><div class="solution dropdown admonition" id="s-1"><p>answer</p></div>',
        "b.html": '<section id="solution-content"><p>answer</p></section>',
        "c.html": '<div class="cell tag_solution docutils container">code</div>',
        "d.html": "<p>the page says &lt;div class=&quot;solution and tag_solution and solution-content</p>",
        "e.html": '<div class="solutions-overview">a heading that is not a solution</div>',
    }
    for name, text in pages.items():
        (tmp_path / name).write_text(text)
    assert A.solutions_in_html(tmp_path) == ["a.html", "b.html", "c.html"]
    with pytest.raises(ValueError, match="^html_dir"):
        A.solutions_in_html(tmp_path / "missing")


def test_answer_key_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="^start"):
        A.repository_root(tmp_path)
    with pytest.raises(TypeError, match="^executed"):
        A.chapter_solutions([], "x")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("```{exercise}\n:label: ex-a\n\nDo it.\n```"),
        nbformat.v4.new_markdown_cell("```{solution-start} ex-b\n```")])
    with pytest.raises(ValueError, match="not an exercise here"):
        A.chapter_solutions(nb, "x")
    nb.cells[1].source = "```{solution-start} ex-a\n```"
    with pytest.raises(ValueError, match="has no solution-end"):
        A.chapter_solutions(nb, "x")
    with pytest.raises(ValueError, match="has no solution-end"):
        A.strip_for_book(nb, "x")
    r = subprocess.run([sys.executable, "-m", "memprior.answerkey", str(ROOT / "book" / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "outside the repository's book/" in r.stderr


_TINY_NB = {
    "cells": [
        ("markdown", "# A tiny chapter\n\nSome prose."),
        ("code", "x = 2 + 3\nprint('setup', x)"),
        ("markdown", "```{exercise}\n:label: tiny-ex-one\n\nSquare $x$ and print it.\n```\n\n"
                     "```{solution-start} tiny-ex-one\n:class: dropdown\n```"),
        ("code:solution", "sq = x ** 2\nprint('SQUARED-SOLUTION', sq)"),
        ("markdown:solution", "The square of FIVE-IN-WORDS is twenty-five."),
        ("markdown", "```{solution-end}\n```"),
        ("markdown", "Closing prose after the exercise."),
    ]}


def _tiny_book(root: Path, branch: str = "v0.1.0") -> Path:
    (root / "book").mkdir(parents=True)
    shutil.copytree(BOOK / "_ext", root / "book" / "_ext")
    shutil.copy2(BOOK / "references.bib", root / "book" / "references.bib")
    cfg = (ROOT / "_config.yml").read_text()
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        from set_repository import set_repository
    finally:
        sys.path.pop(0)
    cfg = set_repository(cfg, "https://github.com/course/fork", branch)
    (root / "_config.yml").write_text(cfg)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_tiny\n"
                                   "  - file: book/plain\n")
    (root / "book" / "intro.md").write_text("# Intro\n\nA tiny book for the answer-key test.\n")
    (root / "book" / "plain.md").write_text(
        "# Plain\n\n```{exercise}\n:label: plain-ex\n\nName a prime.\n```\n\n"
        "```{solution} plain-ex\n:class: dropdown\n\nPLAIN-SOLUTION-TEXT: seven.\n```\n")
    cells = []
    for kind, src in _TINY_NB["cells"]:
        base, _, tag = kind.partition(":")
        c = nbformat.v4.new_code_cell(src) if base == "code" else nbformat.v4.new_markdown_cell(src)
        if tag:
            c.metadata["tags"] = [tag]
        cells.append(c)
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                         "language": "python"}})
    nbformat.write(nb, root / "book" / "01_tiny.ipynb")
    (root / "instructor").mkdir()
    (root / "instructor" / "assignments.md").write_text("## The assignments\n\nPRIVATE-SKETCHES\n")
    return root


def test_answer_key_export_holds_statement_solution_code_and_output(tmp_path):
    root = _tiny_book(tmp_path / "repo")
    md, page = A.export_solutions(tmp_path / "key", root, include_capstone=False)
    text = md.read_text()
    assert "### Exercise 1 (`tiny-ex-one`)" in text or "(`tiny-ex-one`)" in text
    assert "Square $x$ and print it." in text
    assert "sq = x ** 2" in text and "SQUARED-SOLUTION 25" in text       # the code and what it printed
    assert "FIVE-IN-WORDS" in text and "PRIVATE-SKETCHES" in text
    assert "Closing prose" not in text and "setup 5" not in text          # nothing outside the solution
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "SQUARED-SOLUTION 25" in html


def test_answer_key_builds_a_book_without_solutions_whose_launch_links_take_the_tag(tmp_path):
    root = _tiny_book(tmp_path / "repo", branch="v0.1.0")
    out = A.build_without_solutions(tmp_path / "html", root, workdir=tmp_path / "work", quiet=True)
    tiny = (out / "book" / "01_tiny.html").read_text()
    plain = (out / "book" / "plain.html").read_text()
    assert "Square" in tiny and "Name a prime" in plain                   # the exercises stay
    for page in (tiny, plain):
        assert "SQUARED-SOLUTION" not in page and "FIVE-IN-WORDS" not in page and "PLAIN-SOLUTION-TEXT" not in page
    assert A.solutions_in_html(out) == []
    assert "Closing prose after the exercise." in tiny
    # the stripped chapter is what the download button offers
    src = json.loads((tmp_path / "work" / "book" / "01_tiny.ipynb").read_text())
    assert "SQUARED-SOLUTION" not in json.dumps(src)
    assert "PLAIN-SOLUTION-TEXT" not in (tmp_path / "work" / "book" / "plain.md").read_text()
    assert not any("SOLUTION" in p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
                   and p.suffix in (".md", ".ipynb", ".html", ".txt"))
    # pinned edition: the launch buttons open the tag
    assert "mybinder.org/v2/gh/course/fork/v0.1.0" in tiny
    assert "colab.research.google.com/github/course/fork/blob/v0.1.0/edition/01_tiny.ipynb" in tiny

"""Tests for the graded exercises and the nbgrader source set (memprior.grading).

The round trip (generate, then autograde a solved and a blank submission) needs the optional grader,
``pip install -r requirements-grading.txt``; CI installs it (.ci/run). It grades chapter 2 only, whose graded
exercises need no more than a few cells of the chapter, so it stays well under two minutes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from memprior import grading, student

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def _graded_nb(answer="ans", points=2, grader_src="assert ans == 3", solution_src="ans = x + 1",
               statement="Add one to `x`; store it in `ans`."):
    grader = new_code_cell(grader_src, metadata={"tags": ["solution", "grader"],
                                                 "memprior": {"grade": {"answer": answer, "points": points}}})
    return new_notebook(cells=[
        new_markdown_cell("# T"),
        new_code_cell("import math", metadata={}),
        new_code_cell("x = 2\nunused = 5"),
        new_code_cell("z = 7"),
        new_markdown_cell(f"```{{exercise}}\n:label: t-ex\n\n{statement}\n```\n\n```{{solution-start}} t-ex\n```"),
        new_code_cell(solution_src, metadata={"tags": ["solution"]}),
        grader,
        new_markdown_cell("```{solution-end}\n```"),
    ])


def test_graded_exercises_parses_answer_points_and_cells():
    (e,) = grading.graded_exercises(_graded_nb())
    assert (e.label, e.answer, e.points) == ("t-ex", "ans", 2.0)
    assert e.solution == ("ans = x + 1",) and e.grader == "assert ans == 3"


def test_setup_slice_keeps_only_what_the_graded_cells_read():
    nb = _graded_nb()
    ex = grading.graded_exercises(nb)
    assert grading.setup_slice(nb, ex) == [1, 2]   # the imports cell and the cell defining x; not z = 7


@pytest.mark.parametrize("kwargs, message", [
    ({"answer": "not an identifier"}, "identifier"),
    ({"points": 0}, "points"),
    ({"points": True}, "points"),
    ({"grader_src": "assert x == 2"}, "does not read its answer"),
    ({"solution_src": "other = 3"}, "assigns its answer"),
    ({"statement": "Add one to x."}, "does not name its answer"),
])
def test_malformed_graded_exercises_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grading.graded_exercises(_graded_nb(**kwargs))


def test_grader_cell_outside_a_solution_is_refused():
    nb = _graded_nb()
    nb.cells[7].source = ""                    # no solution-end ...
    nb.cells[4].source = nb.cells[4].source.split("\n\n```{solution-start}")[0]   # ... and no solution-start
    with pytest.raises(ValueError, match="inside a gated solution"):
        grading.graded_exercises(nb)
    with pytest.raises(TypeError, match="nb"):
        grading.graded_exercises(["not a notebook"])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="timeout"):
        grading.write_source_set(tmp_path / "c", BOOK, timeout=0)
    with pytest.raises(ValueError, match="chapters"):
        grading.write_source_set(tmp_path / "c", BOOK, chapters=["99"])
    with pytest.raises(ValueError, match="outdir"):
        grading.write_source_set(BOOK / "inside", BOOK)
    with pytest.raises(ValueError, match="source"):
        grading.write_source_set(tmp_path / "c", tmp_path / "missing")
    with pytest.raises(ValueError, match="path"):
        grading.assignment_name("intro.ipynb")


def test_every_chapter_has_graded_exercises_that_the_student_set_hides():
    """The implement-it-yourself exercises of chapters 2, 4, 5 and 6 are graded; the student set keeps no grader."""
    chapters = {}
    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        chapters[path.stem[:2]] = [e.label for e in grading.graded_exercises(nb, path.name)]
        out, _ = student.strip_solutions(nb, name=path.name)
        assert not any(grading.GRADER_TAG in c.metadata.get("tags", []) for c in out.cells), path.name
    for ch, label in (("02", "ch2-ex-implement"), ("04", "ch4-ex-implement"), ("05", "ch5-ex-dpsstep"),
                      ("06", "ch6-ex-dottest")):
        assert label in chapters[ch], f"{label} is not graded"


def test_source_set_layout_and_nbgrader_metadata(tmp_path):
    (path,) = grading.write_source_set(tmp_path / "course", BOOK, chapters=["02"])
    assert path == (tmp_path / "course" / "source" / "ch02" / "ch02_exercises.ipynb").resolve()
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells]
    assert len(ids) == len(set(ids)), "grade ids are unique"
    tests = [c for c in nb.cells if c.metadata["nbgrader"]["grade"]]
    sols = [c for c in nb.cells if c.metadata["nbgrader"]["solution"]]
    assert len(tests) == len(sols) == len(grading.graded_exercises(
        nbformat.read(BOOK / "02_lookup_posterior.ipynb", as_version=4)))
    assert all("### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source for c in sols)
    assert all(c.metadata["nbgrader"]["locked"] for c in tests)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "{exercise}" not in text and "{prf:ref}" not in text, "statements are plain Markdown"
    assert "c.CourseDirectory.root" in (tmp_path / "course" / "nbgrader_config.py").read_text()


def _nbgrader():
    exe = shutil.which("nbgrader", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the optional grader is not installed (pip install -r requirements-grading.txt)")
    return exe


def test_round_trip_solved_gets_full_marks_and_blanks_get_none(tmp_path):
    """nbgrader generate and autograde, chapter 2: solved 100 %, blank 0, an unstable answer loses its points."""
    exe = _nbgrader()
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    res = subprocess.run([sys.executable, "-m", "memprior.grading", "source", str(course), "--source", str(BOOK),
                          "--chapters", "02", "--timeout", "120"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr

    env = dict(os.environ, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # nbgrader runs alembic

    def nbg(*args):
        r = subprocess.run([exe, *args], cwd=course, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    nbg("generate_assignment", "ch02", "--force")
    release = course / "release" / "ch02" / "ch02_exercises.ipynb"
    blank = nbformat.read(release, as_version=4)
    assert "raise NotImplementedError()" in "\n".join(c.source for c in blank.cells)
    assert "lookup_mine(F, x_train, y, gamma):\n    logits" not in "\n".join(c.source for c in blank.cells)
    # the solved copy is the student version with the solution cells answered (here: by the instructor's solution)
    source = nbformat.read(course / "source" / "ch02" / "ch02_exercises.ipynb", as_version=4)
    solved = nbformat.read(release, as_version=4)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells}
    for c in solved.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            c.source = by_id[c.metadata["nbgrader"]["grade_id"]].replace("### BEGIN SOLUTION\n", "").replace(
                "\n### END SOLUTION", "")
    # a wrong answer: the lookup weights computed without the log-space shift (they underflow to 0/0 = NaN)
    naive = nbformat.read(release, as_version=4)
    for c in naive.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "ch2-ex-implement-answer":
            c.source = ("def lookup_mine(F, x_train, y, gamma):\n"
                        "    w = torch.exp(-((y - F(x_train)) ** 2).sum(1) / (2 * gamma**2))\n"
                        "    return w / w.sum()")
        elif c.metadata.get("nbgrader", {}).get("solution"):
            c.source = next(s.source for s in solved.cells
                            if s.metadata.get("nbgrader", {}).get("grade_id") == c.metadata["nbgrader"]["grade_id"])
    for who, nb in (("solved", solved), ("blank", blank), ("naive", naive)):
        folder = course / "submitted" / who / "ch02"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "ch02_exercises.ipynb")
    nbg("autograde", "ch02", "--force", "--create")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {who: gb.find_submission("ch02", who) for who in ("solved", "blank", "naive")}
        total = scores["solved"].max_score
        got = {who: s.score for who, s in scores.items()}
    assert total == sum(e.points for e in grading.graded_exercises(
        nbformat.read(BOOK / "02_lookup_posterior.ipynb", as_version=4)))
    points = {e.label: e.points for e in grading.graded_exercises(
        nbformat.read(BOOK / "02_lookup_posterior.ipynb", as_version=4))}
    assert got == {"solved": total, "blank": 0.0, "naive": total - points["ch2-ex-implement"]}, got


# --------------------------------------------------------------------------- objectives and assessment

def _objectives(nb) -> int:
    """Number of items in the chapter's ``{admonition} Learning objectives`` block."""
    import re

    text = nb.cells[0].source
    m = re.search(r"```\{admonition\} Learning objectives\n(.*?)\n```", text, re.S)
    assert m, "the first cell holds the learning objectives"
    return len(re.findall(r"^(?:-|\d+\.) ", m.group(1), re.M))


def _exercise_labels(nb) -> list:
    import re

    return [m.group(1) for c in nb.cells if c.cell_type == "markdown"
            for m in re.finditer(r"\{exercise\}[^\n]*\n:label: (\S+)", c.source)]


def _assessment_table():
    import re

    text = (BOOK / "teaching.md").read_text()
    assert "## Objectives and how each is assessed" in text
    section = text.split("## Objectives and how each is assessed", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for m in re.finditer(r"^\| (\d+)\.(\d+) \|[^|]+\| (.+) \|$", section, re.M):
        key = (int(m.group(1)), int(m.group(2)))
        assert key not in rows, f"objective {key} listed twice"
        cells = m.group(3)
        rows[key] = [(lab.group(1), bool(lab.group(2)))
                     for lab in re.finditer(r"\{numref\}`([^`]+)`( \(graded\))?", cells)]
    return rows


def test_every_objective_is_assessed_by_existing_exercises():
    rows = _assessment_table()
    all_labels, graded = {}, set()
    expected = set()
    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        ch = int(path.stem[:2])
        n_obj = _objectives(nb)
        assert n_obj >= 3, path.name
        expected |= {(ch, k) for k in range(1, n_obj + 1)}
        for lab in _exercise_labels(nb):
            all_labels[lab] = ch
        graded |= {e.label for e in grading.graded_exercises(nb, path.name)}
    assert len(expected) >= 38
    missing = sorted(expected - set(rows))
    assert not missing, f"objectives without an assessment row: {missing}"
    extra = sorted(set(rows) - expected)
    assert not extra, f"rows for objectives that no chapter has: {extra}"
    for key, labels in rows.items():
        assert labels, f"objective {key} has no assessment"
        for lab, marked in labels:
            assert lab in all_labels, f"objective {key}: no exercise labelled {lab!r}"
            assert all_labels[lab] == key[0], f"objective {key}: {lab!r} belongs to chapter {all_labels[lab]}"
            assert marked == (lab in graded), f"{lab!r}: '(graded)' must mark exactly the graded exercises"


def test_every_exercise_states_its_difficulty_and_time():
    import re

    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for c in nb.cells:
            if c.cell_type != "markdown":
                continue
            for m in re.finditer(r"```\{exercise\}\n:label: (\S+)\n(.*?)\n```", c.source, re.S):
                assert re.search(r"\*Difficulty: (basic|intermediate|advanced) · about \d+ min", m.group(2)), \
                    f"{path.name}: {m.group(1)} states no difficulty and time"


def test_explore_and_live_app_sections_ask_guided_questions():
    """Every chapter with a live app (except chapter 7, whose questions are an exercise) asks guided questions."""
    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        if "in_book_build()" not in text:
            continue
        if path.stem.startswith("07"):
            assert "ch7-ex-app" in _exercise_labels(nb)
        else:
            assert "**Guided questions**" in text, path.name
        assert "Predict" in text, f"{path.name}: no predict-then-run prompt"


def test_every_source_notebook_defines_what_its_cells_read(tmp_path):
    """A static check of the whole source set: no graded cell reads a name that its notebook never defines."""
    import builtins

    written = grading.write_source_set(tmp_path / "course", BOOK)
    assert [p.parent.name for p in written] == sorted(
        grading.assignment_name(p) for p in BOOK.glob("[0-9][0-9]_*.ipynb")
        if grading.graded_exercises(nbformat.read(p, as_version=4), p.name))
    for path in written:
        nb = nbformat.read(path, as_version=4)
        available = set(dir(builtins))
        for c in nb.cells:
            if c.cell_type != "code":
                continue
            src = c.source.replace("### BEGIN SOLUTION\n", "").replace("\n### END SOLUTION", "")
            bound, read = student.cell_names(src)
            missing = read - bound - available
            assert not missing, f"{path.name}, {c.metadata['nbgrader']['grade_id']}: reads {sorted(missing)}"
            available |= bound

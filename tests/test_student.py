"""Tests for the student notebook set (memprior.student)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from memprior import edition, student

ROOT = Path(__file__).resolve().parents[1]
SECRET = "SECRET_SOLUTION_CODE"


def _synthetic_notebook() -> nbformat.NotebookNode:
    """A small chapter with three exercises written in the three styles the book may use."""
    cells = [
        new_markdown_cell("# A tiny chapter\n\nSome prose."),
        new_code_cell("x = 2\nprint(x)", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text="2\n")]),
        # 1. Gated solution, backtick fences; solution-start shares the cell with the exercise.
        new_markdown_cell("```{exercise}\n:label: t-ex-one\n\nCompute x + 1.\n```\n\n"
                          "```{solution-start} t-ex-one\n:class: dropdown\n```"),
        new_code_cell(f"{SECRET}_1 = x + 1\nassert {SECRET}_1 == 3", metadata={"tags": ["solution"]}),
        new_markdown_cell(f"The answer is three ({SECRET}_md).", metadata={"tags": ["solution"]}),
        new_markdown_cell("```{solution-end}\n```"),
        # 2. Gated solution with colon fences, and a solution cell that lost its tag.
        new_markdown_cell(":::{exercise}\n:label: t-ex-two\n\nSquare x.\n:::"),
        new_markdown_cell(":::{solution-start} t-ex-two\n:class: dropdown\n:::"),
        new_code_cell(f"{SECRET}_2 = x ** 2  # untagged, but inside the gated solution"),
        new_markdown_cell(f"Prose inside the solution ({SECRET}_prose).\n\n:::{{solution-end}}\n:::\n\n"
                          "Text after the solution stays."),
        # 3. A non-gated solution directive whose body is the solution, with a nested code fence.
        new_markdown_cell("````{exercise}\n:label: t-ex-three\n\nName the result.\n````\n\n"
                          f"````{{solution}} t-ex-three\n:class: dropdown\n\n```python\n{SECRET}_3 = 4\n```\n````\n\n"
                          "## Summary\n\nDone."),
        new_code_cell("y = x * 10\nassert y == 20\nprint('student run ok')"),
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                 "version_minor": 0}},
    })
    nbformat.validate(nb)
    return nb


@pytest.fixture()
def book_dir(tmp_path):
    src = tmp_path / "book"
    src.mkdir()
    nbformat.write(_synthetic_notebook(), src / "01_tiny.ipynb")
    return src


def test_strip_removes_all_solutions_and_keeps_exercises(book_dir, tmp_path):
    out = tmp_path / "student"
    written = student.write_student_set(out, book_dir)
    assert [p.name for p in written] == ["01_tiny.ipynb"]
    raw = written[0].read_text()
    nb = nbformat.read(written[0], as_version=4)
    nbformat.validate(nb)
    assert SECRET not in raw, "solution code or prose survived"
    assert "solution-start" not in raw and "solution-end" not in raw and "{solution}" not in raw
    for cell in nb.cells:
        assert "solution" not in cell.metadata.get("tags", [])
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" not in nb.metadata
    text = "\n".join(c.source for c in nb.cells)
    for n, task in (("1.1", "Compute x + 1."), ("1.2", "Square x."), ("1.3", "Name the result.")):
        assert f"**Exercise {n}.** {task}" in text, "the exercise statement stays, as plain Markdown"
        answers = [c for c in nb.cells if c.source.startswith(f"# Your answer (Exercise {n})")]
        assert len(answers) == 1 and answers[0].cell_type == "code", "each exercise gets one answer cell"
    assert edition.raw_markup(nb) == [], "the student set carries no MyST markup"
    assert "Text after the solution stays." in text and "## Summary" in text
    # The non-solution code survives unchanged.
    assert any(c.source.startswith("y = x * 10") for c in nb.cells if c.cell_type == "code")
    # The source notebook is untouched.
    assert SECRET in (book_dir / "01_tiny.ipynb").read_text()


def test_strip_solutions_reports_labels_and_is_idempotent():
    nb = _synthetic_notebook()
    once, labels = student.strip_solutions(nb)
    assert labels == ["t-ex-one", "t-ex-two", "t-ex-three"]
    twice, labels2 = student.strip_solutions(once)
    assert labels2 == [] and twice == once


def test_student_notebook_executes(book_dir, tmp_path):
    from nbclient import NotebookClient

    out = tmp_path / "student"
    (path,) = student.write_student_set(out, book_dir)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(out)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "student run ok" in printed


def test_command_line(book_dir, tmp_path):
    out = tmp_path / "set"
    res = subprocess.run([sys.executable, "-m", "memprior.student", str(out), "--source", str(book_dir)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (out / "01_tiny.ipynb").is_file() and "1 notebook(s)" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "memprior.student", str(book_dir), "--source", str(book_dir)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "outdir" in bad.stderr


def test_bad_paths(book_dir, tmp_path):
    with pytest.raises(ValueError, match="outdir"):
        student.write_student_set(book_dir, book_dir)
    with pytest.raises(ValueError, match="outdir"):
        student.write_student_set(book_dir / "sub", book_dir)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="outdir"):
        student.write_student_set(afile, book_dir)
    with pytest.raises(ValueError, match="source"):
        student.write_student_set(tmp_path / "out", tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="source"):
        student.write_student_set(tmp_path / "out", empty)
    with pytest.raises(TypeError, match="nb"):
        student.strip_solutions(["not", "a", "notebook"])


@pytest.mark.parametrize("cells, message", [
    (["```{solution-start} a\n```"], "has no solution-end"),
    (["```{solution-end}\n```"], "without a matching solution-start"),
    (["```{solution-start} a\n```", "```{solution-start} b\n```", "```{solution-end}\n```"], "opened before"),
    (["```{solution-start} a\n:class: dropdown\n"], "unclosed"),
])
def test_unbalanced_markers_raise_and_write_nothing(tmp_path, cells, message):
    src = tmp_path / "book"
    src.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell(c) for c in cells]), src / "01_bad.ipynb")
    with pytest.raises(ValueError, match=message):
        student.write_student_set(tmp_path / "out", src)
    assert not (tmp_path / "out").exists()


def test_real_chapters_convert():
    """Every chapter in book/ has well-paired solution markers (conversion only; no execution here)."""
    src = ROOT / "book"
    if not any(src.glob("*.ipynb")):
        pytest.skip("no chapter notebooks yet")
    for path in sorted(src.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out, labels = student.strip_solutions(nb, name=path.name)
        nbformat.validate(out)
        for cell in out.cells:
            assert "solution" not in cell.metadata.get("tags", []), path.name
            assert "{solution-start}" not in cell.source and "{solution-end}" not in cell.source, path.name
        n_start = sum(c.source.count("{solution-start}") for c in nb.cells if c.cell_type == "markdown")
        n_plain = sum(c.source.count("{solution}") for c in nb.cells if c.cell_type == "markdown")
        assert len(labels) == n_start + n_plain, path.name


# --------------------------------------------------------------------------- Binder environment

def _requirement_names(path):
    from packaging.requirements import Requirement

    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        names.append(Requirement(line).name)
    return names


def _closure(names):
    """The installed distributions reachable from ``names`` through their (non-extra) requirements."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in reqs:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def _notebook_imports(nb):
    import ast

    mods = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # IPython magics and shell escapes are not Python.
        src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in cell.source.splitlines())
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    return mods


def test_binder_requirements_pin_cpu_torch_and_install_the_library():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-e ." in lines, "Binder installs the library from the repository root"
    torch_pin = next(ln for ln in lines if ln.startswith("torch=="))
    assert torch_pin.endswith("+cpu"), "only the CPU build may be installed on Binder"
    main_pin = next(ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
                    if ln.strip().startswith("torch=="))
    assert torch_pin.split("+")[0] == main_pin.split("+")[0], "Binder and the main stack pin the same torch"


def test_binder_environment_provides_every_notebook_import():
    """Each module a chapter imports comes from the standard library, memprior, or the Binder requirements."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    notebooks = sorted((ROOT / "book").glob("*.ipynb"))
    if not notebooks:
        pytest.skip("no chapter notebooks yet")
    provided = _closure(_requirement_names(ROOT / "binder" / "requirements.txt") + ["memprior"])
    module_dists = metadata.packages_distributions()
    missing = {}
    for path in notebooks:
        for mod in sorted(_notebook_imports(nbformat.read(path, as_version=4))):
            if mod in sys.stdlib_module_names or mod in ("memprior", "google"):  # google.colab only in Colab
                continue
            dists = {canonicalize_name(d) for d in module_dists.get(mod, [])}
            if not dists & provided:
                missing.setdefault(path.name, []).append(mod)
    assert not missing, f"imports not provided by binder/requirements.txt: {missing}"


def test_a_chapter_that_needs_its_solutions_is_refused(tmp_path):
    src = tmp_path / "book"
    src.mkdir()
    cells = [
        new_markdown_cell("```{exercise}\n:label: t-ex\n\nFind a.\n```\n\n```{solution-start} t-ex\n```"),
        new_code_cell("answer = 41\ndef helper():\n    return 1", metadata={"tags": ["solution"]}),
        new_markdown_cell("```{solution-end}\n```"),
        new_code_cell("print(len([1]))\nb = 2"),            # builtins and its own names: fine
        new_code_cell("c = answer + helper() + b"),         # needs the removed solution
    ]
    nb = new_notebook(cells=cells)
    out, _ = student.strip_solutions(nb)
    # cell 1 of the copy is the answer cell left for the exercise
    assert out.cells[1].source.startswith("# Your answer (t-ex)")
    assert student.solution_dependencies(nb, out) == [(3, "answer"), (3, "helper")]
    nbformat.write(nb, src / "01_needs.ipynb")
    with pytest.raises(ValueError, match="'answer' \\(cell 3\\)"):
        student.write_student_set(tmp_path / "out", src)
    assert not (tmp_path / "out").exists()
    # Defining the name outside the solution, before its use, fixes it.
    nb.cells.insert(3, new_code_cell("answer = 0\nhelper = lambda: 0"))
    out, _ = student.strip_solutions(nb)
    assert student.solution_dependencies(nb, out) == []


def test_real_chapters_do_not_depend_on_their_solutions():
    """A static check (no kernel) that each chapter's student copy can run: the full run is in the book tests."""
    notebooks = sorted((ROOT / "book").glob("*.ipynb"))
    if not notebooks:
        pytest.skip("no chapter notebooks yet")
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        out, _ = student.strip_solutions(nb, name=path.name)
        assert student.solution_dependencies(nb, out) == [], path.name


def test_marker_inside_a_tagged_markdown_cell_is_still_seen():
    nb = new_notebook(cells=[
        new_markdown_cell("```{solution-start} t-a\n```"),
        new_code_cell(f"{SECRET} = 1", metadata={"tags": ["solution"]}),
        new_markdown_cell(f"{SECRET} in prose\n\n```{{solution-end}}\n```", metadata={"tags": ["solution"]}),
        new_code_cell("kept = 2"),
    ])
    out, labels = student.strip_solutions(nb)
    assert labels == ["t-a"]
    assert [c.source for c in out.cells] == [student.ANSWER.format(label="t-a"), "kept = 2"]


def test_answer_cells_ask_for_an_explanation_only_where_the_exercise_reasons():
    (code,) = student.answer_cells("t-a", "Compute x + 1.")
    assert code.cell_type == "code" and code.source.startswith("# Your answer (t-a)")
    code, md = student.answer_cells("t-b", "Why does the bandwidth shrink? Explain.")
    assert md.cell_type == "markdown" and "Your explanation (t-b)" in md.source


def test_a_real_student_chapter_is_plain_and_executes(tmp_path):
    """The student copy of a real chapter (chapter 2): no MyST left, an answer cell per exercise, and it runs."""
    import shutil

    from nbclient import NotebookClient

    src = ROOT / "book" / "02_lookup_posterior.ipynb"
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(src, book / src.name)
    shutil.copy(ROOT / "book" / "references.bib", book / "references.bib")
    (path,) = student.write_student_set(tmp_path / "student", book)
    out = nbformat.read(path, as_version=4)
    n_exercises = sum(c.source.count("{exercise}") for c in nbformat.read(src, as_version=4).cells
                      if c.cell_type == "markdown")
    assert n_exercises >= 3
    assert edition.raw_markup(out) == [], "the student set carries no MyST markup"
    answers = [c for c in out.cells if c.cell_type == "code" and c.source.startswith("# Your answer (Exercise 2.")]
    assert len(answers) == n_exercises
    text = "\n".join(c.source for c in out.cells)
    assert "{glue" not in text and "{eval}" not in text and "solution" not in text.lower()
    assert "(Siahkoohi & Sabeddu, 2026)" in text and "## References" in text
    NotebookClient(out, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in out.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors


def test_function_parameters_are_not_read_from_a_solution():
    """A kept cell's parameter that shares its name with a solution's variable is local, not a dependency."""
    cells = [
        new_markdown_cell("```{exercise}\n:label: t-par\n\nLoop.\n```\n\n```{solution-start} t-par\n```"),
        new_code_cell("for den in range(3):\n    pass", metadata={"tags": ["solution"]}),
        new_markdown_cell("```{solution-end}\n```"),
        new_code_cell("def loss(den, data):\n    return den + data\nscale = lambda den: 2 * den"),
        new_code_cell("total = den + 1"),  # a real dependency: still found
    ]
    nb = new_notebook(cells=cells)
    out, _ = student.strip_solutions(nb)
    k_total = next(k for k, c in enumerate(out.cells) if c.source.startswith("total"))
    assert student.solution_dependencies(nb, out) == [(k_total, "den")]


def test_a_graded_exercise_names_its_answer_variable_in_the_answer_cell():
    (code,) = student.answer_cells("t-g", "Compute it. *Difficulty: basic · about 5 min · graded: store the answer "
                                          "in `w_mine`*")
    assert code.source.startswith("# Your answer (t-g)")
    assert "store your answer in `w_mine`" in code.source
    (plain,) = student.answer_cells("t-p", "Compute it.")
    assert "Graded" not in plain.source


def test_cell_names_binds_and_reads():
    bound, read = student.cell_names("a = b + 1\nfor i in range(3):\n    c = i\ndef f(p):\n    return p + d")
    assert bound == {"a", "i", "c", "f"} and {"b", "range", "d"} <= read and "p" not in read
    assert student.cell_names("%pip install x\n!ls") == (set(), set())
    with pytest.raises(TypeError, match="src"):
        student.cell_names(None)


def test_strip_page_solutions_removes_gated_solutions_and_rejects_unclosed_ones():
    from memprior.student import strip_page_solutions
    page = ("Text.\n\n```{exercise} Try\n:label: ex-a\nDo it.\n```\n\n"
            "```{solution-start} ex-a\n:class: dropdown\n```\nSECRET\n```{solution-end}\n```\n\nAfter.\n")
    out, labels = strip_page_solutions(page, "p.md")
    assert labels == ["ex-a"] and "SECRET" not in out and "Do it." in out and "After." in out
    with pytest.raises(ValueError, match="solution-end"):
        strip_page_solutions(page.replace("```{solution-end}\n```\n", ""), "p.md")
    with pytest.raises(TypeError, match="text"):
        strip_page_solutions(b"bytes")

"""Autograding of the chapters' exercises with nbgrader: the instructor's source set.

An exercise with a computable answer is *graded*. Its statement names the variable that must hold the
answer, and its gated solution (see CONTRIBUTING.md) has two kinds of code cell, both tagged ``solution``:

* the solution cells, which compute the answer and store it in that variable;
* one **grader cell**, tagged ``solution`` *and* ``grader``, with ``assert`` statements that check the
  variable against the library. Its metadata gives the points and the variable:
  ``{"memprior": {"grade": {"answer": "w_mine", "points": 2}}}``.

In the book the grader cell runs as the last part of the solution, so every graded solution checks itself.
In the student set (:mod:`memprior.student`) it is removed with the rest of the solution.

:func:`write_source_set` turns the graded exercises of each chapter into one nbgrader *source* notebook per
chapter, in an nbgrader course folder:

``OUTDIR/nbgrader_config.py`` and ``OUTDIR/source/chNN/chNN_exercises.ipynb``

Each source notebook holds

1. the chapter's *setup slice*: the imports cell and every earlier non-solution code cell that defines a name
   the graded cells read (found statically, transitively; figure and live-app cells that define nothing needed
   are left out), as read-only cells;
2. for each graded exercise: its statement in plain Markdown, an nbgrader solution cell (the chapter's solution
   between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) and an nbgrader test cell (the grader cell,
   locked, with its points).

``nbgrader generate_assignment chNN`` then writes the student version (each solution replaced by
``raise NotImplementedError()``) and ``nbgrader autograde chNN`` executes and scores the submissions.

Usage::

    python -m memprior.grading source OUTDIR                 # every chapter with graded exercises
    python -m memprior.grading source OUTDIR --chapters 02 04
    python -m memprior.grading list                          # the graded exercises, their variables, points
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["GRADER_TAG", "GradedExercise", "ChapterGrading", "graded_exercises", "setup_slice",
           "source_notebook", "write_source_set", "assignment_name", "main"]

#: Cell tag of the cell that checks a graded answer (it also carries the tag ``solution``).
GRADER_TAG = "grader"
_SOLUTION_TAG = "solution"
_SCHEMA = 3
_START = re.compile(r"\{solution-start\}\s*(?P<label>[A-Za-z0-9_:-]+)")
_END = re.compile(r"\{solution-end\}")
_EXERCISE = re.compile(r"(?P<fence>`{3,}|:{3,})\{exercise\}[^\n]*\n(?P<body>.*?)\n(?P=fence)", re.S)
_LABEL = re.compile(r"^:label:\s*(\S+)\s*$", re.M)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GradedExercise:
    """One graded exercise of a chapter.

    Attributes
    ----------
    label : str
        The exercise label, e.g. ``"ch2-ex-implement"``.
    statement : str
        The exercise's MyST text (the body of the ``{exercise}`` directive).
    answer : str
        The variable that must hold the answer.
    points : float
        Points of the grader cell.
    solution : tuple of str
        Sources of the solution code cells, in order.
    grader : str
        Source of the grader cell.
    first_cell : int
        Index, in the chapter, of the exercise's first solution cell.
    """

    label: str
    statement: str
    answer: str
    points: float
    solution: tuple
    grader: str
    first_cell: int


@dataclass(frozen=True)
class ChapterGrading:
    """The graded exercises of one chapter and the cells their source notebook needs."""

    path: Path
    exercises: tuple
    setup: tuple = field(default=())   # indices of the chapter's code cells in the setup slice


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _grade_meta(cell, where: str) -> tuple[str, float]:
    meta = cell.get("metadata", {}).get("memprior", {}).get("grade")
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: a cell tagged {GRADER_TAG!r} needs metadata "
                         "{'memprior': {'grade': {'answer': NAME, 'points': P}}}")
    answer, points = meta.get("answer"), meta.get("points")
    if not isinstance(answer, str) or not _IDENT.match(answer):
        raise ValueError(f"{where}: grade.answer must be a Python identifier, got {answer!r}")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0 < points <= 100:
        raise ValueError(f"{where}: grade.points must be a number in (0, 100], got {points!r}")
    return answer, float(points)


def graded_exercises(nb, name: str = "notebook") -> list[GradedExercise]:
    """The graded exercises of a chapter, in order.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A chapter (version-4 notebook).
    name : str
        Name used in error messages.

    Raises
    ------
    TypeError
        If ``nb`` is not a notebook.
    ValueError
        If a grader cell lies outside a gated solution, an exercise has two grader cells, the grade metadata is
        malformed, the grader cell does not read its answer variable, or no solution cell assigns it.
    """
    from .student import cell_names as _names

    if not isinstance(nb, dict) or "cells" not in nb:
        raise TypeError(f"nb: expected an nbformat notebook (a dict with 'cells'), got {type(nb).__name__}")
    statements: dict[str, str] = {}
    found: dict[str, dict] = {}
    order: list[str] = []
    label = None
    for k, cell in enumerate(nb.cells):
        where = f"{name}, cell {k}"
        if cell.cell_type == "markdown":
            for m in _EXERCISE.finditer(cell.source):
                lab = _LABEL.search(m.group("body"))
                if lab:
                    statements[lab.group(1)] = _LABEL.sub("", m.group("body")).strip("\n")
            start, end = _START.search(cell.source), _END.search(cell.source)
            if start:
                label = start.group("label")
            if end and (not start or end.start() > start.start()):
                label = None
            continue
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        if GRADER_TAG in tags:
            if label is None or _SOLUTION_TAG not in tags:
                raise ValueError(f"{where}: a {GRADER_TAG!r} cell must be tagged {_SOLUTION_TAG!r} and lie inside "
                                 "a gated solution")
            entry = found.setdefault(label, {"solution": [], "first": k})
            if "grader" in entry:
                raise ValueError(f"{where}: exercise {label!r} has two grader cells")
            entry["grader"] = cell.source
            entry["answer"], entry["points"] = _grade_meta(cell, where)
            if label not in order:
                order.append(label)
        elif label is not None and _SOLUTION_TAG in tags:
            entry = found.setdefault(label, {"solution": [], "first": k})
            if "grader" in entry:
                raise ValueError(f"{where}: the grader cell of {label!r} must be its last solution code cell")
            entry["solution"].append(cell.source)
    out = []
    for lab in order:
        e = found[lab]
        if lab not in statements:
            raise ValueError(f"{name}: graded solution {lab!r} has no {{exercise}} with that label")
        if e["answer"] not in _names(e["grader"])[1]:
            raise ValueError(f"{name}: the grader cell of {lab!r} does not read its answer {e['answer']!r}")
        if not any(e["answer"] in _names(src)[0] for src in e["solution"]):
            raise ValueError(f"{name}: no solution cell of {lab!r} assigns its answer {e['answer']!r}")
        if f"`{e['answer']}`" not in statements[lab]:
            raise ValueError(f"{name}: the statement of {lab!r} does not name its answer variable "
                             f"`{e['answer']}`")
        out.append(GradedExercise(lab, statements[lab], e["answer"], e["points"], tuple(e["solution"]),
                                  e["grader"], e["first"]))
    return out


def setup_slice(nb, exercises) -> list[int]:
    """Indices of the chapter's code cells that the graded exercises need, in order.

    The imports cell (the first code cell not tagged ``remove-cell``) is always kept. Walking backwards from the
    first graded exercise, a non-solution code cell is kept when it binds a name that a kept cell or a graded
    cell reads; its own reads are then needed too. Cells tagged ``remove-cell`` (the Colab guard) and
    solution cells are never kept.
    """
    import builtins

    from .student import cell_names as _names

    if not exercises:
        return []
    last = max(e.first_cell for e in exercises)
    need: set = set()
    own: set = set()   # names the graded cells define themselves (loop variables, helpers, the answers)
    for e in exercises:
        for src in (*e.solution, e.grader):
            bound, read = _names(src)
            need |= read - own
            own |= bound
    need -= own | set(dir(builtins))
    code = [k for k, c in enumerate(nb.cells[:last]) if c.cell_type == "code"
            and "remove-cell" not in _tags(c) and _SOLUTION_TAG not in _tags(c)]
    if not code:
        return []
    keep = {code[0]}
    need |= _names(nb.cells[code[0]].source)[1]
    for k in reversed(code[1:]):
        bound, read = _names(nb.cells[k].source)
        if bound & need:
            keep.add(k)
            need = (need - bound) | read
    return sorted(keep)


def assignment_name(path) -> str:
    """The nbgrader assignment of a chapter file: ``book/02_lookup_posterior.ipynb`` -> ``"ch02"``."""
    stem = Path(path).stem
    m = re.match(r"^(\d+)_", stem)
    if not m:
        raise ValueError(f"path: a chapter file is named NN_name.ipynb, got {Path(path).name!r}")
    return f"ch{m.group(1)}"


def _meta(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": _SCHEMA,
            "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


def _plain(text: str, labels, bib: dict, stem: str) -> str:
    from .edition import to_plain

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    out, problems = to_plain(nb, stem=stem, labels=labels, bib=bib)
    if problems:
        raise ValueError(f"{stem}: exercise text that the notebook edition cannot convert: {problems}")
    return "\n\n".join(c.source for c in out.cells if c.cell_type == "markdown" and not c.source.startswith("## Ref"))


def source_notebook(path, *, labels=None, bib=None) -> nbformat.NotebookNode | None:
    """The nbgrader source notebook of one chapter, or None if the chapter has no graded exercise.

    Parameters
    ----------
    path : str or Path
        A chapter ``NN_name.ipynb``.
    labels, bib : optional
        Cross-reference labels (:func:`memprior.edition.collect_labels`) and bibliography
        (:func:`memprior.edition.read_bibliography`) used to write the statements as plain Markdown;
        by default those of the chapter's own folder.
    """
    from .edition import chapters, collect_labels, read_bibliography

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no chapter notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    exercises = graded_exercises(nb, path.name)
    if not exercises:
        return None
    if labels is None:
        labels = collect_labels(chapters(path.parent))
    if bib is None:
        bibfile = path.parent / "references.bib"
        bib = read_bibliography(bibfile) if bibfile.is_file() else {}
    chapter = assignment_name(path)
    cells = [nbformat.v4.new_markdown_cell(
        f"# Chapter {int(chapter[2:])}: graded exercises\n\nRun every cell from the top. Write your code in the "
        "cells that say `YOUR CODE HERE`, and store each answer in the variable its exercise names. The hidden "
        "checks compare it with the `memprior` library.")]
    cells[0].metadata["nbgrader"] = _meta(f"{chapter}-intro", solution=False, grade=False, locked=True)
    for j, k in enumerate(setup_slice(nb, exercises)):
        cell = nbformat.v4.new_code_cell(nb.cells[k].source)
        cell.metadata["nbgrader"] = _meta(f"{chapter}-setup-{j}", solution=False, grade=False, locked=True)
        cells.append(cell)
    for e in exercises:
        md = nbformat.v4.new_markdown_cell(f"## {e.label}\n\n" + _plain(e.statement, labels, bib, path.stem))
        md.metadata["nbgrader"] = _meta(f"{e.label}-task", solution=False, grade=False, locked=True)
        body = "\n\n".join(s.strip("\n") for s in e.solution)
        sol = nbformat.v4.new_code_cell(f"### BEGIN SOLUTION\n{body}\n### END SOLUTION")
        sol.metadata["nbgrader"] = _meta(f"{e.label}-answer", solution=True, grade=False, locked=False)
        test = nbformat.v4.new_code_cell(e.grader.strip("\n"))
        test.metadata["nbgrader"] = _meta(f"{e.label}-check", solution=False, grade=True, locked=True,
                                          points=e.points)
        cells += [md, sol, test]
    out = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(nb.metadata))
    out.metadata.pop("widgets", None)
    nbformat.validate(out)
    return out


_CONFIG = '''# nbgrader configuration of the memprior course folder (written by python -m memprior.grading source)
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "memprior"
c.ExecutePreprocessor.timeout = {timeout}
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
'''


def write_source_set(outdir, source=None, *, chapters=None, timeout: int = 300) -> list[Path]:
    """Write the instructor's nbgrader source set: ``OUTDIR/source/chNN/chNN_exercises.ipynb`` per chapter.

    Parameters
    ----------
    outdir : str or Path
        The nbgrader course folder; created if missing. It may not be an existing file or lie inside ``source``.
    source : str or Path, optional
        Folder of the chapter notebooks (default: the book's ``book/`` folder).
    chapters : iterable of str, optional
        Chapter numbers to include (``"02"`` or ``"2"``); default: every chapter with a graded exercise.
    timeout : int
        Seconds nbgrader allows one cell to run when it autogrades (1 to 3600).

    Returns
    -------
    list of Path
        The source notebooks written, sorted.
    """
    from .edition import chapters as list_chapters, collect_labels, default_source, read_bibliography

    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
        raise ValueError(f"timeout: must be an integer number of seconds in [1, 3600], got {timeout!r}")
    src = Path(source) if source is not None else default_source()
    if not src.is_dir():
        raise ValueError(f"source: not a folder: {src}")
    paths = list_chapters(src)
    if not paths:
        raise ValueError(f"source: no chapter notebooks NN_*.ipynb in {src}")
    out = Path(outdir).resolve()
    if out.is_file():
        raise ValueError(f"outdir: {out} is a file")
    if out == src.resolve() or src.resolve() in out.parents:
        raise ValueError(f"outdir: must not be the source folder or inside it, got {out}")
    if chapters is not None:
        wanted = {f"{int(c):02d}" if str(c).isdigit() else str(c) for c in chapters}
        known = {assignment_name(p)[2:] for p in paths}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"chapters: no chapter numbered {unknown} in {src} (there are {sorted(known)})")
        paths = [p for p in paths if assignment_name(p)[2:] in wanted]
    labels = collect_labels(list_chapters(src))
    bibfile = src / "references.bib"
    bib = read_bibliography(bibfile) if bibfile.is_file() else {}
    notebooks = {}
    for p in paths:
        nb = source_notebook(p, labels=labels, bib=bib)
        if nb is not None:
            notebooks[assignment_name(p)] = nb
    if not notebooks:
        raise ValueError(f"chapters: none of the chosen chapters in {src} has a graded exercise")
    written = []
    for name, nb in sorted(notebooks.items()):
        folder = out / "source" / name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}_exercises.ipynb"
        nbformat.write(nb, target)
        written.append(target)
    (out / "nbgrader_config.py").write_text(_CONFIG.format(root=str(out), timeout=timeout))
    return written


def _list(source) -> int:
    from .edition import chapters, default_source

    total = 0.0
    for p in chapters(Path(source) if source else default_source()):
        for e in graded_exercises(nbformat.read(p, as_version=4), p.name):
            print(f"{assignment_name(p)}  {e.label:24s} answer `{e.answer}`  {e.points:g} point(s)")
            total += e.points
    print(f"total: {total:g} point(s)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memprior.grading",
                                     description="The instructor's nbgrader source set of the graded exercises.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("source", help="write the nbgrader course folder OUTDIR with source/chNN/ notebooks")
    s.add_argument("outdir")
    s.add_argument("--source", default=None, help="folder with the chapter notebooks (default: ./book)")
    s.add_argument("--chapters", nargs="+", default=None, help="chapter numbers, e.g. 02 04 (default: all)")
    s.add_argument("--timeout", type=int, default=300, help="seconds per cell when autograding")
    s.add_argument("-q", "--quiet", action="store_true")
    ls = sub.add_parser("list", help="list the graded exercises")
    ls.add_argument("--source", default=None)
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list(args.source)
    try:
        written = write_source_set(args.outdir, args.source, chapters=args.chapters, timeout=args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.quiet:
        for p in written:
            print(p)
        print(f"{len(written)} source notebook(s); next: cd {args.outdir} && nbgrader generate_assignment chNN")
    return 0


if __name__ == "__main__":
    sys.exit(main())

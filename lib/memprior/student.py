"""Write the student notebook set: the notebook edition of every chapter, its solutions removed.

The student set is the plain-Markdown notebook edition (:mod:`memprior.edition`: values filled in, no
MyST markup) without the solutions, and with an answer cell after each exercise: a code cell
``# Your answer`` (naming the variable a graded exercise stores its answer in) and, where the exercise asks
for reasoning, a Markdown cell for the explanation.

The chapters mark their exercise solutions in two ways (see CONTRIBUTING.md):

* code and markdown cells that hold a solution carry the cell tag ``solution``;
* the solution is enclosed by the gated sphinx-exercise directives
  ``{solution-start} <label>`` and ``{solution-end}``, written in markdown cells.

This module copies each ``*.ipynb`` of a source folder (by default the book's
``book/`` folder) to an output folder, and in each copy

* drops every cell tagged ``solution``;
* drops every cell, and every markdown line, between a ``solution-start`` and its
  ``solution-end`` (so a solution cell that lost its tag is still removed);
* replaces the ``solution-start`` directive by a short note, removes the
  ``solution-end`` directive, and replaces a non-gated ``{solution}`` directive
  (whose body *is* the solution) by the same note;
* strips all outputs, execution counts and saved widget state.

The exercise statements stay, so each exercise still reads as a task.

Usage::

    python -m memprior.student OUTDIR            # from the repository
    python -m memprior.student OUTDIR --source path/to/book

The result is validated with :mod:`nbformat` before it is written, and the command refuses a chapter
whose remaining cells read a name that only a removed solution defines (the copy would fail with
``NameError``).
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["strip_page_solutions", "SOLUTION_TAG", "ANSWER", "EXPLAIN", "GRADED", "strip_solutions", "solution_dependencies",
           "write_student_set", "answer_cells", "cell_names", "main"]

#: Cell tag that marks solution cells.
SOLUTION_TAG = "solution"

#: The code cell left where a solution was removed (``{label}`` is the exercise label).
ANSWER = "# Your answer ({label})\n"
#: The Markdown cell added after it where the exercise asks for reasoning.
EXPLAIN = "**Your explanation ({label}):** *replace this line with your reasoning.*"
#: The line added to the code cell of a graded exercise (:mod:`memprior.grading`).
GRADED = "# Graded: store your answer in `{answer}`; hidden checks compare it with the library.\n"
_GRADED = re.compile(r"graded: store the answer in `([A-Za-z_][A-Za-z0-9_]*)`")
# Words that make an exercise ask for reasoning (then a Markdown answer cell follows the code cell).
_REASONING = re.compile(r"\?|\b(explain|why|show that|interpret|describe|compare|discuss|argue|prove|"
                        r"predict|what|which|how)\b", re.I)

# Opening line of a fenced directive: indentation, fence (``` or :::, three or more), directive name, rest.
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[A-Za-z0-9_:-]+)\}(?P<arg>.*)$")


@dataclass
class _State:
    inside: bool = False          # between a solution-start and its solution-end
    label: str = ""               # label of the open solution
    where: str = ""               # where the open solution started, for error messages
    removed: int = 0              # solutions removed (for the report)
    labels: list = field(default_factory=list)
    pending: list = field(default_factory=list)   # (label, exercise text) awaiting their answer cells
    exercise: str = ""            # text of the last exercise seen (its solution follows it)


def strip_page_solutions(text: str, where: str = "page") -> tuple[str, list]:
    """Remove the solution directives (and gated solution text) from one Markdown page.

    Parameters
    ----------
    text : str
        The page's MyST source.
    where : str
        Its name, for error messages.

    Returns
    -------
    (str, list of str)
        The page without solutions, and the labels of the solutions removed.

    Raises
    ------
    ValueError
        A ``solution-start`` without its ``solution-end``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected the page's source as a str, got {type(text).__name__}")
    state = _State()
    out = _strip_markdown(text, state, where)
    if state.inside:
        raise ValueError(f"{where}: solution-start {state.label!r} has no solution-end")
    return out, list(state.labels)


def _closing(lines: list[str], start: int, fence: str) -> int:
    """Index of the line that closes the fence opened at ``start`` (or raise)."""
    char, n = fence[0], len(fence)
    pat = re.compile(r"^[ \t]*" + re.escape(char) + "{" + str(n) + r",}[ \t]*$")
    for j in range(start + 1, len(lines)):
        if pat.match(lines[j]):
            return j
    raise ValueError(f"unclosed directive fence {fence!r} opened at line {start + 1}")


def answer_cells(label: str, exercise: str = "") -> list:
    """The cells a student answers in: a code cell, and a Markdown cell if the exercise asks for reasoning."""
    label = label or "exercise"
    source = ANSWER.format(label=label)
    graded = _GRADED.search(exercise or "")
    if graded:  # a graded exercise (memprior.grading): say which variable the hidden checks read
        source += GRADED.format(answer=graded.group(1))
    cells = [nbformat.v4.new_code_cell(source)]
    if _REASONING.search(exercise or ""):
        cells.append(nbformat.v4.new_markdown_cell(EXPLAIN.format(label=label)))
    for c in cells:
        c.metadata["tags"] = ["answer"]
    return cells


def _strip_markdown(text: str, state: _State, where: str) -> str:
    """Remove solution directives (and text inside a gated solution) from one markdown cell."""
    if not state.inside and "solution" not in text:
        return text  # nothing to do: keep the cell exactly as written
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        name = m.group("name") if m else None
        if name == "exercise":
            try:
                state.exercise = "\n".join(lines[i:_closing(lines, i, m.group("fence")) + 1])
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if name in ("solution-start", "solution-end", "solution"):
            try:
                j = _closing(lines, i, m.group("fence"))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            label = m.group("arg").strip()
            if name == "solution-start":
                if state.inside:
                    raise ValueError(f"{where}: solution-start {label!r} opened before the solution-end "
                                     f"of {state.label!r} (started at {state.where})")
                state.pending.append((label, state.exercise))
                state.inside, state.label, state.where = True, label, where
                state.removed += 1
                state.labels.append(label)
            elif name == "solution-end":
                if not state.inside:
                    raise ValueError(f"{where}: solution-end without a matching solution-start")
                state.inside = False
            else:  # a non-gated {solution} directive: its body is the solution
                if state.inside:
                    raise ValueError(f"{where}: a {{solution}} directive inside the gated solution "
                                     f"{state.label!r}")
                state.pending.append((label, state.exercise))
                state.removed += 1
                state.labels.append(label)
            i = j + 1
            continue
        if not state.inside:
            out.append(lines[i])
        i += 1
    return "\n".join(out).strip("\n")


def _is_solution(tags) -> bool:
    """True if a cell's tags include ``solution``, in any case and with surrounding blanks
    (``Solution``, ``SOLUTION `` ...): a solution must never reach the student set verbatim."""
    if isinstance(tags, str):
        tags = [tags]
    return any(isinstance(t, str) and t.strip().lower() == SOLUTION_TAG for t in tags)


def strip_solutions(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, list[str]]:
    """Return a copy of ``nb`` without solutions and outputs, and the labels of the removed solutions.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A version-4 notebook.
    name : str
        Name used in error messages.

    Raises
    ------
    TypeError
        If ``nb`` is not a notebook node.
    ValueError
        If a ``solution-start`` has no ``solution-end`` (or the reverse), or a directive fence is unclosed.
    """
    if not isinstance(nb, dict) or "cells" not in nb:
        raise TypeError(f"nb: expected an nbformat notebook (a dict with 'cells'), got {type(nb).__name__}")
    if nb.get("nbformat") != 4:
        raise ValueError(f"nb: expected nbformat version 4, got {nb.get('nbformat')!r}")
    out = copy.deepcopy(nb)
    state = _State()
    cells = []
    for k, cell in enumerate(out.cells):
        where = f"{name}, cell {k}"
        tags = cell.get("metadata", {}).get("tags", []) or []
        if _is_solution(tags):
            if cell.cell_type == "markdown":
                _strip_markdown(cell.source, state, where)  # keep track of any marker it holds; drop the cell
        elif cell.cell_type == "markdown":
            cell.source = _strip_markdown(cell.source, state, where)
            if cell.source.strip():
                cells.append(cell)
        elif not state.inside:  # an untagged cell inside a gated solution is still part of the solution
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
                cell.metadata.pop("execution", None)
            cells.append(cell)
        for label, exercise in state.pending:
            cells.extend(answer_cells(label, exercise))
        state.pending.clear()
    if state.inside:
        raise ValueError(f"{name}: solution-start {state.label!r} (at {state.where}) has no solution-end")
    out.cells = cells
    out.metadata.pop("widgets", None)
    return out, state.labels


def _python(src: str):
    """Parse a code cell as Python, blanking IPython magics and shell escapes; None if it does not parse."""
    import ast

    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _names(src: str) -> tuple[set, set]:
    """(names a code cell binds, names it reads) at any depth."""
    import ast

    bound, read, params = set(), set(), set()
    tree = _python(src)
    if tree is None:
        return bound, read
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):  # a parameter is local to its function, never a global read
            params.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound, read - params


def cell_names(src: str) -> tuple[set, set]:
    """The names a code cell binds and the names it reads, at any depth (a static parse; no kernel).

    Function parameters are local and never count as reads; IPython magics and shell escapes are ignored;
    a cell that does not parse as Python binds and reads nothing.

    Parameters
    ----------
    src : str
        The source of a code cell.

    Returns
    -------
    (set of str, set of str)
        ``(bound, read)``.
    """
    if not isinstance(src, str):
        raise TypeError(f"src: expected the source of a code cell as a str, got {type(src).__name__}")
    return _names(src)


def solution_dependencies(original, stripped) -> list[tuple[int, str]]:
    """Names that a kept cell reads but only a removed solution cell defines.

    A student notebook with such a name fails with ``NameError`` in a fresh kernel. The check is static
    (it parses the code cells), so it needs no kernel.

    Parameters
    ----------
    original, stripped : nbformat.NotebookNode
        A chapter and its student copy (from :func:`strip_solutions`).

    Returns
    -------
    list of (int, str)
        ``(cell index in the student copy, name)`` for each dependency found; empty when there is none.
    """
    import builtins

    kept_sources = {c.source for c in stripped.cells if c.cell_type == "code"}
    solution_bound = set()
    for cell in original.cells:  # the removed code cells
        if cell.cell_type == "code" and cell.source not in kept_sources:
            solution_bound |= _names(cell.source)[0]
    available = set(dir(builtins))
    found = []
    for k, cell in enumerate(stripped.cells):
        if cell.cell_type != "code":
            continue
        bound, read = _names(cell.source)
        for name in sorted((read - bound - available) & solution_bound):
            found.append((k, name))
        available |= bound
    return found


def write_student_set(outdir, source=None, *, verbose: bool = False) -> list[Path]:
    """Write the student set: the notebook edition of every chapter in ``source``, without solutions.

    Each chapter is executed once (to fill in the numbers of its prose), its solutions are removed
    (:func:`strip_solutions`, which leaves answer cells), and its MyST is turned into plain Markdown
    (:func:`memprior.edition.to_plain`).

    Parameters
    ----------
    outdir : str or Path
        Output folder; created if missing. It may not be ``source`` or lie inside it, and it may not be
        an existing file.
    source : str or Path, optional
        Folder holding the chapter notebooks ``NN_*.ipynb`` (default: ``./book``).
    verbose : bool
        Print one line per notebook.

    Returns
    -------
    list of Path
        The notebooks written, sorted by name.

    Raises
    ------
    ValueError
        For a missing or empty source folder, an output folder equal to or inside the source, an
        output path that is a file, a notebook whose solution markers do not pair up, or a student copy
        that would read a name defined only in a removed solution (:func:`solution_dependencies`).
    """
    from .edition import write_edition

    return write_edition(outdir, source, student=True, verbose=verbose)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memprior.student",
        description="Write the student notebook set: the notebook edition of the chapters (plain Markdown, "
                    "numbers filled in) without solutions, with an answer cell after each exercise.")
    parser.add_argument("outdir", help="output folder (created if missing), e.g. student/")
    parser.add_argument("--source", default=None,
                        help="folder with the chapter notebooks (default: ./book)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    from .edition import write_command

    return write_command(args.outdir, args.source, quiet=args.quiet, student=True)


if __name__ == "__main__":
    sys.exit(main())

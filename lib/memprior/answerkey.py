"""The instructor's answer key: the book built without solutions, and a private export of every solution.

One command writes both::

    python -m memprior.answerkey OUTDIR              # OUTDIR/book/ (HTML) and OUTDIR/solutions.{md,html}
    python -m memprior.answerkey OUTDIR --no-build   # only the export
    python -m memprior.answerkey OUTDIR --only-build # only the book

**The book without solutions** (:func:`build_without_solutions`). The book's sources are copied to a
scratch folder (:func:`prepare_source`), where every chapter loses its solutions with
:func:`memprior.student.strip_solutions` (the cells tagged ``solution`` and everything between a
``solution-start`` and its ``solution-end``) but keeps its MyST, so the pages look as in the public book; the
copy's ``_config.yml`` sets sphinx-exercise's ``hide_solutions``, which drops any plain ``{solution}``
directive.  (``hide_solutions`` alone is not enough: it drops the ``solution-start`` marker of a gated
solution but leaves the cells between the markers on the page.)  The copy is built with
``jupyter-book build -W -n --keep-going`` and its HTML is checked for leftover solutions
(:func:`solutions_in_html`).  The download buttons of that build offer the stripped chapters.

**The export** (:func:`export_solutions`). Every chapter is executed once (:func:`memprior.edition.execute`),
and for each exercise the export writes its statement (numbers filled in), then the code of its solution
with the output the code prints, and the solution's prose.  After the chapters come the instructor's notes
on the assignments (``instructor/assignments.md``: solution sketches and rubrics) and the capstone's
reference solution (``memprior.experiments.capstone``, run at its default settings, with its report).
The export is written as Markdown and as a standalone HTML page.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["repository_root", "strip_for_book", "prepare_source", "solutions_in_html",
           "build_without_solutions", "Solution", "chapter_solutions", "export_solutions", "main"]

# An HTML element that holds a solution in a built page: sphinx-exercise's solution admonition
# (<div class="solution ...">, its <section id="solution-content">) or a cell tagged solution (tag_solution).
_SOLUTION_HTML = re.compile(r'<(?:div|section)\b[^>]*(?:\bclass="(?:[^"]*\s)?(?:solution|tag_solution)(?:\s[^"]*)?"'
                            r'|\bid="solution-content")')

# the files and folders of a build: the configuration, the table of contents and everything it includes
_BOOK_FILES = ("_config.yml", "_toc.yml", "CHANGELOG.md")
_BOOK_DIRS = ("book",)
_ROLE = re.compile(r"\{(?:[A-Za-z0-9_:+-]+)\}`(?:[^`<]*<)?([^`>]*)>?`")


def repository_root(start=None) -> Path:
    """The repository holding ``_config.yml``, ``_toc.yml`` and ``book/``: ``start`` or one of its parents;
    with no ``start``, the current folder or one of its parents, else the checkout this module is installed from."""
    here = Path.cwd() if start is None else Path(start).expanduser().resolve()
    for p in (here, *here.parents):
        if (p / "_toc.yml").is_file() and (p / "book").is_dir():
            return p
    p = Path(__file__).resolve().parents[2]
    if start is None and (p / "_toc.yml").is_file() and (p / "book").is_dir():
        return p
    raise ValueError(f"start: no book repository (a folder with _toc.yml and book/) at or above {str(here)!r}")


# ----------------------------------------------------------------------------- the book without solutions
def strip_for_book(nb, name: str = "notebook"):
    """A copy of chapter ``nb`` without its solutions, still in MyST (for a build).

    :func:`memprior.student.strip_solutions` removes the solutions and the outputs; the answer cells it adds
    for students are dropped again here, since the book shows the exercise statements only.

    Returns
    -------
    (nbformat.NotebookNode, list of str)
        The stripped notebook and the labels of the removed solutions.

    Raises
    ------
    ValueError
        If the solution markers do not pair up, or a kept cell reads a name that only a solution defines.
    """
    from .student import solution_dependencies, strip_solutions

    out, labels = strip_solutions(nb, name=name)
    out.cells = [c for c in out.cells if "answer" not in (c.get("metadata", {}).get("tags") or [])]
    deps = solution_dependencies(nb, out)
    if deps:
        listing = ", ".join(f"{n!r} (cell {k})" for k, n in deps)
        raise ValueError(f"{name}: without its solutions the chapter would fail: it reads {listing}, "
                         "defined only in a solution")
    return out, labels


def _set_hide_solutions(config_text: str) -> str:
    """``_config.yml`` text with ``hide_solutions: true`` in its ``sphinx: config:`` block."""
    if re.search(r"^\s+hide_solutions:", config_text, re.M):
        return re.sub(r"^(\s+)hide_solutions:.*$", r"\1hide_solutions: true", config_text, flags=re.M)
    m = re.search(r"^sphinx:\s*\n(?:(?:[ \t]+.*|\s*)\n)*?([ \t]+)config:[ \t]*\n", config_text, re.M)
    if not m:
        raise ValueError("config: the _config.yml has no 'sphinx: config:' block to set hide_solutions in")
    indent = m.group(1) * 2
    return config_text[:m.end()] + f"{indent}hide_solutions: true\n" + config_text[m.end():]


def prepare_source(dst, root=None) -> list[str]:
    """Copy the book's sources into ``dst`` with the solutions removed; return the removed solution labels.

    Copies ``_config.yml`` (with ``hide_solutions: true``), ``_toc.yml``, ``CHANGELOG.md`` and ``book/``
    (without build outputs), then strips every notebook of ``dst/book`` with :func:`strip_for_book` and every
    Markdown page of its ``{solution}`` directives.
    """
    src = repository_root(root)
    dst = Path(dst).expanduser().resolve()
    if dst == src or src in dst.parents and dst.parts[len(src.parts)] in _BOOK_DIRS:
        raise ValueError(f"dst: {str(dst)!r} must not be the repository or inside its book/")
    dst.mkdir(parents=True, exist_ok=True)
    for f in _BOOK_FILES:
        if (src / f).is_file():
            shutil.copy2(src / f, dst / f)
    for d in _BOOK_DIRS:
        if (dst / d).exists():
            shutil.rmtree(dst / d)
        shutil.copytree(src / d, dst / d, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints",
                                                                         "__pycache__"))
    cfg = dst / "_config.yml"
    cfg.write_text(_set_hide_solutions(cfg.read_text()))
    removed = []
    from .student import strip_page_solutions

    for path in sorted((dst / "book").rglob("*.md")):  # pages (their sources are downloadable too)
        text = path.read_text(encoding="utf-8")
        if "{solution" in text:
            stripped, labels = strip_page_solutions(text, path.name)
            path.write_text(stripped + "\n", encoding="utf-8")
            removed += labels
    for path in sorted((dst / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out, labels = strip_for_book(nb, name=path.name)
        nbformat.write(out, path)
        removed += labels
    return removed


def solutions_in_html(html_dir) -> list[str]:
    """Pages of a built book (``.html`` files below ``html_dir``) that still hold a solution.

    A solution is an HTML element that sphinx-exercise writes for one (a ``div`` of class ``solution``, or a
    ``section`` with id ``solution-content``) or a notebook cell tagged ``solution`` (class ``tag_solution``).
    Text that merely mentions these names (escaped in the page) does not count.
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise ValueError(f"html_dir: {str(root)!r} is not a folder")
    found = []
    for page in sorted(root.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        if _SOLUTION_HTML.search(text):
            found.append(str(page.relative_to(root)))
    return found


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return str(exe)
    found = shutil.which("jupyter-book")
    if found is None:
        raise RuntimeError("jupyter-book is not installed; `pip install -r requirements.txt` installs it")
    return found


def build_without_solutions(outdir, root=None, *, workdir=None, quiet: bool = False) -> Path:
    """Build the book without solutions into ``outdir`` (its HTML); returns ``outdir``.

    Parameters
    ----------
    outdir : path
        Where the HTML goes (created; an existing folder is replaced).
    root : path, optional
        The repository (default: found from the current folder, see :func:`repository_root`).
    workdir : path, optional
        Scratch folder for the stripped sources (default: a temporary folder, removed afterwards).
    quiet : bool
        Hide the build's output unless it fails.

    Raises
    ------
    RuntimeError
        If the build fails, or a solution is left in its HTML.
    """
    out = Path(outdir).expanduser().resolve()
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="memprior-answerkey-")
        workdir = tmp.name
    try:
        work = Path(workdir).expanduser().resolve()
        prepare_source(work, root)
        cmd = [_jupyter_book(), "build", "-W", "-n", "--keep-going", str(work)]
        r = subprocess.run(cmd, capture_output=quiet, text=True)
        if r.returncode != 0:
            tail = (r.stdout or "")[-4000:] + (r.stderr or "")[-4000:] if quiet else ""
            raise RuntimeError(f"the book build without solutions failed (exit {r.returncode})\n{tail}")
        left = solutions_in_html(work / "_build" / "html")
        if left:
            raise RuntimeError(f"solutions are left in the built pages: {left[:5]}")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(work / "_build" / "html", out)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


# ----------------------------------------------------------------------------- the export
@dataclass
class Solution:
    """One exercise and its solution, as exported.

    Attributes
    ----------
    chapter : str
        The chapter's file stem.
    label : str
        The exercise label.
    number : str
        Its number in the book (``"Exercise 2.1"``).
    statement : str
        The exercise text (Markdown, numbers filled in).
    parts : list of (str, str, str)
        The solution, in order: ``("markdown", text, "")`` or ``("code", source, printed output)``.
    """

    chapter: str
    label: str
    number: str
    statement: str
    parts: list = field(default_factory=list)


def _plain(text: str) -> str:
    """MyST roles as their text (``{numref}`fig-x``` -> ``fig-x``), for the export."""
    return _ROLE.sub(lambda m: m.group(1), text)


def _output_text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append("".join(o.get("text", "")))
        elif o.get("output_type") in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "application/vnd.plotly.v1+json" in data or "text/html" in data and "plotly" in str(data["text/html"]):
                out.append("[a plotly figure]\n")
            elif "image/png" in data:
                out.append("[an image]\n")
            elif "text/plain" in data:
                out.append("".join(data["text/plain"]) + "\n")
        elif o.get("output_type") == "error":
            out.append(f"{o.get('ename')}: {o.get('evalue')}\n")
    return "".join(out)


def chapter_solutions(executed, stem: str, labels=None) -> list[Solution]:
    """The exercises of an executed chapter with their solutions (code, printed output and prose).

    Parameters
    ----------
    executed : nbformat.NotebookNode
        The chapter, executed, with its ``{eval}`` values filled in (:func:`memprior.edition.execute` and
        :func:`memprior.edition.fill_evals`).
    stem : str
        The chapter's file stem (for the export's headings).
    labels : memprior.edition.Labels, optional
        Exercise numbers by label (:func:`memprior.edition.collect_labels`).

    Raises
    ------
    ValueError
        If a solution names an exercise the chapter does not have, or its markers do not pair up.
    """
    from .edition import iter_directives
    from .student import SOLUTION_TAG

    if not isinstance(executed, dict) or "cells" not in executed:
        raise TypeError(f"executed: expected an nbformat notebook, got {type(executed).__name__}")
    exercises: dict[str, Solution] = {}
    order: list[str] = []
    current: Solution | None = None      # the solution being collected (gated or tagged)
    last_label = None
    for k, cell in enumerate(executed.cells):
        tags = cell.get("metadata", {}).get("tags") or []
        if cell.cell_type == "markdown":
            text, pos = cell.source, 0
            lines = text.split("\n")
            tagged = SOLUTION_TAG in tags

            def prose(segment: str):
                # plain text of the cell, attached to the solution open at this point of the cell
                target = current or (exercises.get(last_label) if tagged else None)
                if segment.strip() and target is not None:
                    target.parts.append(("markdown", _plain(segment).strip(), ""))

            for name, arg, opts, body, i, j in iter_directives(text):
                prose("\n".join(lines[pos:i]))
                pos = j + 1
                if name == "exercise":
                    label = opts.get("label") or f"{stem}-exercise-{len(order) + 1}"
                    number = labels.text.get(label, label) if labels is not None else label
                    exercises[label] = Solution(stem, label, number, _plain(body).strip())
                    order.append(label)
                    last_label = label
                elif name in ("solution-start", "solution"):
                    if current is not None and name == "solution-start":
                        raise ValueError(f"{stem}, cell {k}: solution-start {arg!r} before the end of {current.label!r}")
                    if arg not in exercises:
                        raise ValueError(f"{stem}, cell {k}: a solution for {arg!r}, which is not an exercise here")
                    if name == "solution":
                        exercises[arg].parts.append(("markdown", _plain(body).strip(), ""))
                    else:
                        current = exercises[arg]
                elif name == "solution-end":
                    if current is None:
                        raise ValueError(f"{stem}, cell {k}: solution-end without a solution-start")
                    current = None
            prose("\n".join(lines[pos:]))
        elif cell.cell_type == "code":
            target = current or (exercises.get(last_label) if SOLUTION_TAG in tags else None)
            if target is not None:
                target.parts.append(("code", cell.source, _output_text(cell)))
    if current is not None:
        raise ValueError(f"{stem}: solution-start {current.label!r} has no solution-end")
    return [exercises[label] for label in order]


def _markdown(solutions: list[Solution], titles: dict) -> str:
    out = ["# Answer key: the exercises of every chapter", "",
           "Private to instructors. Each exercise's statement, then its solution: code, the output it printed "
           "when the chapter ran, and prose.", ""]
    chapter = None
    for s in solutions:
        if s.chapter != chapter:
            chapter = s.chapter
            num, title = titles.get(chapter, ("", chapter))
            out += [f"## Chapter {num}: {title}" if num else f"## {title}", ""]
        out += [f"### {s.number} (`{s.label}`)", "", s.statement, "", "**Solution.**", ""]
        if not s.parts:
            out += ["*(no solution in the chapter)*", ""]
        for kind, text, printed in s.parts:
            if kind == "markdown":
                out += [text, ""]
            else:
                out += ["```python", text.rstrip(), "```", ""]
                if printed.strip():
                    out += ["Output:", "", "```text", printed.rstrip(), "```", ""]
    return "\n".join(out)


def _html_page(md_text: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md_text)
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
             "pre{background:#f5f5f5;padding:.6rem;overflow-x:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2rem .5rem}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>memprior answer key</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")


def export_solutions(outdir, root=None, *, chapters=None, capstone_config=None, include_capstone: bool = True,
                     verbose: bool = False) -> tuple[Path, Path]:
    """Write ``solutions.md`` and ``solutions.html`` into ``outdir``; returns their paths.

    Parameters
    ----------
    outdir : path
        Created if missing.
    root : path, optional
        The repository (default: found from the current folder).
    chapters : sequence of path, optional
        The chapter notebooks to export (default every ``book/NN_*.ipynb``).
    capstone_config : memprior.experiments.capstone.CapstoneConfig, optional
        Settings of the capstone's reference run (default its defaults: a few minutes on one core).
    include_capstone : bool
        Run the capstone's reference solution and append its report.
    verbose : bool
        Print one line per chapter.

    Raises
    ------
    ValueError
        If the solution markers of a chapter do not pair up, or the instructor notes are missing.
    """
    from .edition import collect_labels, execute, fill_evals

    src = repository_root(root)
    paths = sorted((src / "book").glob("[0-9][0-9]_*.ipynb")) if chapters is None else [Path(p) for p in chapters]
    if not paths:
        raise ValueError(f"chapters: no chapter notebooks to export (looked in {str(src / 'book')!r})")
    notes = src / "instructor" / "assignments.md"
    if not notes.is_file():
        raise ValueError(f"root: the instructor notes {str(notes)!r} are missing")
    labels = collect_labels(paths)
    solutions = []
    for path in paths:
        executed, values, seconds = execute(path)
        filled = fill_evals(executed, values)
        found = chapter_solutions(filled, path.stem, labels)
        solutions += found
        if verbose:
            print(f"{path.name}: {len(found)} exercises, executed in {seconds:.0f} s")
    text = _markdown(solutions, labels.titles)
    text += "\n\n" + notes.read_text(encoding="utf-8").strip() + "\n"
    if include_capstone:
        from .experiments import capstone

        res = capstone.run(capstone_config)
        report = capstone.report_markdown(res)
        report = re.sub(r"^# ", "### ", re.sub(r"^## ", "#### ", report, flags=re.M), flags=re.M)
        text += ("\n## The capstone's reference solution\n\n"
                 "Produced by `memprior.experiments.capstone.run()` "
                 f"({res.data.config.family} models, seed {res.data.config.seed}) and written by "
                 "`report_markdown`; the same run from the command line: "
                 "`python -m memprior.experiments.capstone --out report.md`.\n\n" + report)
    out = Path(outdir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "solutions.md", out / "solutions.html"
    md.write_text(text, encoding="utf-8")
    page.write_text(_html_page(text), encoding="utf-8")
    return md, page


# ----------------------------------------------------------------------------- the command
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memprior.answerkey",
                                description="Write the instructor's answer key: the book built without solutions "
                                            "(OUTDIR/book) and a private export of every solution "
                                            "(OUTDIR/solutions.md and .html).")
    p.add_argument("outdir")
    p.add_argument("--root", default=None, help="the repository (default: found from the current folder)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-build", action="store_true", help="write only the export")
    g.add_argument("--only-build", action="store_true", help="build only the book without solutions")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    out = Path(a.outdir).expanduser().resolve()
    try:
        root = repository_root(a.root)
        if out == root or (root / "book") in (out, *out.parents):
            raise ValueError(f"outdir: {str(out)!r} must lie outside the repository's book/")
        if not a.only_build:
            md, page = export_solutions(out, root, verbose=not a.quiet)
            if not a.quiet:
                print(f"wrote {md} and {page}")
        if not a.no_build:
            html_dir = build_without_solutions(out / "book", root, quiet=a.quiet)
            if not a.quiet:
                print(f"built the book without solutions in {html_dir} (open index.html)")
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The notebook edition: the chapters as plain notebooks that render in any Jupyter, Colab included.

The chapters are written in MyST for the book (and for JupyterLab with jupyterlab-myst): directives
(``{exercise}``, ``{prf:proof}``, ...), roles (``{numref}``, ``{cite}``, ...) and inline ``{eval}``
expressions whose values only a running kernel knows. Plain Jupyter shows all of these as raw text. This
module produces, from the same sources, an edition without any of it:

* each chapter is executed once in a fresh kernel, and every ``{eval}`` role is replaced by its value;
* directives become plain Markdown: an exercise a bold heading with its text, a proposition or an
  admonition a blockquote with a bold title, a proof a blockquote that starts with *Proof.*;
* cross-references become plain text with their numbers (``Figure 3.2``, ``Proposition 2.1``), citations
  author–year text, and each chapter ends with its references;
* each figure cell is followed by its caption (``**Figure 3.2.** ...``), which the book takes from the
  cell's metadata;
* outputs are stripped (they come back when the notebook runs); cells the book hides stay, folded.

Usage::

    python -m memprior.edition OUTDIR                 # the whole edition, from the repository's book/
    python -m memprior.edition --check book/02_*.ipynb  # execute one chapter and check its conventions

``--check`` executes a chapter in a fresh kernel as a student would, evaluates every ``{eval}``, counts
its figures (every plotly figure it displays must be a captioned figure cell, one per cell), measures the
thin-chapter limits and lists markup that the edition cannot convert. It exits 1 on any problem.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["iter_directives", "PLOTLY_MIME", "LIMITS", "Labels", "execute", "fill_evals", "figure_outputs", "code_lines",
           "collect_labels", "read_bibliography", "to_plain", "raw_markup", "check_chapter", "same_text", "write_edition", "write_command",
           "chapters", "main"]

#: The mimetype of a plotly figure output.
PLOTLY_MIME = "application/vnd.plotly.v1+json"
#: Thin-chapter limits: longest code cell, code lines per chapter, hidden code lines per chapter.
LIMITS = {"cell": 15, "total": 120, "hidden": 30}

_EVAL = re.compile(r"\{eval\}`([^`]+)`")
_ROLE = re.compile(r"\{(?P<name>[A-Za-z0-9_:+-]+)\}`(?P<body>[^`]*)`")
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[A-Za-z0-9_:-]+)\}[ \t]*(?P<arg>.*)$")
_TARGET = re.compile(r"^\(([A-Za-z0-9_:.-]+)\)=[ \t]*$", re.M)
_HIDDEN_TAGS = ("hide-input", "remove-input")
_PROOF_KINDS = {"prf:proposition": "Proposition", "prf:lemma": "Lemma", "prf:corollary": "Corollary",
                "prf:theorem": "Theorem", "prf:definition": "Definition", "prf:remark": "Remark",
                "prf:example": "Example", "prf:algorithm": "Algorithm", "prf:conjecture": "Conjecture"}


# --------------------------------------------------------------------------------------------------
# execution

def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _eval_code(exprs: list[str]) -> str:
    # Evaluated in the user's namespace, after the cells before it: a str shows as itself (as the
    # book's {eval} and jupyterlab-myst show it), anything else as its repr.
    return ("print('\\x1e' + __import__('json').dumps([(lambda _v: _v if isinstance(_v, str) else repr(_v))"
            f"(eval(_e)) for _e in {exprs!r}]))")


def _evaluate(client, nb, exprs: list[str], path: Path, k: int) -> list[str]:
    probe = nbformat.v4.new_code_cell(_eval_code(exprs))
    nb.cells.append(probe)  # nbclient addresses cells by index
    try:
        client.execute_cell(probe, len(nb.cells) - 1)
    except Exception as exc:  # noqa: BLE001 - name the cell and the expressions
        raise ValueError(f"{path.name}, cell {k}: an {{eval}} failed: {exprs}: "
                         f"{str(exc).strip().splitlines()[-1]}") from None
    finally:
        nb.cells.pop()
    text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
    return json.loads(text.rsplit("\x1e", 1)[1])


def execute(path, *, timeout: float = 600.0, quiet: bool = True):
    """Execute a chapter in a fresh kernel, evaluating each markdown cell's ``{eval}`` roles in order.

    Parameters
    ----------
    path : str or Path
        The chapter notebook. It runs in its own folder, as in the book build.
    timeout : float
        Seconds allowed per cell.
    quiet : bool
        Set ``MEMPRIOR_QUIET=1`` in the kernel (no progress bars, no live apps), as the build does.

    Returns
    -------
    executed : nbformat.NotebookNode
        The notebook with its outputs.
    values : dict
        ``{cell index: [str, ...]}``: the value of each ``{eval}`` of a markdown cell, in order, and
        ``{("caption", cell index): [...]}`` for the caption of a figure cell.
    seconds : float
        Wall time.

    Raises
    ------
    ValueError
        If ``path`` is not a notebook, or an ``{eval}`` expression fails (the message names the cell).
    nbclient.exceptions.CellExecutionError
        If a code cell fails.
    """
    from nbclient import NotebookClient

    path = Path(path)
    if not path.is_file() or path.suffix != ".ipynb":
        raise ValueError(f"path: {str(path)!r} is not a .ipynb file")
    nb = nbformat.read(path, as_version=4)
    old = os.environ.get("MEMPRIOR_QUIET")
    if quiet:
        os.environ["MEMPRIOR_QUIET"] = "1"
    values: dict[int, list[str]] = {}
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        with client.setup_kernel():
            for k, cell in enumerate(list(nb.cells)):
                if cell.cell_type == "code":
                    client.execute_cell(cell, k)
                    caption = str((_figure_meta(cell) or {}).get("caption", ""))
                    if _EVAL.search(caption):  # the book evaluates a caption after its cell
                        values[("caption", k)] = _evaluate(client, nb, _EVAL.findall(caption), path, k)
                elif cell.cell_type == "markdown" and _EVAL.search(cell.source):
                    values[k] = _evaluate(client, nb, _EVAL.findall(cell.source), path, k)
    finally:
        if quiet:
            if old is None:
                os.environ.pop("MEMPRIOR_QUIET", None)
            else:
                os.environ["MEMPRIOR_QUIET"] = old
    return nb, values, time.perf_counter() - t0


def fill_evals(nb, values: dict) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose markdown ``{eval}`` roles are replaced by ``values`` (from :func:`execute`)."""
    out = copy.deepcopy(nb)
    for k, vals in values.items():
        it = iter(vals)
        if isinstance(k, tuple):
            fig = out.cells[k[1]].metadata["mystnb"]["figure"]
            fig["caption"] = _EVAL.sub(lambda m: next(it), str(fig["caption"]))
        else:
            out.cells[k].source = _EVAL.sub(lambda m: next(it), out.cells[k].source)
    return out


def figure_outputs(cell) -> int:
    """How many plotly figures a code cell's outputs display."""
    return sum(1 for o in cell.get("outputs", []) if PLOTLY_MIME in o.get("data", {}))


def _figure_meta(cell) -> dict | None:
    fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
    return fig if isinstance(fig, dict) else None


def code_lines(nb) -> dict:
    """The thin-chapter measures: code lines outside solutions, the longest cell, hidden lines.

    Non-blank, non-comment lines of code cells not tagged ``solution`` or ``remove-cell``.
    """
    total = hidden = longest = 0
    for c in nb.cells:
        tags = _tags(c)
        if c.cell_type != "code" or "remove-cell" in tags or any(str(t).strip().lower() == "solution" for t in tags):
            continue
        n = sum(1 for ln in c.source.splitlines() if ln.strip() and not ln.strip().startswith("#"))
        total += n
        longest = max(longest, n)
        hidden += n if any(t in tags for t in _HIDDEN_TAGS) else 0
    return {"total": total, "longest": longest, "hidden": hidden}


# --------------------------------------------------------------------------------------------------
# labels, bibliography

@dataclass
class Labels:
    """What a cross-reference becomes in plain text: ``{label: text}``, and chapter titles by file stem."""

    text: dict = field(default_factory=dict)
    titles: dict = field(default_factory=dict)   # "03_stylized_problem" -> ("3", "A stylized inverse problem")
    captions: dict = field(default_factory=dict)  # figure name -> (number, caption)


def _chapter_number(stem: str) -> str:
    m = re.match(r"^(\d+)_", stem)
    return str(int(m.group(1))) if m else ""


def iter_directives(text: str):
    """Yield ``(name, arg, options, body, start, end)`` for each top-level fenced directive (line indices)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        pat = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r"}[ \t]*$")
        j = i + 1
        while j < len(lines) and not pat.match(lines[j]):
            j += 1
        body = lines[i + 1:j]
        opts = {}
        while body and re.match(r"^[ \t]*:[A-Za-z_-]+:", body[0]):
            key, _, val = body.pop(0).strip()[1:].partition(":")
            opts[key] = val.strip()
        yield m.group("name"), m.group("arg").strip(), opts, "\n".join(body).strip("\n"), i, j
        i = j + 1


def collect_labels(notebooks) -> Labels:
    """Number the figures, exercises and propositions of each chapter, as plain-text references."""
    lab = Labels()
    for path in notebooks:
        path = Path(path)
        nb = nbformat.read(path, as_version=4)
        num = _chapter_number(path.stem)
        title = next((ln[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                      for ln in c.source.splitlines() if ln.startswith("# ")), path.stem)
        lab.titles[path.stem] = (num, title)
        counts: dict[str, int] = {}

        def nxt(kind):
            counts[kind] = counts.get(kind, 0) + 1
            return f"{num}.{counts[kind]}" if num else str(counts[kind])

        for c in nb.cells:
            fig = _figure_meta(c) if c.cell_type == "code" else None
            if fig and fig.get("name"):
                n = nxt("figure")
                lab.text[fig["name"]] = f"Figure {n}"
                lab.captions[fig["name"]] = (n, str(fig.get("caption", "")))
            if c.cell_type != "markdown":
                continue
            for name, arg, opts, body, _, _ in iter_directives(c.source):
                label = opts.get("label") or (arg if name in ("exercise",) else "")
                if name == "exercise":
                    lab.text[opts.get("label", f"_ex{len(lab.text)}")] = f"Exercise {nxt('exercise')}"
                elif name in _PROOF_KINDS:
                    kind = _PROOF_KINDS[name]
                    text = f"{kind} {nxt('prf')}" + (f" ({arg})" if arg else "")
                    if opts.get("label"):
                        lab.text[opts["label"]] = text
                elif name == "math" and label:
                    lab.text[label] = f"Equation {nxt('eq')}"
            for m in _TARGET.finditer(c.source):  # (label)= before a heading
                after = c.source[m.end():].lstrip("\n").split("\n", 1)[0]
                lab.text[m.group(1)] = after.lstrip("#").strip() or m.group(1)
    return lab


_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "c": "\u0327"}


def _latex_text(value: str) -> str:
    """BibTeX field text as plain Unicode: accents (``\\'e`` -> é) applied, braces dropped."""
    import unicodedata

    value = re.sub(r"\\(['`^\"~c])\s*\{?([A-Za-z])\}?",
                   lambda m: unicodedata.normalize("NFC", m.group(2) + _ACCENTS[m.group(1)]), value)
    return re.sub(r"[{}]", "", value).strip()


def read_bibliography(path) -> dict:
    """``{key: (authors for the text, year, full reference)}`` from a BibTeX file (the fields the book uses)."""
    text = Path(path).read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, re.S):
        key, body = m.group(2), m.group(3)
        fields = {}
        for f in re.finditer(r"(\w+)\s*=\s*(\{(?:[^{}]|\{[^{}]*\})*\}|\"[^\"]*\"|\d+)", body):
            fields[f.group(1).lower()] = _latex_text(f.group(2).strip('"'))
        names = [a.strip() for a in re.split(r"\s+and\s+", fields.get("author") or fields.get("editor") or key)
                 if a.strip()]
        last = [(a.split(",")[0] if "," in a else a.split()[-1]).strip() for a in names]
        if len(last) == 1:
            who = last[0]
        elif len(last) == 2:
            who = f"{last[0]} & {last[1]}"
        else:
            who = f"{last[0]} et al."
        year = fields.get("year", "n.d.")
        venue = fields.get("journal") or fields.get("booktitle") or fields.get("publisher") or \
            fields.get("howpublished") or fields.get("note") or ""
        full = f"{'; '.join(names)} ({year}). *{fields.get('title', key)}*." + (f" {venue}." if venue else "")
        out[key] = (who, year, full)
    return out


# --------------------------------------------------------------------------------------------------
# MyST -> plain Markdown

def _quote(text: str) -> str:
    return "\n".join("> " + ln if ln.strip() else ">" for ln in text.split("\n"))


class _Converter:
    def __init__(self, labels: Labels, bib: dict, here: str):
        self.labels, self.bib, self.here = labels, bib, here
        self.cited: list[str] = []
        self.problems: list[str] = []

    def roles(self, text: str) -> str:
        def one(m):
            name, body = m.group("name"), m.group("body")
            shown, target = body, body
            mm = re.match(r"^(.*?)\s*<([^>]+)>$", body, re.S)
            if mm:
                shown, target = mm.group(1), mm.group(2)
            if name in ("numref", "ref", "prf:ref", "eq", "numref:"):
                ref = self.labels.text.get(target)
                if ref is None:
                    self.problems.append(f"unknown reference {{{name}}}`{body}`")
                    return shown
                if mm and name == "numref" and "%s" in shown:
                    return shown.replace("%s", ref.split()[-1])
                return shown if (mm and name != "prf:ref") else ref
            if name == "doc":
                stem = Path(target).name
                num, title = self.labels.titles.get(stem, ("", stem))
                text = shown if mm else (f"Chapter {num}, *{title}*" if num else f"*{title}*")
                return f"[{text}]({stem}.ipynb)"
            if name.startswith("cite"):
                keys = [k.strip() for k in target.split(",") if k.strip()]
                parts = []
                for k in keys:
                    if k not in self.bib:
                        self.problems.append(f"unknown citation {k!r}")
                        parts.append(k)
                        continue
                    if k not in self.cited:
                        self.cited.append(k)
                    who, year, _ = self.bib[k]
                    parts.append(f"{who} ({year})" if name in ("cite:t", "cite:ts") else f"{who}, {year}")
                return "; ".join(parts) if name in ("cite:t", "cite:ts") else "(" + "; ".join(parts) + ")"
            if name in ("term", "abbr", "sub", "sup", "code"):
                return shown if name != "code" else f"`{shown}`"
            if name == "math":
                return f"${body}$"
            if name == "eval":
                self.problems.append(f"unevaluated {{eval}}`{body}`")
                return body
            self.problems.append(f"unknown role {{{name}}}")
            return shown
        return _ROLE.sub(one, text)

    def block(self, text: str) -> str:
        """Convert the directives of a markdown text (recursively) and then its roles."""
        lines = text.split("\n")
        out: list[str] = []
        cursor = 0
        for name, arg, opts, body, i, j in iter_directives(text):
            out.extend(lines[cursor:i])
            cursor = j + 1
            out.append(self.directive(name, arg, opts, body))
        out.extend(lines[cursor:])
        text = "\n".join(out)
        text = _TARGET.sub("", text)
        return self.roles(text)

    def directive(self, name, arg, opts, body) -> str:
        inner = self.block(body) if body else ""
        label = opts.get("label", "")
        if name == "exercise":
            head = self.labels.text.get(label, "Exercise")
            extra = f" ({self.roles(arg)})" if arg else ""
            return f"**{head}{extra}.** " + inner.lstrip()
        if name in _PROOF_KINDS:
            head = self.labels.text.get(label) or (_PROOF_KINDS[name] + (f" ({arg})" if arg else ""))
            return _quote(f"**{head}.** " + inner.lstrip())
        if name == "prf:proof":
            return _quote("*Proof.* " + inner.lstrip() + " ∎")
        if name in ("admonition", "note", "tip", "important", "warning", "caution", "attention", "hint",
                    "seealso", "danger", "error"):
            title = self.roles(arg) if arg else name.capitalize()
            return _quote(f"**{title}**\n\n{inner}")
        if name == "solution-start":
            ex = self.labels.text.get(arg, "the exercise")
            return f"**Solution to {ex}.**"
        if name in ("solution-end",):
            return ""
        if name == "math":
            return f"$$\n{body}\n$$"
        if name in ("code-block", "code"):
            return f"```{arg}\n{body}\n```"
        if name in ("figure", "image"):
            return f"![{opts.get('alt', '')}]({arg})\n\n{inner}"
        self.problems.append(f"unknown directive {{{name}}}")
        return _quote(f"**{name}** {arg}\n\n{inner}")


def _caption_cell(number: str, caption: str, conv: _Converter):
    text = conv.block(caption).strip()
    return nbformat.v4.new_markdown_cell(f"**Figure {number}.** {text}")


def _stable_ids(nb, kept: set, stem: str) -> None:
    """Give the cells the edition adds (captions, references, answer cells) ids derived from their place and text.

    nbformat draws random ids for new cells; derived ids keep a regenerated edition byte-identical when the
    chapters have not changed.
    """
    for i, c in enumerate(nb.cells):
        if c.get("id") not in kept:
            c["id"] = hashlib.sha1(f"{stem}:{i}:{c.cell_type}:{c.source}".encode()).hexdigest()[:8]


def to_plain(nb, *, stem: str, labels: Labels, bib: dict) -> tuple[nbformat.NotebookNode, list[str]]:
    """The plain-Markdown edition of one chapter whose ``{eval}`` roles are filled (:func:`fill_evals`).

    Returns the converted notebook (outputs stripped) and the list of problems met (unknown roles,
    directives or references); an empty list means nothing raw remains.
    """
    conv = _Converter(labels, bib, stem)
    out = copy.deepcopy(nb)
    cells = []
    for c in out.cells:
        if c.cell_type == "markdown":
            c.source = conv.block(c.source).strip("\n")
            c.source = re.sub(r"\n{3,}", "\n\n", c.source)
            if c.source.strip():
                cells.append(c)
            continue
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
            c.metadata.pop("execution", None)
            tags = _tags(c)
            if any(t in tags for t in _HIDDEN_TAGS):
                c.metadata.setdefault("jupyter", {})["source_hidden"] = True
            cells.append(c)
            fig = _figure_meta(c)
            if fig and fig.get("name") in labels.captions:
                number = labels.captions[fig["name"]][0]
                cells.append(_caption_cell(number, str(fig.get("caption", "")), conv))
            continue
        cells.append(c)
    if conv.cited:
        refs = "\n".join(f"- {bib[k][2]}" for k in conv.cited)
        cells.append(nbformat.v4.new_markdown_cell(f"## References\n\n{refs}"))
    out.cells = cells
    out.metadata.pop("widgets", None)
    return out, conv.problems


def raw_markup(nb) -> list[str]:
    """MyST markup left in a notebook's markdown cells: directives, roles, targets (each as ``cell k: ...``)."""
    found = []
    for k, c in enumerate(nb.cells):
        if c.cell_type != "markdown":
            continue
        src = c.source
        for m in re.finditer(r"^[ \t]*(`{3,}|:{3,})\{[A-Za-z0-9_:-]+\}", src, re.M):
            found.append(f"cell {k}: directive {m.group(0).strip()}")
        for m in _ROLE.finditer(src):
            found.append(f"cell {k}: role {{{m.group('name')}}}`{m.group('body')}`")
        for m in _TARGET.finditer(src):
            found.append(f"cell {k}: target ({m.group(1)})=")
    return found


# --------------------------------------------------------------------------------------------------
# the whole edition, and the chapter check

def default_source() -> Path:
    """The chapters: ``book/`` of the current folder (run from the repository root, or pass ``--source``)."""
    cand = Path.cwd() / "book"
    if cand.is_dir() and any(cand.glob("[0-9][0-9]_*.ipynb")):
        return cand
    raise ValueError(f"source: no book/ folder with NN_*.ipynb chapters in {str(Path.cwd())!r}; "
                     "run from the repository root or pass --source")


def chapters(source) -> list[Path]:
    """The chapter notebooks (``NN_*.ipynb``) of a book folder, in order."""
    src = Path(source)
    if not src.is_dir():
        raise ValueError(f"source: {str(src)!r} is not a folder with the *.ipynb chapters")
    found = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ValueError(f"source: no NN_*.ipynb chapters in {str(src)!r}")
    return found


def _bib_for(source: Path) -> dict:
    bibfile = Path(source) / "references.bib"
    return read_bibliography(bibfile) if bibfile.is_file() else {}


def check_chapter(path, *, timeout: float = 600.0) -> dict:
    """Execute one chapter as a student would and check the notebook conventions.

    Returns a report: ``seconds``, ``figures`` (plotly outputs), ``figure_cells`` (captioned cells),
    ``lines`` (:func:`code_lines`), ``evals`` (number evaluated) and ``problems`` (list of strings; empty
    when the chapter passes).
    """
    path = Path(path)
    source = path.parent
    nb, values, seconds = execute(path, timeout=timeout)
    problems = []
    fig_cells = 0
    for k, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        n, meta = figure_outputs(c), _figure_meta(c)
        if meta:
            fig_cells += 1
            if n != 1:
                problems.append(f"cell {k}: a figure cell must display exactly one figure, it displays {n}")
            for key in ("name", "caption", "alt"):
                if not str(meta.get(key, "")).strip():
                    problems.append(f"cell {k}: figure metadata has no {key!r}")
        elif n:
            problems.append(f"cell {k}: displays {n} plotly figure(s) without figure metadata "
                            "(mystnb.figure name/caption/alt)")
        if "glue(" in c.source:
            problems.append(f"cell {k}: calls glue(); numbers go in the prose as {{eval}} roles")
    lines = code_lines(nb)
    for key, limit in (("longest", LIMITS["cell"]), ("total", LIMITS["total"]), ("hidden", LIMITS["hidden"])):
        if lines[key] > limit:
            problems.append(f"code lines: {key} = {lines[key]} > {limit}")
    others = [p for p in chapters(source)]
    labels = collect_labels(others)
    plain, conv_problems = to_plain(fill_evals(nb, values), stem=path.stem, labels=labels, bib=_bib_for(source))
    problems += [f"edition: {p}" for p in conv_problems]
    problems += [f"edition: raw markup left, {p}" for p in raw_markup(plain)]
    figures = sum(figure_outputs(c) for c in nb.cells)
    return {"chapter": path.name, "seconds": round(seconds, 1), "figures": figures, "figure_cells": fig_cells,
            "lines": lines, "evals": sum(len(v) for v in values.values()), "problems": problems,
            "edition": plain}


def same_text(a, b) -> bool:
    """Whether two editions of a chapter have the same cells, up to the numbers in them.

    The numbers come from the run (a timing, say, differs between machines); everything else (the prose,
    the code, the cell order) must match.
    """
    def key(nb):
        num = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
        return [(c.cell_type, num.sub("#", c.source).strip()) for c in nb.cells]
    return key(a) == key(b)


def write_edition(outdir, source=None, *, student: bool = False, verbose: bool = False,
                  timeout: float = 600.0) -> list[Path]:
    """Write the notebook edition (or, with ``student=True``, the student set) of every chapter.

    Each chapter is executed once (:func:`execute`) to fill its ``{eval}`` values, then converted
    (:func:`to_plain`). The student set drops the solutions first and leaves an answer cell after each
    exercise (:func:`memprior.student.strip_solutions`). Reference pages are not notebooks and are left out.

    Raises
    ------
    ValueError
        For a missing source, an output folder inside the source, a chapter whose conversion leaves raw
        markup, or one whose student copy would read a name only a solution defines.
    """
    from . import student as _student_mod

    src = Path(default_source() if source is None else source).expanduser().resolve()
    notebooks = chapters(src)
    dst = Path(outdir).expanduser().resolve()
    if dst == src or src in dst.parents:
        raise ValueError(f"outdir: {str(dst)!r} must lie outside the source folder {str(src)!r}")
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"outdir: {str(dst)!r} exists and is not a folder")
    labels, bib = collect_labels(notebooks), _bib_for(src)
    converted = []
    for path in notebooks:
        original = nbformat.read(path, as_version=4)
        _, values, seconds = execute(path, timeout=timeout)
        filled = fill_evals(original, values)
        if student:
            filled, removed = _student_mod.strip_solutions(filled, name=path.name)
            deps = _student_mod.solution_dependencies(original, filled)
            if deps:
                listing = ", ".join(f"{name!r} (cell {k})" for k, name in deps)
                raise ValueError(f"{path.name}: the student copy would fail: it reads {listing}, defined only "
                                 "in a solution cell; define it outside the solution")
        plain, problems = to_plain(filled, stem=path.stem, labels=labels, bib=bib)
        for c in plain.cells:  # answer cells name the exercise by its number
            if "answer" in _tags(c):
                c.source = re.sub(r"\(([^()]+)\)", lambda m: f"({labels.text.get(m.group(1), m.group(1))})",
                                  c.source, count=1)
        _stable_ids(plain, {c.get("id") for c in filled.cells}, path.stem)
        problems += raw_markup(plain)
        if problems:
            raise ValueError(f"{path.name}: the edition would keep raw markup: " + "; ".join(problems[:5]))
        nbformat.validate(plain)
        converted.append((path.name, plain))
        if verbose:
            print(f"{path.name}: executed in {seconds:.0f} s, {len(values)} cells with values")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb in converted:
        nbformat.write(nb, dst / name)
        written.append(dst / name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memprior.edition",
        description="Write the notebook edition (plain Markdown, values filled in) of the book's chapters, "
                    "or --check chapters against the notebook conventions.")
    parser.add_argument("outdir", nargs="?", help="output folder for the edition (created if missing)")
    parser.add_argument("--source", default=None, help="folder with the chapters (default: ./book)")
    parser.add_argument("--check", nargs="+", metavar="CHAPTER", help="execute and check these chapters")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    if args.check:
        bad = 0
        for p in args.check:
            try:
                rep = check_chapter(p)
            except (ValueError, OSError) as exc:
                print(f"{p}: error: {exc}", file=sys.stderr)
                bad += 1
                continue
            except Exception as exc:  # noqa: BLE001 - a cell failed: show its error, not a traceback
                print(f"{p}: a cell failed:\n{str(exc)[-3000:]}", file=sys.stderr)
                bad += 1
                continue
            ok = not rep["problems"]
            bad += not ok
            print(f"{rep['chapter']}: {'OK' if ok else 'PROBLEMS'}; {rep['seconds']} s; "
                  f"{rep['figures']} figures in {rep['figure_cells']} figure cells; {rep['evals']} evals; "
                  f"code lines {rep['lines']['total']} (longest cell {rep['lines']['longest']}, "
                  f"hidden {rep['lines']['hidden']})")
            for prob in rep["problems"]:
                print(f"  - {prob}")
        return 3 if bad else 0  # memprior._cli.EXIT_FAILED
    if not args.outdir:
        parser.error("give OUTDIR, or --check CHAPTER")
    return write_command(args.outdir, args.source, quiet=args.quiet)


def write_command(outdir, source=None, *, quiet: bool = False, student: bool = False) -> int:
    """The command line's write step (:func:`write_edition`): exit code 0, 2 with a one-line error on a bad
    path or chapter, 3 if writing fails."""
    from ._cli import EXIT_FAILED, EXIT_USAGE

    prog = f"python -m memprior.{'student' if student else 'edition'}"
    try:
        written = write_edition(outdir, source, student=student, verbose=not quiet)
    except (ValueError, TypeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{prog}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not quiet:
        print(f"wrote {len(written)} notebook(s) to {Path(outdir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

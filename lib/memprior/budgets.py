"""Measure the book against its budgets: notebook time and memory, page weight.

The budgets are those of CONTRIBUTING.md (section "Budgets"):

==============================  ==========
what                            budget
==============================  ==========
one notebook, wall time         90 s
one notebook, peak RSS          1.5 GB
one chapter page (own weight)   6 MB
==============================  ==========

``python -m memprior.budgets`` executes each notebook in a fresh kernel, records
its wall time and the peak resident memory of the kernel's process tree, weighs
each built page in ``_build/html``, prints a markdown table and writes JSON.
It exits with status 1 only on a *runaway*: a measurement above
``RUNAWAY_FACTOR`` (3) times its budget.  A notebook that fails to execute
gives status 3, because its numbers mean nothing (2 is a usage error).  Staying between the budget
and three times the budget is reported (``over budget``) but does not fail.

How the numbers are taken
-------------------------
*Notebooks.*  A driver subprocess runs the notebook with :mod:`nbclient`, with
the notebook's folder as working directory and ``MEMPRIOR_QUIET=1`` (as in the
book build).  Wall time covers kernel start, every cell and shutdown.  Peak RSS
is the larger of (a) the largest summed RSS of the driver's descendants (the
kernel and anything it starts), polled every ``poll_s`` seconds with psutil,
and (b) the exact high-water mark of the largest reaped child reported by
``getrusage(RUSAGE_CHILDREN)`` in the driver, which catches spikes shorter than
the polling interval.

*Pages.*  A page's own weight is its HTML file plus every local file it
references outside ``_static/`` (figures in ``_images/``, downloads).  Files
under ``_static/`` (plotly.js, MathJax, theme CSS and JavaScript) and the
search index are shared by all pages and cached by the browser after the first; they are reported apart,
as the shared weight the page pulls in.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._cli import EXIT_FAILED, EXIT_OK, EXIT_RUNAWAY, check_output_file, positive_float, run as run_cli

__all__ = [
    "WALL_BUDGET_S", "RSS_BUDGET_BYTES", "PAGE_BUDGET_BYTES", "RUNAWAY_FACTOR",
    "NotebookRun", "PageWeight", "run_notebook", "tree_rss", "page_weight", "find_pages",
    "verdict", "markdown_table", "main",
]

#: The budgets of CONTRIBUTING.md (decimal units: 1 GB = 1e9 bytes, 1 MB = 1e6 bytes).
WALL_BUDGET_S = 90.0
RSS_BUDGET_BYTES = 1.5e9
PAGE_BUDGET_BYTES = 6e6
#: A measurement above this multiple of its budget is a runaway and fails the run.
RUNAWAY_FACTOR = 3.0



# --------------------------------------------------------------------------- notebooks

@dataclass
class NotebookRun:
    """One notebook's execution: wall time (s), peak RSS (bytes), and whether it ran cleanly."""

    notebook: str
    wall_s: float
    peak_rss_bytes: int
    ok: bool
    error: str = ""


# The driver runs in its own process so that the parent can watch the kernel's process tree
# and so that getrusage(RUSAGE_CHILDREN) in the driver sees the kernel alone.
_DRIVER = r"""
import json, os, resource, sys, time
import nbformat
from nbclient import NotebookClient
path, timeout = sys.argv[1], float(sys.argv[2])
t0 = time.perf_counter()
ok, err = True, ""
try:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
except Exception as exc:
    ok, err = False, (type(exc).__name__ + ": " + str(exc))[-2000:]
wall = time.perf_counter() - t0
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print("MEMPRIOR_BUDGET " + json.dumps({"wall_s": wall, "children_maxrss_bytes": kb * 1024, "ok": ok, "error": err}))
"""


def tree_rss(proc) -> int:
    """Summed RSS (bytes) of the descendants of ``proc`` (not ``proc`` itself)."""
    import psutil

    total = 0
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_notebook(path, *, timeout: float = 600.0, poll_s: float = 0.05, env: dict | None = None) -> NotebookRun:
    """Execute one notebook in a fresh kernel and measure its wall time and peak RSS.

    Parameters
    ----------
    path : str or Path
        The ``.ipynb`` file.
    timeout : float
        Seconds allowed per cell, and for the whole run (the driver is killed after it); > 0.
    poll_s : float
        Memory polling interval in seconds, in (0, 1].
    env : dict, optional
        Extra environment variables for the kernel (``MEMPRIOR_QUIET=1`` is always set).

    Returns
    -------
    NotebookRun
        ``wall_s`` as measured by the driver (kernel start to shutdown), ``peak_rss_bytes`` of the kernel's
        process tree, ``ok`` False (with ``error``) if a cell failed or the run timed out.
    """
    import psutil

    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"path: expected an existing .ipynb file, got {str(path)!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout: must be a number of seconds in (0, inf), got {timeout!r}")
    if isinstance(poll_s, bool) or not isinstance(poll_s, (int, float)) or not 0 < poll_s <= 1:
        raise ValueError(f"poll_s: must be a number of seconds in (0, 1], got {poll_s!r}")
    full_env = dict(os.environ)
    full_env["MEMPRIOR_QUIET"] = "1"
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(path.resolve()), str(float(timeout))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    watched = psutil.Process(proc.pid)
    peak, timed_out = 0, False
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        if time.perf_counter() - t0 > timeout + 60:
            timed_out = True
            for child in watched.children(recursive=True):
                try:
                    child.kill()
                except psutil.Error:
                    pass
            proc.kill()
            break
        time.sleep(poll_s)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if timed_out:
        return NotebookRun(path.name, wall, peak, False, f"killed after {timeout + 60:.0f} s")
    line = next((ln for ln in stdout.splitlines() if ln.startswith("MEMPRIOR_BUDGET ")), None)
    if line is None:
        return NotebookRun(path.name, wall, peak, False,
                           f"driver exited {proc.returncode}: {stderr.strip()[-2000:]}")
    rec = json.loads(line[len("MEMPRIOR_BUDGET "):])
    return NotebookRun(path.name, float(rec["wall_s"]), int(max(peak, rec["children_maxrss_bytes"])),
                       bool(rec["ok"]), rec["error"])


# --------------------------------------------------------------------------- pages

@dataclass
class PageWeight:
    """A built page: its own weight (HTML + own assets) and the shared static weight it loads, in bytes."""

    page: str
    html_bytes: int
    own_asset_bytes: int
    shared_bytes: int
    own_assets: list = field(default_factory=list)

    @property
    def own_bytes(self) -> int:
        return self.html_bytes + self.own_asset_bytes


#: Files at the HTML root that every page loads (the search index): shared, like ``_static/``.
_SITE_WIDE = ("searchindex.js", "objects.inv")


class _Refs(HTMLParser):
    """Collect the local files a page loads: src/href of img, script, link, source, video, audio, embed."""

    _ATTRS = {"img": ("src",), "script": ("src",), "link": ("href",), "source": ("src",),
              "video": ("src", "poster"), "audio": ("src",), "embed": ("src",), "object": ("data",),
              "iframe": ("src",)}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        wanted = self._ATTRS.get(tag)
        if not wanted:
            return
        d = dict(attrs)
        if tag == "link" and not ({"stylesheet", "preload", "icon", "modulepreload"} & set((d.get("rel") or "").split())):
            return
        for a in wanted:
            if d.get(a):
                self.refs.append(d[a])


def _local_target(page: Path, ref: str) -> Path | None:
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path or ref.startswith("data:"):
        return None
    return (page.parent / unquote(parts.path)).resolve()


def page_weight(page, html_root) -> PageWeight:
    """Weigh one built page.

    Parameters
    ----------
    page : str or Path
        An ``.html`` file under ``html_root``.
    html_root : str or Path
        The build's HTML root (``_build/html``); its ``_static/`` holds the shared assets.
    """
    page, root = Path(page).resolve(), Path(html_root).resolve()
    if not root.is_dir():
        raise ValueError(f"html_root: {str(root)!r} is not a folder")
    if page.suffix != ".html" or not page.is_file():
        raise ValueError(f"page: expected an existing .html file, got {str(page)!r}")
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    static = root / "_static"
    site_wide = {root / name for name in _SITE_WIDE}
    own, shared, seen = [], 0, set()
    for ref in parser.refs:
        target = _local_target(page, ref)
        if target is None or target in seen or not target.is_file():
            continue
        seen.add(target)
        size = target.stat().st_size
        if target == static or static in target.parents or target in site_wide:
            shared += size
        else:
            own.append((str(target.relative_to(root)) if root in target.parents else str(target), size))
    return PageWeight(str(page.relative_to(root)) if root in page.parents else page.name,
                      page.stat().st_size, sum(s for _, s in own), shared, [n for n, _ in own])


def find_pages(html_root, stems=None) -> list[Path]:
    """Built content pages under ``html_root`` (not search/genindex, not _static/_sources).

    With ``stems`` (e.g. ``["01_ml_memorizes"]``) only pages with those file stems are returned.
    """
    root = Path(html_root)
    if not root.is_dir():
        raise ValueError(f"html_root: {str(root)!r} is not a folder (build the book first)")
    skip_dirs = {"_static", "_sources", "_images", "_downloads"}
    skip_pages = {"search.html", "genindex.html", "py-modindex.html"}
    pages = []
    for p in sorted(root.rglob("*.html")):
        rel = p.relative_to(root)
        if (rel.parts[0] in skip_dirs or any(part.startswith((".", "_")) for part in rel.parts[:-1])
                or p.name in skip_pages or p.name.startswith("prf-")):
            continue
        if stems is not None and p.stem not in stems:
            continue
        pages.append(p)
    return pages


# --------------------------------------------------------------------------- verdicts and report

def verdict(value: float, budget: float, factor: float = RUNAWAY_FACTOR) -> str:
    """``"ok"`` within budget, ``"over budget"`` up to ``factor`` times it, ``"RUNAWAY"`` beyond."""
    if value > factor * budget:
        return "RUNAWAY"
    if value > budget:
        return "over budget"
    return "ok"


def _worst(*verdicts: str) -> str:
    order = ("ok", "over budget", "RUNAWAY")
    return max(verdicts, key=order.index)


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f}"


def markdown_table(runs: list[NotebookRun], pages: list[PageWeight]) -> str:
    """The report as markdown: one table for notebooks, one for pages."""
    out = []
    if runs:
        out += ["| notebook | wall (s) | peak RSS (MB) | status |",
                "|---|---:|---:|---|"]
        for r in runs:
            if r.ok:
                status = _worst(verdict(r.wall_s, WALL_BUDGET_S), verdict(r.peak_rss_bytes, RSS_BUDGET_BYTES))
            else:
                status = "ERROR: " + (r.error.splitlines() or [""])[0][:80].replace("|", "/")
            out.append(f"| {r.notebook} | {r.wall_s:.1f} | {_mb(r.peak_rss_bytes)} | {status} |")
        out.append(f"\nBudgets: {WALL_BUDGET_S:.0f} s and {RSS_BUDGET_BYTES / 1e9:.1f} GB per notebook; "
                   f"runaway above {RUNAWAY_FACTOR:g}x.\n")
    if pages:
        out += ["| page | HTML (MB) | own assets (MB) | own total (MB) | shared static (MB) | status |",
                "|---|---:|---:|---:|---:|---|"]
        for p in pages:
            out.append(f"| {p.page} | {_mb(p.html_bytes)} | {_mb(p.own_asset_bytes)} | {_mb(p.own_bytes)} | "
                       f"{_mb(p.shared_bytes)} | {verdict(p.own_bytes, PAGE_BUDGET_BYTES)} |")
        out.append(f"\nBudget: {PAGE_BUDGET_BYTES / 1e6:.0f} MB of own weight per page (shared static assets, "
                   f"loaded once per visit, are listed apart); runaway above {RUNAWAY_FACTOR:g}x.\n")
    return "\n".join(out)


def _runaways(runs, pages) -> list[str]:
    bad = []
    for r in runs:
        if verdict(r.wall_s, WALL_BUDGET_S) == "RUNAWAY":
            bad.append(f"{r.notebook}: wall {r.wall_s:.1f} s > {RUNAWAY_FACTOR:g} x {WALL_BUDGET_S:.0f} s")
        if verdict(r.peak_rss_bytes, RSS_BUDGET_BYTES) == "RUNAWAY":
            bad.append(f"{r.notebook}: peak RSS {_mb(r.peak_rss_bytes)} MB > {RUNAWAY_FACTOR:g} x "
                       f"{_mb(RSS_BUDGET_BYTES)} MB")
    for p in pages:
        if verdict(p.own_bytes, PAGE_BUDGET_BYTES) == "RUNAWAY":
            bad.append(f"{p.page}: {_mb(p.own_bytes)} MB > {RUNAWAY_FACTOR:g} x {_mb(PAGE_BUDGET_BYTES)} MB")
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memprior.budgets",
        description="Time and weigh the book: each notebook's wall time and peak RSS in a fresh kernel, and each "
                    "built page's weight. Exit 1 on a runaway (> 3x the budget in CONTRIBUTING.md), 2 on a usage error, "
                    "3 if a notebook fails.")
    parser.add_argument("notebooks", nargs="*",
                        help="notebooks to run (default: every book/*.ipynb of the current folder)")
    parser.add_argument("--html", default=None,
                        help="built HTML root to weigh (default: ./_build/html, if it exists)")
    parser.add_argument("--json", default=None, help="write the results here (default: benchmarks/_out/budgets.json)")
    parser.add_argument("--no-run", action="store_true", help="weigh pages only; do not execute notebooks")
    parser.add_argument("--no-pages", action="store_true", help="run notebooks only; do not weigh pages")
    parser.add_argument("--timeout", type=positive_float, default=600.0,
                        help="seconds allowed per cell and per notebook (> 0)")
    args = parser.parse_args(argv)
    return run_cli(parser, _main, parser, args)


def _main(parser: argparse.ArgumentParser, args) -> int:
    root = Path.cwd()  # run from the repository root; nothing is computed from where the package lives
    out = Path(args.json) if args.json else root / "benchmarks" / "_out" / "budgets.json"
    # every path is checked before any notebook runs
    check_output_file(parser, "--json", out)
    if args.no_run and args.no_pages:
        parser.error("--no-run, --no-pages: together they leave nothing to measure")
    html = Path(args.html) if args.html else root / "_build" / "html"
    if args.html and not args.no_pages and not html.is_dir():
        parser.error(f"--html: {str(html)!r} is not a folder")
    nbs: list[Path] = []
    if not args.no_run:
        nbs = [Path(p) for p in args.notebooks] or sorted((root / "book").glob("*.ipynb"))
        for nb in nbs:
            if nb.suffix != ".ipynb" or not nb.is_file():
                parser.error(f"notebooks: {str(nb)!r} is not an existing .ipynb file")

    runs: list[NotebookRun] = []
    if not args.no_run:
        for nb in nbs:
            print(f"running {nb} ...", file=sys.stderr, flush=True)
            runs.append(run_notebook(nb, timeout=args.timeout))
    pages: list[PageWeight] = []
    if not args.no_pages:
        if html.is_dir():
            pages = [page_weight(p, html) for p in find_pages(html)]
        else:
            print(f"no built book at {html}; pages not weighed", file=sys.stderr)

    print(markdown_table(runs, pages))
    out.parent.mkdir(parents=True, exist_ok=True)
    runaways = _runaways(runs, pages)
    failed = [r.notebook for r in runs if not r.ok]
    out.write_text(json.dumps({
        "budgets": {"wall_s": WALL_BUDGET_S, "peak_rss_bytes": RSS_BUDGET_BYTES, "page_bytes": PAGE_BUDGET_BYTES,
                    "runaway_factor": RUNAWAY_FACTOR},
        "notebooks": [asdict(r) for r in runs],
        "pages": [dict(asdict(p), own_bytes=p.own_bytes) for p in pages],
        "runaways": runaways,
        "failed": failed,
    }, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    for line in runaways:
        print(f"RUNAWAY: {line}", file=sys.stderr)
    for name in failed:
        print(f"FAILED: {name} did not execute cleanly", file=sys.stderr)
    if runaways:
        return EXIT_RUNAWAY
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""The printable handout: one PDF of the whole built book, figures as static images.

Each page of the built book (``_build/html``, in the order of its table of contents) is opened in headless
chromium, laid out for print (the print style sheet, at the width of an A4 page), its plotly figures re-laid
out to that width and MathJax finished, then printed through the DevTools command ``Page.printToPDF``. The
pages are concatenated with pypdf behind a title page with the contents, and each page gets a bookmark.

Plotly draws its figures as SVG (heatmaps as images inside the SVG), so they print as they show; the live
apps are not in the built book (it shows their kernel-free twins, on their initial slider step).

Usage::

    python -m memprior.handout OUT.pdf                      # from the repository root, after the book build
    python -m memprior.handout OUT.pdf --html path/to/_build/html

Needs the system ``chromium`` and ``chromedriver`` (Debian: ``apt-get install chromium chromium-driver``),
selenium and pypdf (both pinned in ``requirements.txt``). Nothing is fetched from the network: every host name
resolves to nothing while the pages print.
"""
from __future__ import annotations

import argparse
import base64
import html as _html
import io
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PAGE", "Printed", "book_pages", "write_handout", "main"]

#: Paper and margins (inches) of the handout: A4.
PAGE = {"paperWidth": 8.27, "paperHeight": 11.69, "marginTop": 0.55, "marginBottom": 0.55,
        "marginLeft": 0.5, "marginRight": 0.5}
_CSS_PX_PER_INCH = 96


@dataclass(frozen=True)
class Printed:
    """One printed page of the book: its title, file, PDF page count and figures (visible in print / all)."""

    title: str
    path: Path
    pages: int
    figures: int
    figures_visible: int


def _root_page(html_dir: Path) -> Path:
    """The book's first page: the target of ``index.html``'s redirect, else ``index.html`` itself."""
    index = html_dir / "index.html"
    if not index.is_file():
        raise ValueError(f"html: no index.html in {str(html_dir)!r}; build the book first "
                         "(jupyter-book build -W -n --keep-going .)")
    m = re.search(r'http-equiv="refresh"[^>]*url=([^"]+)"', index.read_text(encoding="utf-8"), re.I)
    return (html_dir / m.group(1)).resolve() if m else index.resolve()


def book_pages(html_dir) -> list[Path]:
    """The pages of a built book in the order of its table of contents (the sidebar of its first page).

    Raises
    ------
    ValueError
        If ``html_dir`` is not a built book (no ``index.html``, or no navigation on its first page).
    """
    html_dir = Path(html_dir)
    if not html_dir.is_dir():
        raise ValueError(f"html: {str(html_dir)!r} is not a folder (the built book, _build/html)")
    root = _root_page(html_dir)
    text = root.read_text(encoding="utf-8")
    nav = re.search(r'<nav class="[^"]*\bbd-docs-nav\b[^"]*".*?</nav>', text, re.S)
    if nav is None:
        raise ValueError(f"html: no table of contents (nav.bd-docs-nav) in {str(root)!r}")
    pages = [root]
    for href in re.findall(r'<a class="reference internal" href="([^"#]+)"', nav.group(0)):
        p = (root.parent / href).resolve()
        if p.is_file() and p not in pages:
            pages.append(p)
    return pages


def _title(page: Path) -> str:
    m = re.search(r"<title>(.*?)</title>", page.read_text(encoding="utf-8"), re.S)
    t = _html.unescape(m.group(1)) if m else page.stem
    return t.split(" \u2014 ")[0].strip()


def _driver(width_px: int):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:  # pragma: no cover - selenium is in requirements.txt
        raise ImportError("the handout needs selenium (pip install -r requirements.txt)") from exc
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    drv = shutil.which("chromedriver")
    if not binary or not drv:
        raise RuntimeError("the handout needs the system chromium and chromedriver "
                           "(Debian: apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--window-size={width_px},1400", "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(drv), options=opts)
    d.set_script_timeout(120)
    return d


# Lay the page out for print: print media, figures re-laid out to their print width, MathJax finished, the
# page's own print button and launch buttons irrelevant (the theme's print style sheet hides them).
_PRINT_CSS = """
@media print {
  html { font-size: 14px !important; }
  pre { white-space: pre-wrap !important; word-break: break-word; overflow: visible !important; }
  div.highlight, div.cell_output, div.output, .cell_input { overflow: visible !important; max-height: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; padding: 0 !important; }
  figure, .memprior-figure, .js-plotly-plot { break-inside: avoid; page-break-inside: avoid; }
  .modebar-container { display: none !important; }
  mjx-container[display="true"] { overflow: visible !important; }
}
"""

_PREPARE = """
const done = arguments[arguments.length - 1];
const st = document.createElement('style'); st.textContent = arguments[0]; document.head.appendChild(st);
const figs = Array.from(document.querySelectorAll('.js-plotly-plot'));
const mj = (window.MathJax && MathJax.startup && MathJax.startup.promise) ? MathJax.startup.promise : Promise.resolve();
Promise.all(figs.map(g => Plotly.Plots.resize(g))).then(() => mj).then(() => new Promise(r => setTimeout(r, 300)))
  .then(() => {
    const visible = figs.filter(g => {
      const s = g.querySelector('.main-svg');
      if (!s) return false;
      const r = s.getBoundingClientRect(), cs = getComputedStyle(g);
      return r.width > 50 && r.height > 50 && cs.display !== 'none' && cs.visibility !== 'hidden'
        && g.offsetParent !== null;
    }).length;
    done([figs.length, visible]);
  }).catch(e => done(['error', String(e)]));
"""

_READY = ("return document.readyState === 'complete' && Array.from(document.querySelectorAll('.plotly-graph-div'))"
          ".every(g => g.classList.contains('js-plotly-plot'))")


def _print(driver, url: str, wait_s: float) -> tuple[bytes, int, int]:
    driver.get(url)
    t0 = time.time()
    while not driver.execute_script(_READY):
        if time.time() - t0 > wait_s:
            raise RuntimeError(f"{url}: the plotly figures did not render within {wait_s:.0f} s")
        time.sleep(0.2)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    res = driver.execute_async_script(_PREPARE, _PRINT_CSS)
    if res and res[0] == "error":
        raise RuntimeError(f"{url}: laying the page out for print failed: {res[1]}")
    pdf = driver.execute_cdp_cmd("Page.printToPDF", dict(PAGE, printBackground=True, preferCSSPageSize=False))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    return base64.b64decode(pdf["data"]), int(res[0]), int(res[1])


def _cover_html(book_title: str, entries: list[tuple[str, int]], licence: str) -> str:
    rows = "".join(f"<tr><td>{_html.escape(t)}</td><td class=p>{p}</td></tr>" for t, p in entries)
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; }}
h1 {{ font-size: 30px; margin: 90px 0 8px; }} .by {{ font-size: 16px; margin-bottom: 50px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
td {{ padding: 4px 0; border-bottom: 1px solid #ddd; }}
td.p {{ text-align: right; width: 4em; }} .lic {{ margin-top: 40px; font-size: 11px; color: #555; }}
</style></head><body><h1>{_html.escape(book_title)}</h1><div class="by">The memprior authors &middot; printable
handout</div><table>{rows}</table><p class="lic">{licence}</p></body></html>"""


_LICENCE = ("Text and figures: CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Code: MIT. "
            "Figures are static prints of the book's interactive figures, each on the initial step of its "
            "slider. Built from the same sources as the online book.")


def write_handout(out, html_dir="_build/html", *, verbose: bool = False, wait_s: float = 60.0) -> list[Printed]:
    """Print every page of the built book ``html_dir`` into one PDF ``out``; return what was printed.

    Parameters
    ----------
    out : str or Path
        The PDF to write (its folder is created).
    html_dir : str or Path
        The built book (``jupyter-book build`` writes ``_build/html``); relative to the current folder.
    verbose : bool
        Print one line per page.
    wait_s : float
        Longest wait for a page's figures to render, in seconds (> 0).

    Returns
    -------
    list of Printed
        One entry per book page, in order (the title page is not listed).

    Raises
    ------
    ValueError
        If ``html_dir`` is not a built book, ``out`` does not end in ``.pdf`` or ``wait_s`` is not positive.
    RuntimeError
        If chromium is missing, a page does not render, or a figure is not visible in print.
    """
    out = Path(out)
    if out.suffix.lower() != ".pdf":
        raise ValueError(f"out: the handout is a .pdf file, got {str(out)!r}")
    if not wait_s > 0:
        raise ValueError(f"wait_s: must be > 0 seconds, got {wait_s}")
    pages = book_pages(html_dir)
    try:
        from pypdf import PdfReader, PdfWriter
    except ImportError as exc:  # pragma: no cover - pypdf is in requirements.txt
        raise ImportError("the handout needs pypdf (pip install -r requirements.txt)") from exc
    width = round((PAGE["paperWidth"] - PAGE["marginLeft"] - PAGE["marginRight"]) * _CSS_PX_PER_INCH)
    driver = _driver(width)
    printed, parts = [], []
    try:
        for p in pages:
            pdf, n_fig, n_vis = _print(driver, p.as_uri(), wait_s)
            if n_vis != n_fig:
                raise RuntimeError(f"{p.name}: {n_fig - n_vis} of {n_fig} figures are not visible in print")
            n_pages = len(PdfReader(io.BytesIO(pdf)).pages)
            printed.append(Printed(_title(p), p, n_pages, n_fig, n_vis))
            parts.append(pdf)
            if verbose:
                print(f"{p.name}: {n_pages} pages, {n_fig} figures")
        book_title = _title(pages[0])
        # The title page lists the pages with their first page number (the title page is page 1).
        first, entries = 2, []
        for pr in printed:
            entries.append((pr.title, first))
            first += pr.pages
        with tempfile.TemporaryDirectory() as tmp:
            cover = Path(tmp) / "cover.html"
            cover.write_text(_cover_html(book_title, entries, _LICENCE), encoding="utf-8")
            driver.get(cover.as_uri())
            cover_pdf = base64.b64decode(driver.execute_cdp_cmd("Page.printToPDF", dict(PAGE))["data"])
    finally:
        driver.quit()
    writer = PdfWriter()
    writer.append(io.BytesIO(cover_pdf))
    n_cover = len(writer.pages)
    at = n_cover
    for pr, pdf in zip(printed, parts):
        writer.append(io.BytesIO(pdf))
        writer.add_outline_item(title=pr.title, page_number=at)
        at += pr.pages
    # each page's PDF embeds the same fonts (and MathJax's); keep one copy of each
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    writer.add_metadata({"/Title": book_title, "/Author": "The memprior authors",
                         "/Subject": "Printable handout of the book", "/Keywords": "CC BY 4.0"})
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        writer.write(fh)
    return printed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memprior.handout",
                                     description="Print the built book into one PDF (figures as static images).")
    parser.add_argument("out", help="the PDF to write")
    parser.add_argument("--html", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-page lines")
    args = parser.parse_args(argv)
    from ._cli import check_output_file, run as run_cli

    if Path(args.out).suffix.lower() != ".pdf":
        parser.error(f"out: the handout is a .pdf file, got {args.out!r}")
    check_output_file(parser, "out", args.out)
    if not Path(args.html).is_dir():
        parser.error(f"--html: {args.html!r} is not a folder (build the book first: jupyter-book build .)")
    return run_cli(parser, _main, args)


def _main(args) -> int:
    try:
        printed = write_handout(args.out, args.html, verbose=not args.quiet)
    except ImportError as exc:
        raise RuntimeError(str(exc)) from exc
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {sum(p.pages for p in printed) + 1} pages ({len(printed)} book pages and a title page), "
          f"{sum(p.figures for p in printed)} figures, {size / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The built book: pages exist, figures render offline in headless chromium, sliders work, pages are light.

The book is built once per session with the README's build command (``jupyter-book build -W -n
--keep-going .``; warnings are errors).  Chromium loads the pages from ``file://`` with every host name
mapped to "not found", so any figure or formula that needed a CDN would fail to render.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
PAGE_BUDGET_BYTES = 6 * 2**20
# Console messages from the theme itself on file:// pages, not from the book's content.
_KNOWN_THEME_NOISE = ("favicon", "THEBE_JS_URL", "invalid theme mode")


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("parts", []) or []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return files


def _chapters() -> list[str]:
    """Toc entries that are notebooks (the executable chapters)."""
    return [f for f in _toc_files() if (ROOT / (f + ".ipynb")).exists()]


@pytest.fixture(scope="session")
def built_book():
    from conftest import _build_proc, start_book_build

    proc, log = start_book_build()
    try:
        proc.wait(timeout=40 * 60)
    finally:
        _build_proc["fh"].close()
        _build_proc["wall_s"] = time.perf_counter() - _build_proc["t0"]
    text = log.read_text()
    tail = text[-8000:]
    assert proc.returncode == 0, f"book build failed (warnings are errors):\n{tail}"
    assert "build succeeded" in text, tail
    return HTML


def _chromium_driver(allow_local: bool = False):
    """Headless chromium with no network (``allow_local``: the loopback address 127.0.0.1 only)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (apt-get install chromium chromium-driver)")
        pytest.skip("chromium/chromedriver not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,1600",
              # No network: every host name resolves to nothing; file:// pages need none.
              "--host-resolver-rules=MAP * ~NOTFOUND" + (", EXCLUDE 127.0.0.1" if allow_local else "")):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


@pytest.fixture(scope="session")
def browser():
    d = _chromium_driver()
    yield d
    d.quit()


def _load(browser, page: Path, wait_s: float = 20.0):
    browser.get(page.as_uri())
    t0 = time.time()
    while time.time() - t0 < wait_s:
        ready = browser.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.querySelectorAll('.plotly-graph-div')).every(g => g.classList.contains('js-plotly-plot'))"
        )
        if ready:
            break
        time.sleep(0.2)
    time.sleep(0.5)


def _requested_urls(browser) -> list[str]:
    urls = []
    for entry in browser.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_every_toc_page_exists(built_book):
    missing = [f for f in _toc_files() if not (built_book / (f + ".html")).exists()]
    assert not missing, f"pages missing from the build: {missing}"
    assert len(_chapters()) >= 1


def test_offline_assets_are_served_locally(built_book):
    assert (built_book / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists()
    for ch in _chapters():
        html = (built_book / (ch + ".html")).read_text()
        assert "cdn.plot.ly" not in html and "cdn.jsdelivr.net/npm/mathjax" not in html, ch


@pytest.mark.parametrize("chapter", _chapters())
def test_chapter_renders_figures_and_math(built_book, browser, chapter):
    page = built_book / (chapter + ".html")
    browser.get_log("performance")  # drain
    _load(browser, page)
    n_plots = browser.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
    assert n_plots >= 1, f"{chapter}: no rendered plotly figure"
    unlabelled = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => "
        "!g.closest('[role=img][aria-label]')).length")
    assert unlabelled == 0, f"{chapter}: {unlabelled} figure(s) without alt text (aria-label)"
    n_math = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    assert n_math >= 1, f"{chapter}: no typeset math"
    external = [u for u in _requested_urls(browser) if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert not external, f"{chapter}: tried to reach the network: {external[:5]}"
    errors = [e for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and not any(k in e["message"] for k in _KNOWN_THEME_NOISE)]
    assert not errors, f"{chapter}: console errors: {errors[:3]}"


@pytest.mark.parametrize("chapter", _chapters())
def test_chapter_sliders_change_the_figure(built_book, browser, chapter):
    page = built_book / (chapter + ".html")
    _load(browser, page)
    n = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => "
        "g.layout && g.layout.sliders && g.layout.sliders.length && g._transitionData && "
        "g._transitionData._frames.length > 1).length")
    if n == 0:
        pytest.skip(f"{chapter} has no slider figure")
    from selenium.webdriver.common.action_chains import ActionChains
    gd = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).find(g => g.layout.sliders && "
        "g.layout.sliders.length && g._transitionData && g._transitionData._frames.length > 1)")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", gd)
    time.sleep(0.3)
    before = browser.execute_script("return JSON.stringify(arguments[0].data.map(t => [t.x, t.y, t.z]))", gd)
    active0 = browser.execute_script("return arguments[0]._fullLayout.sliders[0].active", gd)
    rail = gd.find_element("css selector", ".slider-rail-rect")
    w = rail.size["width"]
    # Click the rail at the end opposite to the active step: a real user interaction.
    offset = (w / 2 - 3) if active0 == 0 else (-w / 2 + 3)
    ActionChains(browser).move_to_element_with_offset(rail, int(offset), 0).click().perform()
    time.sleep(1.0)
    active1 = browser.execute_script("return arguments[0]._fullLayout.sliders[0].active", gd)
    after = browser.execute_script("return JSON.stringify(arguments[0].data.map(t => [t.x, t.y, t.z]))", gd)
    assert active1 != active0, f"{chapter}: clicking the slider did not move it"
    assert after != before, f"{chapter}: moving the slider did not change the figure"


@pytest.mark.parametrize("chapter", _chapters())
def test_chapter_page_weight(built_book, chapter):
    page = built_book / (chapter + ".html")
    size = page.stat().st_size
    images = built_book / "_images"
    html = page.read_text()
    if images.exists():
        size += sum(p.stat().st_size for p in images.iterdir() if p.name in html)
    assert size <= PAGE_BUDGET_BYTES, f"{chapter}: {size / 2**20:.2f} MB > 6 MB"


def test_no_progress_bar_or_warning_noise(built_book):
    for ch in _chapters():
        html = (built_book / (ch + ".html")).read_text()
        for noise in ("it/s]", "Warning:", "UserWarning", "DeprecationWarning"):
            assert noise not in html, f"{ch}: '{noise}' appears in the page"


@pytest.mark.parametrize("chapter", _chapters())
def test_page_shows_the_figures_the_notebook_shows(built_book, chapter):
    """The page has one numbered, captioned figure per plotly figure the chapter shows when run as a notebook.

    The notebook's count comes from tests/test_chapters.py (run earlier in the same session), which executes
    each chapter in a plain kernel.
    """
    import re

    counts = ROOT / "_build" / "chapter_figures.json"
    if not counts.exists() or Path(chapter).name not in json.loads(counts.read_text()):
        if os.environ.get("CI"):
            pytest.fail("tests/test_chapters.py must run before the built-book tests in CI")
        pytest.skip("run tests/test_chapters.py in the same session for the notebook's figure count")
    expected = json.loads(counts.read_text())[Path(chapter).name]
    html = (built_book / (chapter + ".html")).read_text()
    figures = re.findall(r"<figure\b.*?</figure>", html, re.S)
    plotly_figures = [f for f in figures if 'class="memprior-figure"' in f]
    assert len(plotly_figures) == html.count('class="memprior-figure"'), f"{chapter}: a plotly figure outside <figure>"
    assert len(plotly_figures) == expected, f"{chapter}: page has {len(plotly_figures)} figures, notebook {expected}"
    for f in plotly_figures:
        assert re.search(r'class="caption-number">Fig\. \d', f), f"{chapter}: a figure without a number"
        assert 'aria-label="Interactive figure' not in f, f"{chapter}: a figure without its alt text"


# --------------------------------------------------------------------------- launch, download, small screens, print

@pytest.mark.parametrize("chapter", _chapters())
def test_chapter_offers_its_notebook_live_code_binder_and_colab(built_book, chapter):
    """Each chapter page links its .ipynb for download, and launches Binder, Colab and live code (Thebe) for the
    repository named in _config.yml (the one place that names it)."""
    import re

    html = (built_book / (chapter + ".html")).read_text()
    name = Path(chapter).name
    downloads = re.findall(r'<a href="([^"]*_sources/[^"]+\.ipynb)"[^>]*\s+class="[^"]*btn-download-source', html)
    assert downloads, f"{chapter}: no .ipynb download link"
    target = (built_book / chapter).parent / downloads[0]
    assert target.is_file() and target.name == name + ".ipynb", f"{chapter}: {downloads[0]} is not the notebook"
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    owner_repo = repo.split("github.com/", 1)[1]
    assert f"https://mybinder.org/v2/gh/{owner_repo}/" in html, f"{chapter}: no Binder launch for {owner_repo}"
    assert f"colab.research.google.com/github/{owner_repo}/blob/main/edition/{name}.ipynb" in html
    assert "initThebeSBT()" in html and "launch-thebe" in html, f"{chapter}: no Live Code (Thebe) button"
    assert f'repo: "{owner_repo}"' in html, f"{chapter}: Thebe's Binder does not name {owner_repo}"


_SMALL_SCREEN_JS = """
const ov = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
const out = [];
document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
  const fig = gd.getBoundingClientRect(), titles = [];
  gd.querySelectorAll('.infolayer g.annotation').forEach(g => {
    const a = (gd.layout.annotations || [])[+g.getAttribute('data-index')] || {};
    const t = g.querySelector('.annotation-text');
    // subplot titles: make_subplots writes them as paper-referenced annotations anchored at their bottom
    if (t && a.text && a.xref === 'paper' && a.yref === 'paper' && a.yanchor === 'bottom' && a.showarrow === false)
      titles.push({text: a.text, r: t.getBoundingClientRect()});
  });
  for (let p = 0; p < titles.length; p++) for (let q = p + 1; q < titles.length; q++)
    if (ov(titles[p].r, titles[q].r))
      out.push(`figure ${i}: subplot titles "${titles[p].text}" and "${titles[q].text}" overlap`);
  titles.forEach(t => { if (t.r.left < fig.left - 1 || t.r.right > fig.right + 1)
    out.push(`figure ${i}: subplot title "${t.text}" runs off the figure`); });
  gd.querySelectorAll('g.colorbar').forEach(cb => {
    const r = cb.getBoundingClientRect();
    const outside = r.left < fig.left - 1 || r.right > fig.right + 1 || r.top < fig.top - 1
      || r.bottom > fig.bottom + 1;
    if (r.width && outside)
      out.push(`figure ${i}: a colour bar lies outside the figure`);
  });
  const svg = gd.querySelector('.main-svg').getBoundingClientRect();
  if (svg.right > document.documentElement.clientWidth + 1) out.push(`figure ${i}: wider than the screen`);
});
return [document.querySelectorAll('.js-plotly-plot').length, document.documentElement.clientWidth, out];
"""


@pytest.mark.parametrize("chapter", [c for c in _chapters() if Path(c).name.startswith(("03_", "07_"))])
def test_figures_are_legible_on_a_412_px_phone(built_book, chapter):
    """On a 412 px wide phone no subplot title runs into another or off its figure, every colour bar lies inside
    its figure and no figure is wider than the screen (the figures the chapters with the most panels show)."""
    d = _chromium_driver()
    try:
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 412, "height": 915, "deviceScaleFactor": 2.625, "mobile": True})
        _load(d, built_book / (chapter + ".html"))
        n, width, problems = d.execute_script(_SMALL_SCREEN_JS)
    finally:
        d.quit()
    assert width <= 412 and n >= 5, f"{chapter}: laid out {width} px wide with {n} figures"
    assert not problems, f"{chapter} at 412 px: " + "; ".join(problems)


def test_handout_prints_every_page_into_one_pdf(built_book, tmp_path):
    """`python -m memprior.handout` prints the whole book into one PDF: every chapter is in it (its title in the
    text and a bookmark), every figure was visible in print, and the file stays light enough to hand out."""
    import html as _html
    import re
    import subprocess
    import sys

    pypdf = pytest.importorskip("pypdf")
    _chromium_driver().quit()  # skips (or fails in CI) without chromium
    out = tmp_path / "handout.pdf"
    r = subprocess.run([sys.executable, "-m", "memprior.handout", str(out), "--html", str(built_book), "-q"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    reader = pypdf.PdfReader(str(out))
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages)
    bookmarks = [o.title for o in reader.outline]
    titles = []
    for ch in _chapters():
        t = _html.unescape(re.search(r"<title>(.*?)</title>", (built_book / (ch + ".html")).read_text()).group(1))
        titles.append(t.split(" \u2014 ")[0].strip())
    for t in titles:
        assert t in bookmarks, f"no bookmark for {t!r}"
        assert t.split(". ", 1)[1] in text, f"the chapter {t!r} is not in the handout's text"
    assert len(reader.pages) > 10 * len(titles)
    assert out.stat().st_size < 40 * 2**20, f"{out.stat().st_size / 2**20:.1f} MB"
    assert "figures" in r.stdout and reader.metadata.title == "Memorization in learned priors"

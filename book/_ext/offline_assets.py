"""Serve plotly.js and MathJax from the book's own ``_static`` folder; give figures their alt text.

The built book must render figures and mathematics with no network: no CDN is
contacted.  This extension copies ``plotly.min.js`` from the installed plotly
package and MathJax 3 from the ``sphinx-mathjax-offline`` package into the
output, and points Sphinx at the local copies.
"""
from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
from pathlib import Path

import plotly


def _plotly_js() -> Path:
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _mathjax_dir() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "sphinx-mathjax-offline is not installed; `pip install -r requirements.txt` installs it"
        )
    return Path(spec.origin).parent / "static" / "mathjax"


def _on_builder_inited(app):
    if app.builder.format != "html":
        return
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    # Loaded early and synchronously, before any RequireJS, so that window.Plotly exists
    # when the inline figure scripts run.
    app.add_js_file("plotly.min.js", priority=100)


def _on_build_finished(app, exc):
    if exc is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_plotly_js(), static / "plotly.min.js")
    dst = static / "mathjax"
    if not dst.exists():
        shutil.copytree(_mathjax_dir(), dst)


_ARIA = re.compile(r'(<div class="memprior-figure" role="img" aria-label=")[^"]*(")')


def _label_raw_figures(root, alt: str) -> None:
    """Write ``alt`` as the ``aria-label`` of every plotly figure (raw HTML) below ``root``."""
    from docutils import nodes

    label = html.escape(" ".join(str(alt).split()), quote=True)
    for raw in list(root.findall(nodes.raw)):
        text = raw.astext()
        if _ARIA.search(text):
            new = _ARIA.sub(lambda m: m.group(1) + label + m.group(2), text, count=1)
            raw.replace_self(nodes.raw("", new, format="html"))


def _figure_alt_to_aria_label() -> None:
    """Make a figure cell's alt text the plotly figure's ``aria-label``.

    A chapter's figure cell displays its figure and carries the book's figure options in its metadata,
    ``{"mystnb": {"figure": {"name": ..., "caption": ..., "alt": ...}}}``. myst-nb wraps the cell's output
    in a numbered figure with that name and caption, but applies alt text to images only; a plotly figure
    arrives as raw HTML, whose wrapper (written by ``memprior.plots``) carries an ``aria-label``. This sets
    it from the ``alt`` option.
    """
    from contextlib import contextmanager

    import myst_nb.sphinx_ as nb_sphinx

    if getattr(nb_sphinx.create_figure_context, "_memprior_alt", False):
        return
    original = nb_sphinx.create_figure_context

    @contextmanager
    def create_figure_context(renderer, figure_options, line):
        with original(renderer, figure_options, line):
            yield
            alt = figure_options.get("alt") if isinstance(figure_options, dict) else None
            if alt:
                _label_raw_figures(renderer.current_node, alt)

    create_figure_context._memprior_alt = True
    nb_sphinx.create_figure_context = create_figure_context


def _colab_opens_the_edition(app, pagename, templatename, context, doctree):
    """Point a chapter's Colab launch button at its notebook edition (``edition/NN_*.ipynb``).

    Colab renders no MyST, so it opens the plain-Markdown edition that ``python -m memprior.edition``
    writes from the same chapter (values filled in, directives as plain Markdown); Binder and JupyterLab
    open the MyST source, which jupyterlab-myst renders.
    """
    for group in context.get("header_buttons", []) or []:
        for button in group.get("buttons", []) or []:
            url = button.get("url", "")
            if "colab.research.google.com" in url and "/book/" in url:
                button["url"] = url.replace("/book/", "/edition/", 1)


def setup(app):
    _figure_alt_to_aria_label()
    # Kernels started by the build inherit this: library progress bars stay silent in the pages.
    os.environ["MEMPRIOR_QUIET"] = "1"
    app.connect("builder-inited", _on_builder_inited)
    app.connect("build-finished", _on_build_finished)
    # after sphinx-book-theme adds the launch buttons (priority 501)
    app.connect("html-page-context", _colab_opens_the_edition, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

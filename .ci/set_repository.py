#!/usr/bin/env python3
"""Point the book at a repository: rewrite ``repository.url`` (and ``branch``) in ``_config.yml``.

``_config.yml`` is the one file that names the repository; the launch buttons (Binder, Colab, live code) and
the repository link derive from it. The Pages workflow runs, before the build::

    python .ci/set_repository.py "${{ github.server_url }}/${{ github.repository }}" "${{ github.ref_name }}"

so that a fork publishes a book whose buttons open the fork. Comments and everything else stay as they are.

Usage: ``python .ci/set_repository.py URL [BRANCH] [--config PATH]`` (default config: ./_config.yml).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def set_repository(text: str, url: str, branch: str | None = None) -> str:
    """``text`` (a ``_config.yml``) with the ``url`` (and ``branch``) of its ``repository:`` block replaced."""
    if not _URL.match(url):
        raise ValueError(f"url: expected https://HOST/OWNER/NAME, got {url!r}")
    if branch is not None and not re.fullmatch(r"[A-Za-z0-9_./-]+", branch):
        raise ValueError(f"branch: expected a git branch name, got {branch!r}")
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if re.match(r"^repository:\s*(#.*)?$", ln))
    except StopIteration:
        raise ValueError("config: no top-level 'repository:' block") from None
    done = set()
    for i in range(start + 1, len(lines)):
        ln = lines[i]
        if ln.strip() and not ln[0].isspace():  # the next top-level key ends the block
            break
        for key, value in (("url", url), ("branch", branch)):
            m = re.match(rf"^(\s+){key}:", ln)
            if m and value is not None:
                lines[i] = f"{m.group(1)}{key}: {value}\n"
                done.add(key)
    if "url" not in done:
        raise ValueError("config: the 'repository:' block has no 'url:' line")
    return "".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("branch", nargs="?", default=None)
    p.add_argument("--config", default="_config.yml")
    a = p.parse_args(argv)
    path = Path(a.config)
    path.write_text(set_repository(path.read_text(), a.url, a.branch))
    print(f"{path}: repository {a.url}" + (f" (branch {a.branch})" if a.branch else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The documentation builds strictly: a broken link, an unresolved cross-reference or a docstring
the API pages cannot parse fails the suite (and CI) instead of a published page."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mkdocs_build_is_strict_clean(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "stages" / "index.html").stat().st_size > 10_000  # the API was rendered

"""CI fails on a skipped test (``SHIPFASTSIM_FAIL_ON_SKIP``, set by .ci/run)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_turns_a_skip_for_a_missing_file_into_a_failure(tmp_path):
    (tmp_path / "test_needs_a_file.py").write_text(
        "import pytest\n\ndef test_it():\n    pytest.skip('data file not found')\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_known():\n    assert False\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
               str(tmp_path / "test_needs_a_file.py")]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ci = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                        env=env | {"SHIPFASTSIM_FAIL_ON_SKIP": "1"}, timeout=120)
    assert ci.returncode == 1 and "1 failed, 1 xfailed" in ci.stdout, ci.stdout
    assert "does not allow: Skipped: data file not found" in ci.stdout
    assert "SHIPFASTSIM_FAIL_ON_SKIP=1" in (REPO / ".ci" / "run").read_text()

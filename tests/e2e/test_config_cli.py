"""The command line as a user starts it: `python -m flows.imdb_pipeline --help` in a fresh process
(the config and option parsing themselves are in tests/unit/test_config_cli.py)."""

from __future__ import annotations

import subprocess
import sys

from flows.cli import OPTIONS
from tests.helpers import REPO_ROOT, prefect_home, small_run_options


def test_help_lists_every_option_with_its_default():
    result = subprocess.run(
        [sys.executable, "-m", "flows.imdb_pipeline", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    text = " ".join(result.stdout.split())
    for option in OPTIONS:
        assert option in text
    assert "(default: onehot,embedding)" in text
    assert "(default: 0.0001)" in text


def test_a_failed_run_shows_the_user_one_error_line_after_its_log_and_no_traceback(tmp_path, migrated_prefect_database):
    """What a user sees: the CLI in a fresh process on Prefect's ephemeral server (no
    PREFECT_API_URL), its whole stdout and stderr."""
    import os

    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home(tmp_path, migrated_prefect_database))
    source = tmp_path / "absent.npz"
    result = subprocess.run(
        [sys.executable, "-m", "flows.imdb_pipeline", *small_run_options(str(source), tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    errors = [index for index, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1 and lines[errors[0]] == f"error: source {source} does not exist", result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    before, after = lines[: errors[0]], lines[errors[0] + 1 :]
    assert any("Finished in state Failed" in line and "does not exist" in line for line in before)
    # Only Prefect's own line about its temporary server follows the error (README, "Exit status").
    assert all("Stopping temporary server" in line for line in after), after

"""The command line as a user starts it: `python -m flows.imdb_pipeline --help` in a fresh process
(the config and option parsing themselves are in tests/unit/test_config_cli.py)."""

from __future__ import annotations

import subprocess
import sys

from flows.cli import OPTIONS


def test_help_lists_every_option_with_its_default():
    result = subprocess.run([sys.executable, "-m", "flows.imdb_pipeline", "--help"],
                            capture_output=True, text=True, timeout=120, check=True)
    text = " ".join(result.stdout.split())
    for option in OPTIONS:
        assert option in text
    assert "(default: onehot,embedding)" in text
    assert "(default: 0.0001)" in text

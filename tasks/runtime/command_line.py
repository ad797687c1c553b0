"""What every flow's command line does around its flow: Prefect's local defaults, the S3 endpoint,
and the one-line outcome of a failed or interrupted run."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from tasks.errors import PipelineError
from tasks.runtime.crashed_runs import mark_crashed_runs
from tasks.runtime.environment import reload_prefect_settings, set_prefect_defaults
from tasks.runtime.interruption import describe_interruption, interruptible, interruption_signal
from tasks.runtime.local_server import local_server_unless_configured
from tasks.storage.fs import use_s3_endpoint

Result = TypeVar("Result")


def run_flow(
    call: Callable[[], Result], s3_endpoint_url: str | None, warm_up: Sequence[str] = ()
) -> tuple[int, Result | None]:
    """Runs `call` (a flow) with the project's Prefect settings (tasks/runtime/environment.py) unless
    configured otherwise; returns (0, its result), or an exit status after printing one `error:` line
    on stderr: 1 for a failure, 128 + the signal's number for SIGTERM or SIGINT.

    Without a configured server, a temporary one starts first; while it starts, the flow runs of
    earlier runs killed outright are marked Crashed (a `note:` line each on stderr) and the modules
    named in `warm_up` (libraries the stages import on first use) are imported."""
    set_prefect_defaults()
    reload_prefect_settings()
    use_s3_endpoint(s3_endpoint_url)
    try:
        with interruptible(), local_server_unless_configured() as server:
            if server is not None and server.home is not None:  # in PREFECT_HOME/runs/, beside the others
                for line in mark_crashed_runs(server.home.parent.parent, server.startup_timeout):
                    print(f"note: {line}", file=sys.stderr)
            for module in warm_up:
                importlib.import_module(module)
            if server is not None:
                server.wait_until_ready()
            return 0, call()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
    except Exception as error:  # noqa: BLE001 - the one-line contract holds for surprises too
        print(f"error: unexpected {error.__class__.__name__}: {error}", file=sys.stderr)
    except BaseException as error:  # SIGTERM, SIGINT
        number = interruption_signal(error)
        if number is None:
            raise
        print(f"error: {describe_interruption(number)}", file=sys.stderr)
        return 128 + number, None  # the shell's convention for a process ended by a signal
    return 1, None

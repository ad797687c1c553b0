"""The few places the code leans on Prefect's internals, each because no public API does the job
(the why is beside each use): these fail when a Prefect upgrade changes one, before a run does."""

from __future__ import annotations

import inspect

from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, load_logging_config

from tasks.runtime import local_server, run_logging


def test_the_temporary_server_starts_as_prefect_starts_its_own():
    from prefect.server.api import server  # Prefect's server package: only this test imports it here

    factory = inspect.signature(server.create_app)
    assert {"ephemeral", "final"} <= set(factory.parameters)
    reads = inspect.getsource(server.create_app)
    own = inspect.getsource(server.SubprocessASGIServer._run_uvicorn_command)
    assert local_server.SERVER_APP in own
    for name, value in local_server.SERVER_ENVIRONMENT.items():
        if name.startswith("PREFECT__"):  # private settings: read by the factory, set by Prefect itself
            assert f'os.getenv("{name}")' in reads and f'"{name}": "{value}"' in own, name


def test_plain_modules_reach_the_run_log_through_prefects_extra_logger():
    logging_config = load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
    handlers = logging_config["loggers"][run_logging.EXTRA_LOGGER]["handlers"]
    assert any(logging_config["handlers"][name]["class"].endswith(".APILogHandler") for name in handlers)

"""The plain modules log through the standard library; these send those logs to the run's log."""

from __future__ import annotations

import logging
import time

from prefect import get_run_logger

from tasks.errors import PipelineError

LIBRARY_LOGGER = "tasks"  # the plain modules log under tasks.*; Prefect shows these in run logs
# The logger Prefect's logging configuration (prefect/logging/logging.yml) gives the run-log handler
# for PREFECT_LOGGING_EXTRA_LOGGERS. Not a documented API, but that setting is read only when Prefect
# is imported and there is no public call to add a logger later; tests/unit/test_prefect_internals.py
# fails when Prefect renames it or takes its handler away.
EXTRA_LOGGER = "prefect.extra"
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")  # where Prefect reports a failed run


class _ExpectedErrorsWithoutTraceback(logging.Filter):
    """Drops the traceback of a PipelineError from run logs: its message already names the problem.

    Unexpected exceptions keep their tracebacks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            record.exc_info = None
            record.exc_text = None
        return True


_EXPECTED_ERRORS_FILTER = _ExpectedErrorsWithoutTraceback()


def configure_run_logging() -> None:
    """Sends the plain modules' stdlib logs to the run logs, and keeps expected failures to one line.

    Same effect as PREFECT_LOGGING_EXTRA_LOGGERS=tasks, which only works if set before Prefect
    is imported; done at run time so `python -m flows...` and workers behave alike.
    """
    library = logging.getLogger(LIBRARY_LOGGER)
    library.setLevel(logging.INFO)
    for handler in logging.getLogger(EXTRA_LOGGER).handlers:
        if handler not in library.handlers:
            library.addHandler(handler)
    for name in RUN_LOGGERS:
        logging.getLogger(name).addFilter(_EXPECTED_ERRORS_FILTER)  # a no-op when already added


class StageLog:
    """Logs `stage i/N: ...` lines, numbered by position in the flow's list of stage names, and
    times them: a stage lasts until the next one starts (or `timing()` is asked)."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.stages = stages
        self.started = time.time()
        self._marks: list[tuple[str, float]] = [("flow start", self.started)]

    def __call__(self, stage: str, detail: str = "") -> None:
        number = self.stages.index(stage) + 1
        self._marks.append((stage, time.time()))
        get_run_logger().info("stage %d/%d: %s%s", number, len(self.stages), stage, f" ({detail})" if detail else "")

    def timing(self) -> dict:
        """When the flow started and ended (Unix time) and the seconds spent in each stage, a stage
        that ran more than once (once per variant) counted in full."""
        ended = time.time()
        seconds: dict[str, float] = {}
        for (stage, start), (_, end) in zip(self._marks, [*self._marks[1:], ("", ended)], strict=True):
            seconds[stage] = round(seconds.get(stage, 0.0) + end - start, 3)
        return {"flow_started": self.started, "flow_ended": ended, "stage_seconds": seconds}

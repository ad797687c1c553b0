"""What a run returns to its caller: the flow's result, which its command line prints.

It lives apart from the flow's module so that its types resolve however that module is loaded (as
`__main__`, by a deployment's entrypoint, or imported)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tasks.registry.gate import Decision
from tasks.registry.publishing import RunContext
from tasks.reporting.results import RunResults


class RunSummary(BaseModel):
    """What a run returns, and its command line prints: where it was published, what it used and
    found, the champion gate's final decision, and when each stage ran."""

    model_config = ConfigDict(frozen=True)

    run_uri: str
    run: RunContext
    results: RunResults
    decision: Decision
    timing: dict  # as `StageLog.timing` gives it

"""What the `make` targets that start a local service (`make s3`, `make dask`) do once it is up."""

from __future__ import annotations

import subprocess
from collections.abc import Callable


def wait_then_stop(process: subprocess.Popen, stop: Callable[[], None]) -> None:
    """Waits for the service's `process`; Ctrl+C ends the wait; the service is stopped either way."""
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()

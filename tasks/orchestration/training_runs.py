"""A training in a spawned child process, its epochs reaching the parent through a file.

Seeds trained side by side then neither share TensorFlow's global random state nor wait for each
other's Python.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tasks import training
from tasks.training import TrainedVariant, TrainingJob

CHILD_PROGRESS_POLL_SECONDS = 1.0  # how often epochs of a seed trained in a child process reach the UI


def train_in_child_process(job: TrainingJob, scratch: Path, on_epoch: Callable[[dict], None]) -> TrainedVariant:
    """`train_with_restarts(job, scratch)` in a spawned process; each epoch reaches `on_epoch`."""
    scratch.mkdir(parents=True, exist_ok=True)
    progress_file, forwarded = scratch / "progress.jsonl", 0
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(
            training.train_with_restarts, job, scratch, functools.partial(training.append_progress, str(progress_file))
        )
        while True:
            done = future.done()
            lines = progress_file.read_text().splitlines() if progress_file.exists() else []
            for line in lines[forwarded:]:
                on_epoch(json.loads(line))
            forwarded = len(lines)
            if done:
                return future.result()
            time.sleep(CHILD_PROGRESS_POLL_SECONDS)

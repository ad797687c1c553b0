"""The data passes piece by piece: a source's pieces are its files (one's own reviews) or the source
itself (the offline corpus, an imdb.npz), and each pass maps one plain function over them, here in
order, or with a Dask scheduler's address on its workers (which need this checkout on PYTHONPATH, as
for trainings); the results come back in the pieces' order, so both ways give the same data set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from tasks.data.sources import SourceInfo

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def source_pieces(source: SourceInfo) -> list[SourceInfo]:
    """One source per file of one's own reviews, in the order they are read; else the source whole."""
    if source.kind != "reviews" or len(source.files) <= 1:
        return [source]
    return [source.model_copy(update={"files": [file]}) for file in source.files]


def map_pieces(
    work: Callable[..., Result], arguments: Sequence[tuple], dask_address: str | None = None
) -> list[Result]:
    """`work(*each)` for each of `arguments`, in their order: here, or on the Dask cluster at
    `dask_address` (one task a piece, gathered in order; the first failure is raised here)."""
    if dask_address is None or len(arguments) <= 1:
        return [work(*each) for each in arguments]
    from distributed import Client

    with Client(dask_address, set_as_default=False) as client:
        workers = len(client.scheduler_info()["workers"])
        log.info(
            "%s: %d pieces on the Dask cluster at %s (%d workers)", work.__name__, len(arguments), dask_address, workers
        )
        futures = [client.submit(work, *each, pure=False) for each in arguments]
        return client.gather(futures)

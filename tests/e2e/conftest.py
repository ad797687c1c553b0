"""Every test under tests/e2e/ is marked `e2e`, so `-m "not e2e"` selects the unit tests too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import small_run_options, write_imdb_npz, write_word_index

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks of a folder's conftest.py see every collected item, not only the folder's.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def published_champion(prefect_harness, tmp_path_factory) -> Path:
    """A storage root whose champion (one-hot or embedding) was trained on a local mirror with its word index
    beside it, so its run carries a vocabulary: what `make predict` and `make score` use."""
    from flows.imdb_pipeline import main as run_pipeline

    folder = tmp_path_factory.mktemp("champion")
    npz = write_imdb_npz(folder / "imdb.npz")
    write_word_index(folder)
    options = small_run_options(str(npz), folder, "--variants", "onehot,embedding", "--max-epochs", "8")
    assert run_pipeline(options) == 0
    return folder / "store"

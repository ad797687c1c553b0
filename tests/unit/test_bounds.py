"""Size options are checked against a memory estimate before anything is allocated (the command
line's refusals of absurd values are in test_bad_input.py; a fresh process in tests/e2e/test_unattended.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.cli import describe_validation_error
from tasks import config
from tasks.config import MEMORY_SHARE, PipelineConfig, estimate_peak_bytes, machine_memory_bytes, refuse_unless_it_fits
from tasks.errors import DataError
from tasks.training import variants


def sized(seeds: int = 1, variants: tuple[str, ...] = ("onehot",), **data: int) -> dict:
    return {"data": data, "model": {"variants": list(variants)}, "training": {"seeds": seeds}}


def test_the_reference_recipe_needs_a_few_hundred_mib_per_training(monkeypatch):
    monkeypatch.setattr(config.os, "cpu_count", lambda: 2)
    needed, processes, _, _ = estimate_peak_bytes(PipelineConfig())
    assert 50 * 2**20 < needed < 512 * 2**20 and processes == 2  # both variants train at once


def test_the_machine_memory_is_read_and_plausible():
    assert 2**28 < machine_memory_bytes() < 2**50


def test_variants_and_seeds_train_side_by_side_one_process_per_core(monkeypatch):
    monkeypatch.setattr(config.os, "cpu_count", lambda: 2)
    assert [estimate_peak_bytes(PipelineConfig.model_validate(sized(seeds=seeds)))[1] for seeds in (1, 2, 8)] == [
        1,
        2,
        2,
    ]
    both = sized(variants=("onehot", "embedding"))
    assert estimate_peak_bytes(PipelineConfig.model_validate(both))[1] == 2
    monkeypatch.setattr(config.os, "cpu_count", lambda: 8)
    assert estimate_peak_bytes(PipelineConfig.model_validate({**both, "sweep": {"rnn_units": [8, 16]}}))[1] == 4


def test_a_run_that_fits_alone_is_refused_with_two_seeds_on_a_smaller_machine(monkeypatch):
    monkeypatch.setattr(config.os, "cpu_count", lambda: 2)
    one, _, _, _ = estimate_peak_bytes(PipelineConfig.model_validate(sized(maxlen=400)))
    monkeypatch.setattr(config, "machine_memory_bytes", lambda: int(1.5 * one / MEMORY_SHARE))
    PipelineConfig.model_validate(sized(maxlen=400))
    with pytest.raises(ValidationError) as refused:
        PipelineConfig.model_validate(sized(seeds=2, maxlen=400))
    message = describe_validation_error(refused.value)
    assert message.startswith("--seeds: 2 would need about ") and "more than 80% of this machine's" in message
    with pytest.raises(ValidationError) as refused:  # two variants side by side, one seed each
        PipelineConfig.model_validate(sized(variants=("onehot", "embedding"), maxlen=400))
    assert describe_validation_error(refused.value).startswith("--variants: ")


def test_the_option_named_is_the_one_furthest_above_its_default(monkeypatch):
    monkeypatch.setattr(config, "machine_memory_bytes", lambda: 2**30)
    with pytest.raises(ValidationError) as refused:
        PipelineConfig.model_validate({"data": {"num_words": 1000, "maxlen": 4000}})
    assert describe_validation_error(refused.value).startswith("--maxlen: 4000 would need about ")


@pytest.mark.parametrize(
    ("chosen", "larger", "expected"),
    [
        (("onehot",), False, 222_403_328),
        (("onehot",), True, 2_515_941_376),
        (("embedding",), False, 17_731_328),
        (("embedding",), True, 60_389_376),
        (("onehot", "embedding"), False, 222_531_328),
        (("onehot", "embedding"), True, 2_517_989_376),
    ],
)
def test_the_estimate_of_the_registered_variants_stays_what_it_was(chosen, larger, expected):
    # The values before streaming, less the padded splits' 50,000 x maxlen x 2 ids, plus a streamed
    # window of 16,384 x maxlen x 2 ids and 16 values of bookkeeping per review (x 4 bytes).
    sizes = (
        {"data": {"num_words": 2000, "maxlen": 300}, "model": {"rnn_units": 32, "embedding_dim": 64}} if larger else {}
    )
    run = PipelineConfig.model_validate({**sizes, "model": {**sizes.get("model", {}), "variants": list(chosen)}})
    assert estimate_peak_bytes(run)[0] == expected


def test_a_new_variant_is_estimated_from_its_footprint_in_the_registry(monkeypatch):
    monkeypatch.setattr(config, "machine_memory_bytes", lambda: 2**40)
    wide = variants.Variant(
        "wide",
        "d",
        variants.build_embedding,
        footprint=lambda words, maxlen, options: variants.Footprint(weights=words * 10**6),
    )
    variants.register(wide)
    try:
        needed, _, term, fields = estimate_peak_bytes(PipelineConfig.model_validate(sized(variants=("wide",))))
    finally:
        del variants.VARIANTS[wide.name]
    assert term == "weights and optimizer state" and fields[0] == "data.num_words"
    assert needed > 500 * 10**6 * config.WEIGHT_COPIES * config.BYTES_PER_VALUE


def test_the_data_terms_are_a_streamed_window_and_per_review_bookkeeping():
    run = PipelineConfig.model_validate(sized(variants=("embedding",), maxlen=20))
    small, _, _, _ = estimate_peak_bytes(run, rows=1)
    large, _, term, fields = estimate_peak_bytes(run, rows=10**9)
    assert large - small == (10**9 - 1) * config.REVIEW_BOOKKEEPING_VALUES * config.BYTES_PER_VALUE
    assert term == "per-review bookkeeping" and fields == config.DATA_FIELDS
    wide = PipelineConfig.model_validate(sized(variants=("embedding",), maxlen=4000))
    assert estimate_peak_bytes(wide, rows=1)[2] == "a streamed window of padded ids"


def test_a_row_count_beyond_the_machine_is_refused_in_one_line():
    run = PipelineConfig()
    available = machine_memory_bytes()
    # so many reviews that their bookkeeping alone exceeds the whole machine
    rows = int(available // (config.REVIEW_BOOKKEEPING_VALUES * config.BYTES_PER_VALUE)) + 1
    refuse_unless_it_fits(run, 25_000)
    with pytest.raises(DataError) as refused:
        refuse_unless_it_fits(run, rows)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{rows:,} reviews would need about ")
    assert "(per-review bookkeeping)" in message and "more than 80% of this machine's" in message

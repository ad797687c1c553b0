"""Cached stage results are JSON that decodes only into this project's own types, and the result
storage refuses a record another serializer (pickle) wrote before Prefect decodes it."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
from prefect.serializers import PickleSerializer

from tasks.data.own_reviews import Ingest
from tasks.runtime.cached_results import (
    FIELDS_KEY,
    TYPE_KEY,
    CheckedLocalFileSystem,
    ForeignResultError,
    ProjectJSONSerializer,
    checked_record,
)
from tasks.training.baseline import BaselineResult
from tasks.training.evaluation import ClassificationMetrics

METRICS = ClassificationMetrics(
    loss=0.5, accuracy=0.75, roc_auc=None, confusion_matrix=[[1, 0], [1, 2]], majority_rate=0.5, examples=4
)


def test_models_dataclasses_and_plain_values_come_back_as_they_were():
    baseline = BaselineResult(description="bag of words", parameters=51, fit_seconds=0.1, val=METRICS, test=METRICS)
    value = {"baseline": baseline, "ingest": Ingest(rows_read=3, distinct=2, conflicting_labels=0), "n": [1, 2.5]}
    serializer = ProjectJSONSerializer()
    assert serializer.loads(serializer.dumps(value)) == value
    assert serializer.loads(serializer.dumps(None)) is None


@pytest.mark.parametrize("value", [np.arange(3), {1: "a"}, {TYPE_KEY: "x"}, {1, 2}, object()])
def test_what_json_cannot_hold_as_itself_is_refused_when_written(value):
    with pytest.raises(TypeError, match="cannot be kept as JSON"):
        ProjectJSONSerializer().dumps(value)


@pytest.mark.parametrize(
    "name",
    [
        "os:system",  # not this project's
        "builtins:eval",
        "tasks.runtime.cached_results:json",  # a module, not a class
        "tasks.runtime.cached_results:BaseModel",  # pydantic's, imported into a project module
        "tasks.errors:PipelineError",  # the project's, but not a result type
        "tasks.nothing_here:Result",
        "tasks.training.baseline:BaselineResult.__init__",
    ],
)
def test_a_record_naming_any_other_class_is_refused_when_read(name):
    blob = json.dumps({TYPE_KEY: name, FIELDS_KEY: {}}).encode()
    with pytest.raises(ForeignResultError, match="names"):
        ProjectJSONSerializer().loads(blob)


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickle ran code')",))


def test_a_pickle_record_is_refused_before_prefect_decodes_it(tmp_path):
    tampered = ResultRecord(
        metadata=ResultRecordMetadata(serializer=PickleSerializer(picklelib="pickle"), storage_key="k"),
        result=_RunsCodeWhenUnpickled(),
    ).serialize()
    (tmp_path / "k").write_bytes(tampered)
    with pytest.raises(ForeignResultError, match="not written by 'imdb-json'"):
        CheckedLocalFileSystem(basepath=str(tmp_path)).read_path("k")
    with pytest.raises(SystemExit, match="pickle ran code"):  # what Prefect would have done with it
        ResultRecord.deserialize(tampered)
    with pytest.raises(ForeignResultError):
        checked_record("k", pickle.dumps({"metadata": None}))


def test_a_record_of_this_project_reads_back_through_the_checked_storage(tmp_path):
    record = ResultRecord(
        metadata=ResultRecordMetadata(serializer=ProjectJSONSerializer(), storage_key="k"), result=METRICS
    )
    (tmp_path / "k").write_bytes(record.serialize())
    content = CheckedLocalFileSystem(basepath=str(tmp_path)).read_path("k")
    assert ResultRecord.deserialize(content).result == METRICS

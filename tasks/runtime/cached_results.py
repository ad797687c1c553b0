"""Cached stage results kept as JSON that can only become this project's own types.

Prefect keeps a cached result as a record that names the serializer that wrote it, and reads it
back with that serializer: with its default, pickle, anyone who can write under
`<storage>/cache/prefect` would run code in the next run that looks the result up. Here results
are written by `ProjectJSONSerializer`, which decodes nothing but plain JSON values and this
project's own pydantic models and dataclasses (classes defined under `tasks.`), and the result
storage refuses a record any other serializer wrote before Prefect decodes it. Prefect takes a
record it cannot read for a missing one: the stage runs again and writes a good record.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import re
from typing import Any, Literal, cast

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.serializers import Serializer
from pydantic import BaseModel

log = logging.getLogger(__name__)

SERIALIZER_TYPE = "imdb-json"
# An encoded model or dataclass is {TYPE_KEY: "module:Class", FIELDS_KEY: {...}}; a plain dict
# holding TYPE_KEY is refused when written, so that no value is read back as another.
TYPE_KEY = "__imdb_type__"
FIELDS_KEY = "fields"
# The only classes a record may name: defined in a module of this project's `tasks` package.
PROJECT_TYPE = re.compile(r"(?P<module>tasks(?:\.[a-z_][a-z0-9_]*)+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


class ForeignResultError(ValueError):
    """A cached record this project did not write, or one naming a type it does not own."""


def encode_result(value: Any) -> Any:
    """`value` as plain JSON values; this project's models and dataclasses tagged with their class.
    Raises TypeError for anything else (a numpy array, a set, another library's object)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [encode_result(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value) or TYPE_KEY in value:
            raise TypeError(f"a dict with non-text keys or a {TYPE_KEY!r} key cannot be kept as JSON")
        return {key: encode_result(item) for key, item in value.items()}
    kind = type(value)
    name = f"{kind.__module__}:{kind.__qualname__}"
    if PROJECT_TYPE.fullmatch(name) and isinstance(value, BaseModel):
        return {TYPE_KEY: name, FIELDS_KEY: value.model_dump(mode="json")}
    if PROJECT_TYPE.fullmatch(name) and dataclasses.is_dataclass(value):
        fields = {field.name: encode_result(getattr(value, field.name)) for field in dataclasses.fields(value)}
        return {TYPE_KEY: name, FIELDS_KEY: fields}
    raise TypeError(f"a {kind.__module__}.{kind.__qualname__} cannot be kept as JSON")


def decode_result(value: Any) -> Any:
    """The inverse of `encode_result`; raises ForeignResultError for a tag naming any class that is
    not a pydantic model or dataclass defined under `tasks.`."""
    if isinstance(value, list):
        return [decode_result(item) for item in value]
    if not isinstance(value, dict):
        return value
    if TYPE_KEY not in value:
        return {key: decode_result(item) for key, item in value.items()}
    kind = _project_type(value[TYPE_KEY])
    fields = value.get(FIELDS_KEY)
    if not isinstance(fields, dict):
        raise ForeignResultError(f"a cached {value[TYPE_KEY]} without its fields")
    if issubclass(kind, BaseModel):
        return kind.model_validate(fields)
    return kind(**{key: decode_result(item) for key, item in fields.items()})


def _project_type(name: Any) -> type:
    """The class `module:Class` names, only when it is one of this project's models or dataclasses."""
    found = PROJECT_TYPE.fullmatch(name) if isinstance(name, str) else None
    if found is None:
        raise ForeignResultError(f"a cached result names {name!r}, not a class of this project's tasks package")
    try:
        kind = getattr(importlib.import_module(found["module"]), found["name"], None)
    except ImportError:
        kind = None
    refused = ForeignResultError(f"a cached result names {name!r}, which is not a result type of this project")
    if not isinstance(kind, type) or kind.__module__ != found["module"]:  # not imported into it from elsewhere
        raise refused
    if not (issubclass(kind, BaseModel) or dataclasses.is_dataclass(kind)):
        raise refused
    return kind


class ProjectJSONSerializer(Serializer):
    """Prefect's serializer of the cached stages: `encode_result` as JSON, read by `decode_result`."""

    type: Literal["imdb-json"] = "imdb-json"  # SERIALIZER_TYPE, spelled out for the type checker

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(encode_result(obj)).encode()

    def loads(self, blob: bytes) -> Any:
        return decode_result(json.loads(blob))


def checked_record(path: str, content: bytes) -> bytes:
    """`content`, a result record read from `path`, as Prefect will parse it, once it is known to be
    written by ProjectJSONSerializer; raises ForeignResultError otherwise (Prefect then runs the
    stage again). The record is returned re-encoded from what was checked, so that no second
    reading of the same bytes (a repeated key, say) can name another serializer."""
    try:
        record = json.loads(content)
        written_by = record["metadata"]["serializer"]["type"]
    except (ValueError, KeyError, TypeError):
        record, written_by = None, None
    if written_by != SERIALIZER_TYPE:
        log.warning("refused the cached result %s: written by %r, not %r", path, written_by, SERIALIZER_TYPE)
        raise ForeignResultError(f"cached result {path} was not written by {SERIALIZER_TYPE!r}: refused")
    return json.dumps(record).encode()


class CheckedLocalFileSystem(LocalFileSystem):
    """Prefect's local result storage, reading back only records written by ProjectJSONSerializer."""

    # A name of its own: under the parent's, Prefect would take it for its own block type.
    _block_type_name = "IMDB Checked Local File System"

    async def aread_path(self, path: str) -> bytes:
        return checked_record(path, await super().aread_path(path))

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        return checked_record(path, cast(bytes, super().read_path(path, _sync=True)))  # type: ignore[call-arg]


class CheckedRemoteFileSystem(RemoteFileSystem):
    """Prefect's fsspec result storage (S3), reading back only records written by ProjectJSONSerializer."""

    _block_type_name = "IMDB Checked Remote File System"

    async def aread_path(self, path: str) -> bytes:
        return checked_record(path, await super().aread_path(path))

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        return checked_record(path, cast(bytes, super().read_path(path, _sync=True)))  # type: ignore[call-arg]

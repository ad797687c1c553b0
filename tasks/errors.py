"""Errors the pipeline expects and reports as one line (the CLI prints `error: <message>`)."""


class PipelineError(Exception):
    """A failure with a message that names the problem; no traceback is needed to act on it."""


class SourceError(PipelineError):
    """The data source cannot be read, or is not what it claims to be."""


class SourceUnreachable(SourceError):
    """The network or host behind a source URI cannot be reached (worth a retry or a fallback)."""


class ChecksumMismatch(SourceError):
    """A downloaded or cached file does not have the expected sha256."""


class DataError(PipelineError):
    """Reviews or stored splits are malformed (missing keys, bad ids or labels, wrong schema)."""


class ReviewFileError(DataError):
    """A file of one's own labelled reviews is malformed (a missing column, a bad label, nulls...)."""


class StorageError(PipelineError):
    """The storage root cannot be written or read."""


class ObjectExists(StorageError):
    """A create-only write found the object already there."""


class WriteConflict(StorageError):
    """A conditional write found the object changed since it was read (another writer won)."""


class TrainingTimedOut(PipelineError):
    """A variant's training took longer than its timeout and was stopped."""

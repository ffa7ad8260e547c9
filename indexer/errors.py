"""The project's exception family: user-caused problems, each with a message that says what to do.

The CLI turns any `IndexerError` into one stderr line and exit code 2; the app into a readable
message. Anything else escaping is a bug and keeps its traceback.
"""


class IndexerError(Exception):
    """Base class for errors caused by input, configuration or index state, not by bugs."""


class SourceError(IndexerError):
    """The source document is missing, unreadable, too large, or has no recognisable entries."""


class QueryError(IndexerError):
    """A query (or a query file) cannot be used."""


class IndexMissingError(IndexerError):
    """There is no index where one was expected."""


class IndexCorruptError(IndexerError):
    """An index file is missing, truncated or fails its checksum."""


class IndexStaleError(IndexerError):
    """The index was built from another source, model or format than the one asked for."""


class ModelError(IndexerError):
    """The embedding model cannot be loaded."""


class IndexVersionError(IndexerError):
    """The index was written by a newer version of this tool; it is refused, never overwritten silently."""

"""The one error a dataset source raises: a sentence naming the key at fault."""

from __future__ import annotations

from aegis.errors import AegisError


class DataSourceError(AegisError):
    """A source that cannot become a cache entry (unreachable, 404, wrong checksum, not
    the layout its kind needs, a full disk). ``explained``: a run records the sentence and
    exits 1 without a traceback; the cache keeps nothing of the attempt."""

    explained = True

"""Exceptions raised by tunekit."""

__all__ = [
    "DivergedError",
    "InputShapeError",
    "LayoutError",
    "MemoryBudgetError",
    "ReportError",
    "SearchFailedError",
    "StorageError",
    "TunekitError",
]


class TunekitError(Exception):
    """Base class of tunekit's own errors."""


class DivergedError(TunekitError, FloatingPointError):
    """Training produced a NaN or infinite loss; the fit was stopped."""


class InputShapeError(TunekitError, ValueError):
    """The shape of ``X`` does not match the model's declared input shape."""


class SearchFailedError(TunekitError, RuntimeError):
    """Every candidate of a search failed; the first traceback is attached."""


class ReportError(TunekitError, ValueError):
    """A report cannot be built from what was given.

    The message states the rule that was broken, the offending value and the
    fix. Messages never contain a storage password: URLs are passed through
    :func:`tunekit.report.redact_url` first.
    """


class StorageError(TunekitError, RuntimeError):
    """The Optuna storage was lost while a study ran (server stopped, network cut).

    Finished trials are safe in the storage; the trial that was running is
    failed and retried by the next worker once its heartbeat is stale. The
    message never shows the URL's password.
    """


class LayoutError(TunekitError, RuntimeError):
    """A study's stored layout is newer than this tunekit reads or writes.

    The message names the study's layout version and the versions this
    tunekit handles; upgrading tunekit is the fix. See ``docs/studies.md``,
    "Stored layout versions".
    """


class MemoryBudgetError(TunekitError, ValueError):
    """Not even one member of a stack fits the stacked engine's memory budget.

    Raised before any training; the message names the member's estimated size,
    the budget and where the budget comes from. Raise ``memory_budget`` (see
    ``docs/performance.md``, "Memory budget"), or use ``engine="sklearn"``.
    """

"""The error type raised by :mod:`tunekit.report`."""

from tunekit.exceptions import TunekitError

__all__ = ["ReportError"]


class ReportError(TunekitError, ValueError):
    """A report cannot be built from what was given.

    The message states the rule that was broken, the offending value and the
    fix. Messages never contain a storage password: URLs are passed through
    :func:`tunekit.report.redact_url` first.
    """

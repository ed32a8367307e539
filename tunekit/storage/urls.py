"""Masking passwords in storage URLs before they reach a message."""

import re
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = ["check_sqlite_file", "redact_url", "scrub"]

_MASK = "***"
# scheme://user:password@host  (password may hold any character but '@' and '/')
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@/\s]*)(?=@)")
# ?password=...&  or  ;password=...  (libpq style query arguments)
_QUERY_PW = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pwd)=)(?P<pw>[^&;\s]*)")


def redact_url(url: str) -> str:
    """Return ``url`` with its password masked as ``***``.

    Parameters
    ----------
    url : str
        A storage URL such as ``postgresql://user:secret@host/db`` or
        ``sqlite:///study.db``, or a plain path (returned unchanged).

    Returns
    -------
    redacted : str
        The same URL with the password (in the user-info part and in
        ``password=`` query arguments) replaced by ``***``.

    Examples
    --------
    >>> from tunekit.storage.urls import redact_url
    >>> redact_url("postgresql://tuner:s3cret@db.example:5432/studies")
    'postgresql://tuner:***@db.example:5432/studies'
    >>> redact_url("sqlite:///results/study.db")
    'sqlite:///results/study.db'
    """
    text = str(url)
    if "://" not in text:
        return text
    if not _passwords(text):
        return text  # nothing to hide: keep the URL exactly as given
    try:
        from sqlalchemy.engine import make_url

        rendered = make_url(text).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: fall back to a pattern
        rendered = text
    rendered = _USERINFO.sub(lambda m: m.group("head") + _MASK, rendered)
    return _QUERY_PW.sub(lambda m: m.group("head") + _MASK, rendered)


def _passwords(url: str) -> set[str]:
    """Every spelling of the password(s) found in ``url`` (raw, decoded, quoted)."""
    found = set()
    for pattern in (_USERINFO, _QUERY_PW):
        for match in pattern.finditer(str(url)):
            pw = match.group("pw")
            if pw and pw != _MASK:
                found.update({pw, unquote(pw), quote(unquote(pw), safe="")})
    try:
        from sqlalchemy.engine import make_url

        pw = make_url(str(url)).password
        if pw:
            found.update({str(pw), quote(str(pw), safe="")})
    except Exception:
        pass
    return {p for p in found if p}


def scrub(text: str, url: str | None) -> str:
    """Remove ``url``'s password from an arbitrary message (e.g. a driver error).

    Parameters
    ----------
    text : str
        The message to clean.
    url : str or None
        The URL whose password must not appear in ``text``.

    Returns
    -------
    clean : str
        ``text`` with the raw URL replaced by its redacted form and every
        remaining spelling of the password replaced by ``***``.
    """
    text = str(text)
    if not url:
        return text
    text = text.replace(str(url), redact_url(url))
    for pw in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(pw, _MASK)
    return text


def check_sqlite_file(url: str, *, allow_memory: bool = True) -> None:
    """Refuse a SQLite URL whose database file does not exist (opening it would create one).

    Parameters
    ----------
    url : str
        A storage URL; non-SQLite URLs pass unchecked.
    allow_memory : bool, default=True
        Whether an in-memory or path-less SQLite URL passes.

    Raises
    ------
    ValueError
        For a malformed URL or a missing file, with the path and how it is read.
    """
    if not url.startswith("sqlite"):
        return
    shown = redact_url(url)
    try:
        from sqlalchemy.engine import make_url

        database = make_url(url).database
    except Exception as exc:
        raise ValueError(
            f"not a valid storage URL: {shown} ({scrub(str(exc), url)}); "
            "expected e.g. sqlite:///results/tune/study.db"
        ) from None
    if (not database or database == ":memory:") and allow_memory:
        return
    if not database or database == ":memory:" or not Path(database).is_file():
        raise ValueError(
            f"no SQLite database at {database!r} (from {shown}); check the path. "
            "sqlite:///relative.db is relative to the working directory, "
            "sqlite:////abs/path.db is absolute"
        )


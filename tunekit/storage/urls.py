"""Storage URLs: passwords masked in messages, SQLite files and paths, database drivers.

A leaf: it imports nothing from tunekit, so that every layer (report, the
command line, the dashboard) can name a storage without opening one.
"""

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = [
    "DEFAULT_RESULTS_DIR",
    "SQLITE_SUFFIXES",
    "check_sqlite_file",
    "default_storage_url",
    "describe_error",
    "redact_url",
    "resolve_url",
    "scrub",
    "sqlite_file",
    "sqlite_url",
    "storage_label",
]

#: Where ``storage=None`` with a study name keeps the study: ``<dir>/<study_name>.db``.
DEFAULT_RESULTS_DIR = "tunekit-results"
#: File suffixes taken for SQLite study databases in a result directory.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")

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


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for other URLs and in-memory databases."""
    if not str(url).startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return None if not database or database == ":memory:" else Path(database)


def sqlite_url(path: str | os.PathLike, *, absolute: bool = False) -> str:
    """The SQLite URL of a database file (``absolute``: of its resolved path).

    Examples
    --------
    >>> from tunekit.storage.urls import sqlite_url
    >>> sqlite_url("results/tune/study.db")
    'sqlite:///results/tune/study.db'
    """
    path = Path(path).resolve() if absolute else Path(path)
    return f"sqlite:///{path.as_posix()}"


def default_storage_url(study_name: str, directory: str | os.PathLike | None = None) -> str:
    """The embedded SQLite URL used when ``storage=None`` and a study name is given.

    The study is kept in ``<directory>/<study_name>.db`` (``tunekit-results/``
    by default); the folder is created.
    """
    folder = Path(directory or DEFAULT_RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return sqlite_url(folder / f"{study_name}.db")


def resolve_url(url: str) -> str:
    """Give a driver-less PostgreSQL URL the driver that is installed.

    Parameters
    ----------
    url : str
        A storage URL.

    Returns
    -------
    url : str
        ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``
        when psycopg 3 is importable, else ``postgresql+psycopg2://`` when
        psycopg2 is; every other URL is returned unchanged. SQLAlchemy 2.1
        maps a bare ``postgresql://`` to psycopg 3 only, so a psycopg2-only
        environment would otherwise fail with "Failed to import DB access module".

    Examples
    --------
    >>> from tunekit.storage.urls import resolve_url
    >>> resolve_url("sqlite:///study.db")
    'sqlite:///study.db'
    """
    scheme, sep, rest = str(url).partition("://")
    if not sep or scheme.lower() not in {"postgresql", "postgres"}:
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return f"postgresql://{rest}"


def describe_error(err: BaseException, url: str | None = None) -> str:
    """One line for a storage error and its root cause, without ``url``'s password.

    Optuna and SQLAlchemy wrap driver errors; the root cause (``could not
    connect``, ``no such table``...) is what a person can act on.
    """
    root, seen = err, {id(err)}
    while True:
        nxt = root.__cause__ or root.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        root = nxt
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = f"{type(err).__name__}: {first.rstrip('. ')}."
    if root is not err:
        cause = str(root).strip().splitlines()[0] if str(root).strip() else ""
        text += f" Caused by {type(root).__name__}: {cause.rstrip('. ')}."
    return scrub(text, url)


def storage_label(storage) -> str:
    """How ``storage`` is named in messages: its URL without the password."""
    if storage is None:
        return "memory"
    if isinstance(storage, (str, os.PathLike)):
        return redact_url(os.fspath(storage))
    url = getattr(storage, "url", None)
    return redact_url(url) if isinstance(url, str) else type(storage).__name__

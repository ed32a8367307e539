"""Atomic file writes: a temporary file in the target's directory, then os.replace."""

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one.

    Parameters
    ----------
    path : str or path-like
        Destination; its parent directory is created when missing.
    data : bytes
        The full content.

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; match a plain open()
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError):  # a full disk, a lost mount: name the file
            raise _write_error(path, err) from err
        raise
    return path


def _write_error(path: Path, err: OSError) -> OSError:
    """``err`` restated with the file it was writing; same class and errno."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    code = f" ({errno.errorcode.get(err.errno, err.errno)})" if err.errno else ""
    return type(err)(
        err.errno,
        f"cannot write {path}: {reason}{code}; the file is left as it was (nothing "
        "half-written). Free space or fix the permissions of its directory, or write "
        "elsewhere",
    )


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))

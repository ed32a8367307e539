"""The study's stored layout version: read, checked before reading or resuming, stamped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunekit._version import __version__
from tunekit.exceptions import LayoutError
from tunekit.record.keys import (
    LAYOUT_ATTR,
    LAYOUT_VERSION,
    MIN_READER,
)


@dataclass(frozen=True)
class StoredLayout:
    version: int
    min_reader: int
    written_by: str | None


def stored_layout(study: Any) -> StoredLayout:
    """The layout a study was written in; layout 1 for a study from before versions."""
    raw = dict(getattr(study, "user_attrs", {}) or {}).get(LAYOUT_ATTR)
    if raw is None:
        return StoredLayout(1, 1, None)
    try:
        version, min_reader = int(raw["version"]), int(raw["min_reader"])
    except (TypeError, KeyError, ValueError):
        raise LayoutError(
            f"study {_study_name(study)!r} has an unreadable {LAYOUT_ATTR!r} attribute "
            f"({raw!r}); expected {{'version': int, 'min_reader': int}}"
        ) from None
    return StoredLayout(version, min_reader, raw.get("written_by"))


def _study_name(study: Any) -> str:
    return getattr(study, "study_name", "?")


def _written_by(layout: StoredLayout) -> str:
    return f" by tunekit {layout.written_by}" if layout.written_by else ""


def check_readable(study: Any) -> StoredLayout:
    """Refuse a study whose stored layout this tunekit would misread."""
    layout = stored_layout(study)
    if layout.min_reader > LAYOUT_VERSION:
        raise LayoutError(
            f"study {_study_name(study)!r} was written{_written_by(layout)} in stored layout "
            f"version {layout.version}, which needs a reader of layout {layout.min_reader} or "
            f"newer; this tunekit {__version__} reads layouts 1 to {LAYOUT_VERSION}. Upgrade "
            "tunekit to read it."
        )
    return layout


def check_resumable(study: Any) -> StoredLayout:
    """Refuse to add trials to a study whose stored layout is newer than this tunekit's."""
    layout = check_readable(study)
    if layout.version > LAYOUT_VERSION:
        raise LayoutError(
            f"study {_study_name(study)!r} holds trials{_written_by(layout)} in stored layout "
            f"version {layout.version}; this tunekit {__version__} writes layout "
            f"{LAYOUT_VERSION}, so it may report on the study but not add trials to it. "
            "Upgrade tunekit to resume it."
        )
    return layout


def stamp_layout(study: Any) -> None:
    """Before trials are written: refuse a newer study, record this tunekit's layout.

    A study of an older layout that this tunekit reads is taken over: its
    attribute says the newest layout among its trials, and the oldest reader
    that still reads them all.
    """
    layout = check_resumable(study)
    stamp = {
        "version": LAYOUT_VERSION,
        "min_reader": max(layout.min_reader, MIN_READER),
        "written_by": __version__,
    }
    if study.user_attrs.get(LAYOUT_ATTR) != stamp:
        study.set_user_attr(LAYOUT_ATTR, stamp)

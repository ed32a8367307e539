"""What the ``tunekit`` command and the study scripts share: logging, messages, flag types."""

from __future__ import annotations

import argparse
import logging
import sys

from tunekit.storage.urls import scrub

PROG = "tunekit"


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Log to stderr: warnings only with ``quiet``, everything with ``verbose``."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for name in ("tunekit", "tunekit.report"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes and the like


def clean_error(err: BaseException, url: str | None) -> str:
    """An error's text for the user: never the password of ``url``."""
    text = str(err) or type(err).__name__
    return scrub(text, url) if url else text


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """``argparse`` type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value

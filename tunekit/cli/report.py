"""``tunekit report SOURCE``: render a stored study or a result directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunekit import report as reports
from tunekit.cli._common import PROG, clean_error
from tunekit.exceptions import LayoutError
from tunekit.launch import EXIT_FAILURE, EXIT_OK
from tunekit.storage.urls import redact_url

__all__ = ["report"]


def report(args: argparse.Namespace) -> int:
    """Run ``tunekit report`` with its parsed arguments; return the exit code."""
    source = args.source
    try:
        obj = reports.load(source, study=args.study)
        if args.out is None:
            text = reports.render(obj, args.format or "md")
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return EXIT_OK
        out = Path(args.out)
        if out.is_dir() or (not out.suffix and args.format is None):
            written = reports.write_report(obj, out)
            print("\n".join(str(p) for p in written.values()))
        else:
            print(reports.write(obj, out, format=args.format))
    except (reports.ReportError, LayoutError) as err:
        print(f"{PROG} report: error: {clean_error(err, source)}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(
            f"{PROG} report: error: cannot write {args.out!r} for {redact_url(source)}: "
            f"{clean_error(err, source)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK

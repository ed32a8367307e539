"""``tunekit dashboard SOURCE``: watch a study live in Optuna Dashboard."""

from __future__ import annotations

import argparse
import sys

from tunekit import dashboard as dashboards
from tunekit.cli._common import PROG, clean_error
from tunekit.launch import EXIT_FAILURE, EXIT_OK

__all__ = ["dashboard"]


def dashboard(args: argparse.Namespace) -> int:
    """Run ``tunekit dashboard`` with its parsed arguments; return the exit code."""
    try:
        dashboards.serve(
            args.source,
            host=args.host,
            port=args.port,
            announce=lambda line: print(line, flush=True),
        )
    except (ImportError, dashboards.DashboardError) as err:
        print(f"{PROG} dashboard: error: {clean_error(err, args.source)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK

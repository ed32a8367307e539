"""Nested cross-validation's outer folds, read from a result and said in one line."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from tunekit.record import jsonable

__all__ = ["NESTED_KEYS", "nested_rows", "nested_summary"]

#: Each outer fold's row: what the inner search chose, and how it did outside it.
NESTED_KEYS = (
    "outer_fold", "n_train", "n_test", "params", "inner_best_score", "outer_score",
    "optimism", "failure_reason",
)  # fmt: skip


def nested_rows(value: Any) -> list[dict] | None:
    """The outer folds as plain JSON-able dicts, from a DataFrame or a list (or ``None``)."""
    if value is None:
        return None
    if hasattr(value, "reset_index"):  # a result's nested_ DataFrame, indexed by outer fold
        value = value.reset_index().to_dict("records")
    rows = [{key: jsonable(row.get(key)) for key in NESTED_KEYS} for row in value]
    return rows or None


def _mean_se(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()), math.nan
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def _score(row: dict, key: str) -> float:
    value = row.get(key)
    return math.nan if value is None else float(value)


def nested_summary(rows: list[dict] | None) -> str | None:
    """One line: the procedure's estimate, the selection's optimism, the choices' stability."""
    if not rows:
        return None
    done = [r for r in rows if math.isfinite(_score(r, "outer_score"))]
    failed = [r for r in rows if r not in done]
    if not done:
        return f"nested CV: every one of the {len(rows)} outer folds failed"
    outer_mean, outer_se = _mean_se([_score(r, "outer_score") for r in done])
    inner_mean = float(np.mean([_score(r, "inner_best_score") for r in done]))
    se = f" ± {outer_se:.4f}" if math.isfinite(outer_se) else ""
    choices = Counter(
        ", ".join(f"{k}={v}" for k, v in sorted((r.get("params") or {}).items())) for r in done
    )
    stable = "; ".join(f"{{{c}}} in {n}" for c, n in choices.most_common(3))
    more = f" and {len(choices) - 3} more" if len(choices) > 3 else ""
    text = (
        f"nested CV over {len(rows)} outer folds: {outer_mean:.4f}{se} (mean ± SE of the outer "
        f"scores: the estimate of tuning, then fitting); the inner searches' best CV scores "
        f"averaged {inner_mean:.4f}, so choosing by CV was optimistic by "
        f"{inner_mean - outer_mean:+.4f}; chosen: {stable}{more}"
    )
    if failed:
        reasons = "; ".join(
            f"fold {r.get('outer_fold')}: {r.get('failure_reason') or '?'}" for r in failed
        )
        text += f"; {len(failed)} outer fold(s) failed ({reasons})"
    return text

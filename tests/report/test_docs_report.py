"""docs/report.md: every ```python block runs, in order, in a fresh directory."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks():
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_python_examples():
    assert len(_blocks()) >= 5


def test_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for number, code in enumerate(_blocks(), start=1):
        try:
            exec(compile(code, f"{DOC.name}[python block {number}]", "exec"), namespace)
        except Exception as exc:  # name the block in the failure
            pytest.fail(f"python block {number} of {DOC.name} failed: {exc!r}")
    for name in (
        "leaderboard.md",
        "leaderboard.html",
        "param_scores.png",
        "report/index.md",
        "study-report/leaderboard.html",
    ):
        assert (tmp_path / name).is_file(), name

"""Every python example in the guides runs."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = ["estimators.md", "builders.md", "spaces.md", "search.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_examples_run(guide, tmp_path, monkeypatch):
    blocks = python_blocks(DOCS / guide)
    assert blocks, f"{guide} has no python examples"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, f"{guide}", "exec"), {"__name__": "__docs__"})

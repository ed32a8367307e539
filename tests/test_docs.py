"""Every python example in the guides runs."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = ["estimators.md", "builders.md", "spaces.md", "search.md"]

# Examples that train many Keras models (about 15 s each on 2 cores) run with -m slow, each
# named by a line of its own, with the default test of the same behaviour.
SLOW_BLOCKS = {
    "search.md": {
        # three strategies on Keras: tests/test_search.py::test_every_strategy_end_to_end_on_keras
        "print(tk.report.compare(random, halving, study))",
        # scikit-learn's own searches over a Keras pipeline, through the space's translations:
        # tests/test_estimators.py::test_gridsearch_over_a_pipeline, tests/test_space.py
        'grid = GridSearchCV(pipe, space.to_grid(n=2), cv=3, scoring="roc_auc").fit(X, y)',
        # a grid over a Keras pipeline through a prefixed space (12 fits and 3 refits):
        # tests/test_search.py::test_pipeline_space_with_prefix
        'result = tk.search(pipe, X, y, space=space, strategy="grid", n_points=2, cv=3, verbose=0)',
        # an ensemble of Keras candidates on all 569 rows: tests/test_ensemble.py (its search
        # and its report), tests/test_refits.py (the members of an engine search trained together)
        "print(result.ensemble_weights_)",
    },
}


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _is_slow(guide: str, block: str) -> bool:
    return any(line in block for line in SLOW_BLOCKS.get(guide, ()))


def _run(guide, blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, f"{guide}", "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_examples_run(guide, tmp_path, monkeypatch):
    blocks = python_blocks(DOCS / guide)
    assert blocks, f"{guide} has no python examples"
    for line in SLOW_BLOCKS.get(guide, ()):
        assert sum(line in block for block in blocks) == 1, f"{guide}: no one example has {line}"
    _run(guide, [b for b in blocks if not _is_slow(guide, b)], tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("guide", sorted(SLOW_BLOCKS))
def test_guide_examples_that_train_many_models_run(guide, tmp_path, monkeypatch):
    blocks = [b for b in python_blocks(DOCS / guide) if _is_slow(guide, b)]
    assert len(blocks) == len(SLOW_BLOCKS[guide])
    _run(guide, blocks, tmp_path, monkeypatch)

"""docs/notebooks/lecture.ipynb runs from top to bottom (with its tiny settings)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "lecture.ipynb"


def _quick(nb):
    """The notebook with ``QUICK = True``, its one switch for tiny settings."""
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.startswith("QUICK = False"), "the first code cell must set QUICK"
    first.source = first.source.replace("QUICK = False", "QUICK = True", 1)
    return nb


@pytest.mark.slow  # about 25 s on 2 cores: the whole lecture notebook
def test_lecture_notebook_runs_without_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # the notebook's own setting
    nb = _quick(nbformat.read(NOTEBOOK, as_version=4))
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    errors = [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    assert not errors
    html = [
        o["data"]["text/html"]
        for outs in outputs.values()
        for o in outs
        if o.get("output_type") == "execute_result" and "text/html" in o.get("data", {})
    ]
    # the search result shows its summary, baselines and leaderboard as HTML
    assert any("tunekit-result" in h and "baseline: logistic" in h for h in html)
    text = "".join(
        o.get("text", "") for outs in outputs.values() for o in outs if o.get("name") == "stdout"
    )
    assert "Step 1 is done" in text or "cannot overfit" in text  # the overfit check's verdict

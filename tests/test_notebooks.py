"""Every notebook in notebooks/ runs top to bottom in quick mode (TSB_NB_QUICK=1) and shows its plots.

The notebooks are executed from a temporary copy, so the committed outputs (from a full-settings run) are
never overwritten. One test case per notebook: each starts its own kernel anyway, and `make test`'s two workers
run two of them at once.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_quickstart", "02_convert_pretrained", "03_drift_over_time", "04_accuracy_vs_verified_fraction",
            "05_frontier"]


def _images(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "image/png" in o.get("data", {}))


def test_the_notebooks_exist_with_committed_outputs():
    import nbformat

    assert [p.stem for p in NOTEBOOKS] == EXPECTED
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert _images(nb) >= 1, f"{path.name} is committed without its plot outputs; execute it with full settings"
        assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                    if o.get("output_type") == "error"], f"{path.name} is committed with an error output"
        params = next(c for c in nb.cells if c.cell_type == "code")
        assert "TSB_NB_QUICK" in params.source, f"{path.name}: the first code cell must read TSB_NB_QUICK"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One case per notebook, so that `make test`'s workers run them side by side."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("TSB_NB_QUICK", "1")  # the kernel inherits the environment
    monkeypatch.setenv("TSB_NB_THREADS", "1")
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:  # start from a clean notebook: an image must come from this run
        if cell.cell_type == "code":
            cell.outputs = []
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name}: {str(exc)[-1500:]}")
    assert _images(nb) >= 1, f"{path.name}: ran but produced no image output"

"""The quick-start notebook runs headless from top to bottom (a handful of steps, on the CPU)."""
import os

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "projects", "neus", "notebooks", "quickstart.ipynb")


def test_quickstart_notebook_runs(monkeypatch):
    monkeypatch.setenv("JNERF_QUICKSTART_STEPS", "20")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "step 20: loss" in printed and " faces" in printed
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))

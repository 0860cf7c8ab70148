"""The docs build with warnings as errors, and the notebook tutorial runs end to end on a tiny budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sphinx_build_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("sphinx", reason='install the docs extra: pip install -e ".[docs]"')
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"),
         str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "html" / "modules" / "dreamer.html").exists()


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "docs" / "notebooks" / "quickstart_dreamerharmony.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    params[0].source = (
        'TOTAL_STEPS = 120\nMODEL_SIZE = "tiny"\n'
        "ALGO_KWARGS = dict(learning_starts=64, batch_size=2, sequence_length=8, train_ratio=16)\nEVAL_EPISODES = 1\n"
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    os.environ.update(env)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "updates: 56" in text  # (120 - 64) env steps x 16 / (2 x 8)
    assert "video frames:" in text and "score:" in text
    assert (tmp_path / "harmony_cartpole.zip").exists()

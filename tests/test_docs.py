"""The Sphinx docs build with warnings as errors, and the notebook tutorial runs end to end on a tiny budget."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK = DOCS / "notebooks" / "quickstart_dreamerharmony.ipynb"

# replaces the notebook's cell tagged "parameters": a budget that runs in seconds on 2 CPU cores
TINY_PARAMETERS = """\
TOTAL_STEPS = 80
MODEL_SIZE = "tiny"
LEARNING_STARTS = 64
BATCH_SIZE = 2
SEQUENCE_LENGTH = 8
TRAIN_RATIO = 16
EVAL_EPISODES = 1
ENV_KWARGS = dict(time_limit=2.0)
OPENLOOP_LENGTH = 16
CONTEXT = 5
SEED = 0
"""


def test_sphinx_build_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("sphinx", reason='install the docs extra: pip install -e ".[docs]"')
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out),
         "-d", str(tmp_path / "doctrees")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, f"sphinx failed (warnings are errors):\n{result.stdout}\n{result.stderr}"
    for page in ("index", "guide/install", "guide/quickstart", "guide/harmonizer", "guide/deviations",
                 "modules/dreamer", "modules/drqv2", "modules/contextwm", "guide/pretraining", "guide/environments", "guide/environments/dmc",
                 "guide/environments/metaworld", "guide/environments/dmcr", "guide/environments/atari",
                 "guide/environments/crafter", "guide/environments/minedojo", "guide/video_data", "api"):
        assert (out / f"{page}.html").exists(), page
    # autodoc really imported the package and documented the public classes
    dreamer_page = (out / "modules" / "dreamer.html").read_text(encoding="utf-8")
    for name in ("DreamerV3", "DreamerV2", "DreamerHarmony", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"):
        assert name in dreamer_page, name
    api_page = (out / "api.html").read_text(encoding="utf-8")
    for name in ("Harmonizer", "SequenceReplayBuffer", "RSSM", "WorldModel", "ActorCritic", "make_config",
                 "lambda_returns", "TwoHotDist", "make_dmc"):
        assert name in api_page, name


def _python_blocks(rst: Path) -> list[str]:
    """The ``.. code-block:: python`` blocks of a reST page, dedented."""
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", rst.read_text(encoding="utf-8"), re.M)
    return [textwrap.dedent(b) for b in blocks]


def test_harmonizer_guide_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The stand-alone example of the Harmonizer page runs and does what the page says."""
    blocks = _python_blocks(DOCS / "guide" / "harmonizer.rst")
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "harmonizer.rst", "exec"), namespace)  # noqa: S102
    coefs = namespace["harmonizer"].coefficients()
    assert coefs["big"] < 1.0 < coefs["small"], coefs  # the large loss is scaled down, the small one up
    assert "{'big': " in capsys.readouterr().out


def _outputs_text(nb: object) -> str:
    parts = []
    for cell in nb.cells:  # type: ignore[attr-defined]
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def _run_notebook(path: Path, tiny_parameters: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """Execute a tutorial notebook with its ``parameters`` cell replaced by a tiny budget; return it executed."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    pytest.importorskip("dm_control")

    nb = nbformat.read(path, as_version=4)
    # outputs are not committed
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, "clear the notebook's outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    assert nb.cells.index(params[0]) == next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    names = set(re.findall(r"^([A-Z_]+) =", params[0].source, re.M))
    assert names == set(re.findall(r"^([A-Z_]+) =", tiny_parameters, re.M)), "update the tiny parameters"
    params[0].source = tiny_parameters
    # check that the kernel is this interpreter (the venv's ipykernel), not some other python on the machine
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint('kernel prefix:', sys.prefix)"))

    # the kernel shows figures with matplotlib's inline backend (as in Jupyter); a non-interactive MPLBACKEND
    # inherited from the test environment would make plt.show() a no-op
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert f"kernel prefix: {sys.prefix}" in _outputs_text(nb)
    return nb


def _count_images(nb: object) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])  # type: ignore[attr-defined]
    )


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _run_notebook(NOTEBOOK, TINY_PARAMETERS, tmp_path, monkeypatch)
    text = _outputs_text(nb)
    updates = re.search(r"env steps: (\d+), updates: (\d+)", text)
    assert updates, text
    assert int(updates.group(1)) == 80 and int(updates.group(2)) > 0, updates.group(0)
    assert "open-loop video: (2, 16, 3, 64, 192) torch.uint8" in text, text
    assert "harmonizer restored: True" in text
    assert re.search(r"score: -?\d+\.\d \+/- \d+\.\d over 1 episode", text), text
    images = _count_images(nb)
    assert images >= 3, f"expected the frame, coefficient and open-loop figures, got {images} images"
    assert (tmp_path / "harmony_cartpole.zip").exists()


CONTEXTWM_NOTEBOOK = DOCS / "notebooks" / "contextwm_pretrain_finetune.ipynb"
CONTEXTWM_TINY_PARAMETERS = """\
EPISODES_PER_DOMAIN = 1
EPISODE_SECONDS = 0.6
PRETRAIN_STEPS = 3
PRETRAIN_BATCH = 2
SEQUENCE_LENGTH = 8
MODEL_SIZE = "tiny"
FINETUNE_STEPS = 40
FINETUNE_BATCH = 2
PRETRAIN_UPDATES = 0
TRAIN_RATIO = 16
EVAL_EPISODES = 1
SEED = 0
"""


def test_contextwm_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pre-train on recorded DMC clips + real mp4 footage, inspect, fine-tune ContextDreamer: all with a tiny budget."""
    pytest.importorskip("av")
    nb = _run_notebook(CONTEXTWM_NOTEBOOK, CONTEXTWM_TINY_PARAMETERS, tmp_path, monkeypatch)
    text = _outputs_text(nb)
    assert re.search(r"\d+ simulator clips, \d+ in-the-wild clips", text), text
    assert "model.safetensors" in text and "config.json" in text, text
    updates = re.search(r"env steps: (\d+), updates: (\d+)", text)
    assert updates and int(updates.group(1)) == 40 and int(updates.group(2)) > 0, text
    assert re.search(r"evaluation return: -?\d+\.\d", text), text
    assert _count_images(nb) >= 3


IVIDEOGPT_NOTEBOOK = DOCS / "notebooks" / "ivideogpt_mbpo_planning.ipynb"
IVIDEOGPT_TINY_PARAMETERS = """\
EPISODES = 1
EPISODE_SECONDS = 0.6
TOKENIZER = {"preset": "tiny", "image_size": 64, "patch": 4}
TRANSFORMER = {"preset": "tiny", "max_tokens": 1024}
PRETRAIN_STEPS = 4
TOKENIZER_STEPS = 2
BATCH = 2
SEQUENCE_LENGTH = 4
HORIZON = 3
POPULATION = 4
MBPO_STEPS = 80
MBPO_LEARNING_STARTS = 40
MODEL_WARMUP = 2
ROLLOUT_BATCH = 2
EVAL_EPISODES = 1
SEED = 0
"""


def test_ivideogpt_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record, pre-train iVideoGPT, predict, plan, train MBPO: all with a tiny budget."""
    nb = _run_notebook(IVIDEOGPT_NOTEBOOK, IVIDEOGPT_TINY_PARAMETERS, tmp_path, monkeypatch)
    text = _outputs_text(nb)
    assert "1 episodes, 16 frames each, frames (64, 64, 3)" in text, text
    assert "tokenizer/model.safetensors" in text and "trainer.pt" in text, text
    assert re.search(r"PSNR \d+\.\d\d dB, SSIM -?\d\.\d{3} over 3 predicted frames", text), text
    assert "within the bounds: True" in text, text
    updates = re.search(r"env steps: (\d+), world-model updates: (\d+), imagined transitions: (\d+)", text)
    assert updates and int(updates.group(1)) == 80 and int(updates.group(2)) > 0 and int(updates.group(3)) > 0, text
    assert re.search(r"evaluation return: -?\d+\.\d", text), text
    assert _count_images(nb) >= 2
    assert (tmp_path / "mbpo_reacher.zip").exists() and (tmp_path / "prediction.gif").exists()

"""The analysis notebooks: stored clean, and executed headless (nbclient, kernel ``python3``)
against small sweeps made here through run.py, they show the verdict the sweep wrote (its
outcome line / stage table) and draw the verdict's figures inline."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from helpers import REPO, run_cli, sibling_module
from matplotlib import image as mpimg

from prereg.reports.notebook_support import ENV_VAR, sweep_dir

NOTEBOOKS = REPO / "notebooks"
EXP9_NB = NOTEBOOKS / "exp9_verdict.ipynb"
LADDER_NB = NOTEBOOKS / "ppo_ladder.ipynb"
# the tiny ladder settings of the ladder's own end-to-end tests (one source of truth)
LADDER_TESTS = sibling_module(str(REPO / "tests" / "test_ladder_sweep.py"), "test_ladder_sweep")


def execute(path: Path, sweep: Path) -> nbformat.NotebookNode:
    """Run a notebook as Jupyter would (cwd notebooks/), pointed at ``sweep`` by PREREG_SWEEP."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env={**os.environ, ENV_VAR: str(sweep)})  # a failing cell raises here
    return nb


def texts(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook showed as text: streams, plain text, Markdown and HTML."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            data = o.get("data", {})
            out += [data.get(k, "") for k in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(out)


def pngs_of(nb: nbformat.NotebookNode, call: str) -> list:
    """The PNG images (decoded arrays) shown by the code cell that contains ``call``."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and call in c.source]
    return [
        mpimg.imread(io.BytesIO(base64.b64decode(o["data"]["image/png"])), format="png")
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]


def assert_one_real_figure(nb: nbformat.NotebookNode, call: str) -> None:
    images = pngs_of(nb, call)
    assert len(images) == 1, f"{call}: {len(images)} images shown (expected one)"
    height, width = images[0].shape[:2]
    assert width >= 400 and height >= 300, (call, images[0].shape)
    assert images[0][..., :3].std() > 0.05, f"{call}: a blank image"


@pytest.fixture(scope="module")
def exp9_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nb") / "exp9"
    proc = run_cli(
        "-m", "arm=baseline,primary,secondary", "cell=glob(*)", "registration.step_cap=40",
        "exp9.chunk_steps=20", f"hydra.sweep.dir={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def ladder_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nb") / "ladder"
    t = LADDER_TESTS
    proc = run_cli(
        "-m", "experiment=ppo_ladder", "candidate=glob(*)", *t.TINY, *t.GATES, t.PASS_ALL,
        f"hydra.sweep.dir={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("path", [EXP9_NB, LADDER_NB], ids=lambda p: p.name)
def test_notebooks_are_stored_clean_with_the_sweep_parameter_first(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs stored"
    assert code[0].source.startswith('SWEEP = "outputs/'), code[0].source
    assert nb.cells[0].cell_type == "markdown" and ENV_VAR in nb.cells[0].source


def test_sweep_dir_takes_the_environment_first_and_finds_relative_paths_upwards(
    tmp_path, monkeypatch
):
    sweep = tmp_path / "outputs" / "multirun" / "s1"
    other = tmp_path / "other"
    sweep.mkdir(parents=True)
    other.mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert sweep_dir("outputs/multirun/s1") == sweep.resolve()  # found from the parent
    monkeypatch.setenv(ENV_VAR, str(other))
    assert sweep_dir("outputs/multirun/s1") == other.resolve()
    monkeypatch.setenv(ENV_VAR, "")  # empty: the default
    assert sweep_dir(sweep) == sweep.resolve()
    with pytest.raises(FileNotFoundError, match=r"'outputs/nope' not found .* PREREG_SWEEP"):
        sweep_dir("outputs/nope")


@pytest.mark.slow
def test_exp9_notebook_reproduces_the_verdict_and_its_figures(exp9_sweep):
    nb = execute(EXP9_NB, exp9_sweep)
    shown = texts(nb)
    assert f"{exp9_sweep.resolve()}: 12 run directories" in shown  # read the sweep given
    md = (exp9_sweep / "verdict.md").read_text().splitlines()
    outcome = next(line for line in md if line.startswith("**Outcome "))
    assert outcome in shown
    headers = [line for line in md if line[:5] in ("## P1", "## P2", "## P3", "## P4")]
    assert len(headers) == 4 and all(h in shown for h in headers), headers
    assert "Runs: 12/12 completed." in shown
    assert "arm=primary,cell=n4m2,registration.step_cap=40" in shown  # the per-run table
    for call in ("plot_trajectories(", "plot_pair_ratios(", 'pd.read_csv(run.path / "diag'):
        assert_one_real_figure(nb, call)


@pytest.mark.slow
def test_ladder_notebook_reproduces_the_stage_table_and_its_figures(ladder_sweep):
    nb = execute(LADDER_NB, ladder_sweep)
    shown = texts(nb)
    assert f"{ladder_sweep.resolve()}: 4 run directories" in shown
    md = (ladder_sweep / "verdict.md").read_text()
    # a tiny ladder of changed constants is exploratory: its sentence adopts nothing
    decision = json.loads((ladder_sweep / "verdict.json").read_text())["decision"]["sentence"]
    assert decision.startswith("exploratory: not the registered set-up — lr1e4 is the first")
    assert decision in shown
    stages = md.split("## Stages\n")[1].split("\n## ")[0].strip().splitlines()
    assert len(stages) == 2 + 5, stages  # header, rule, lr1e4's five checks
    assert all(line in shown for line in stages), stages
    # the compare table by candidate (and registration hash): 1 run, completed
    assert re.search(r"\| lr1e4 \| [0-9a-f]{16} \| 1 \| 1 \| 0 \|", shown), shown
    # intervals and the trust section, as verdict.md shows them
    assert "## How much this verdict can be trusted" in md and "Stage-1 success (95% CI)" in shown
    trust = md.split("## How much this verdict can be trusted\n")[1].split("\n## ")[0]
    assert all(line in shown for line in trust.strip().splitlines() if line), trust
    for call in ("plot_curves(", "plot_stage_table(", 'x="env_steps"'):
        assert_one_real_figure(nb, call)

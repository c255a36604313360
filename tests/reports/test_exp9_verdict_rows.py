"""How the exp9 verdict reads on sweeps that are not the registered test: an incomplete sweep's
gates say `incomplete (k of n runs)` (never PASS/FAIL on inputs that are not there) and list the
runs that never ran as missing; a sweep of changed constants is headlined as exploratory in
verdict.md, verdict.json and every plot title.  Run directories are fabricated (no training)."""

from __future__ import annotations

import json

from helpers import REPO, sibling_module

from prereg.exp9.plots import plot_pair_ratios, plot_trajectories
from prereg.exp9.verdict import compute_verdict, load_tables, render_markdown, write_verdict

PLOTS = sibling_module(str(REPO / "tests" / "reports" / "test_plots.py"), "test_plots")
CAP = 2000  # the registered step cap: a sweep made with it is the registered set-up
ARMS, CELLS = ("baseline", "primary", "secondary"), ("n4m2", "n5m2", "n4m3", "n5m3")
ONLY_N4M2_BASELINE_PRIMARY = tuple(
    f"{a}/{c}" for a in ARMS for c in CELLS if not (c == "n4m2" and a != "secondary")
)


def test_an_incomplete_registered_sweep_marks_every_gate_incomplete(tmp_path):
    # python run.py -m arm=baseline,primary (the default cell only): 2 of the 12 runs
    sweep = PLOTS.make_exp9_sweep(tmp_path / "sw", steps=CAP, skip=ONLY_N4M2_BASELINE_PRIMARY)
    v = compute_verdict(sweep)
    assert v["exploratory"] == {"is": False, "why": ""}
    assert v["outcome"] == {"number": 0, "sentence": "no verdict: the set is incomplete "
                            "(2 of 12 runs)"}  # fmt: skip
    p1, p2, p3, p4 = v["P1"], v["P2"], v["P3"], v["P4"]
    assert p1["finite"]["result"] == p1["fidelity"]["result"] == "incomplete (2 of 12 runs)"
    assert p1["finite_differences"]["result"] == "incomplete (1 of 4 cells)"
    assert p1["result"] == "incomplete (2 of 12 runs)"
    assert p2["median_result"] == p2["count_result"] == "incomplete (2 of 8 runs)"
    assert p3["not_crossed"] == [] and len(p3["missing_runs"]) == 10
    assert p3["result"] == "incomplete (2 of 12 runs)"
    assert p4["result"] == "incomplete (2 of 12 runs)"
    md = render_markdown(v)
    assert (
        "| finite at every step | 2 runs checked | all finite | incomplete (2 of 12 runs) |" in md
    )
    assert "## P2 steering: incomplete (2 of 8 runs)" in md
    p2_lines = md.split("## P2")[1].split("\n|")[0]
    assert "PASS" not in p2_lines and "FAIL" not in p2_lines
    assert "pairs have r > 1 (registered consistency count: 7; 8 pairs registered)" in p2_lines
    assert "Missing runs: secondary/n4m2, baseline/n5m2, " in md
    assert "Not crossed" not in md and "All runs that ran crossed." in md
    assert "Missing runs (not counted as not crossed): secondary/n4m2, " in md
    assert "## P4 R4 carry-over: incomplete (2 of 12 runs)" in md
    cells_row = next(line for line in md.splitlines() if line.startswith("| diagnostic cells"))
    assert cells_row.endswith("| incomplete (2 of 12 runs) |")
    assert "exploratory" not in md
    fig = plot_pair_ratios(v)  # no secondary run: no secondary marker or bars, no legend entry
    labels = [t.get_text() for ax in fig.axes[:2] for t in ax.get_legend().get_texts()]
    assert labels and not any("secondary" in label for label in labels)
    assert "of 2 pairs have r > 1 (registered consistency count: 7" in fig.axes[0].get_title()


def test_a_running_job_is_missing_and_a_non_finite_run_still_fails_p1(tmp_path):
    sweep = PLOTS.make_exp9_sweep(tmp_path / "sw", steps=CAP)
    running = sweep / "arm=secondary,cell=n5m3" / "run.json"
    running.write_text(json.dumps(json.loads(running.read_text()) | {"status": "running"}))
    broken = sweep / "arm=primary,cell=n4m3" / "run.json"
    record = json.loads(broken.read_text())
    record |= {"status": "failed", "reason": "FloatingPointError: non-finite value at step 7"}
    broken.write_text(json.dumps(record))
    v = compute_verdict(sweep)
    assert v["runs"]["not_run"] == ["secondary/n5m3"]
    assert v["P1"]["finite"]["result"] == "FAIL" and v["P1"]["result"] == "FAIL"
    assert v["outcome"]["sentence"] == "no verdict: P1 fails"
    md = render_markdown(v)
    assert "Missing runs: secondary/n5m3 (running) (1 of the 12 registered runs" in md
    assert "Not completed: primary/n4m3 — failed: FloatingPointError" in md


def test_a_complete_registered_sweep_reads_pass_fail_and_the_unambiguous_count(tmp_path):
    v = compute_verdict(PLOTS.make_exp9_sweep(tmp_path / "sw", steps=CAP))
    assert v["exploratory"]["is"] is False and v["runs"]["not_run"] == []
    assert v["P1"]["result"] == "PASS" and v["P2"]["result"] in ("PASS", "FAIL")
    md = render_markdown(v)
    n = v["P2"]["count_gt_1"]
    assert f"- {n} of 8 pairs have r > 1 (registered consistency count: 7): " in md
    assert "count(r > 1)" not in md


def test_a_sweep_of_changed_constants_is_headlined_exploratory_everywhere(tmp_path):
    sweep = PLOTS.make_exp9_sweep(tmp_path / "sw", steps=200)  # registration.step_cap=200
    md = write_verdict(sweep)
    v = json.loads((sweep / "verdict.json").read_text())
    assert v["exploratory"] == {"is": True, "why": "step_cap 200"}
    lines = md.splitlines()
    assert lines[2].startswith("**exploratory: not the registered set-up (step_cap 200)**")
    assert lines[4].startswith(f"**Outcome {v['outcome']['number']}** (exploratory) — ")
    want = "exploratory: not the registered set-up (step_cap 200)"
    tables, reg = load_tables(sweep, v["registration"]["hash"])
    for fig in (plot_trajectories(v, tables, reg), plot_pair_ratios(v)):
        assert fig.get_suptitle().splitlines()[0] == want

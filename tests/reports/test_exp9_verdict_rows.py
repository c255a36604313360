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


def make_v2_sweep(root, steps: int = CAP):
    """A fabricated exp9_v2 sweep: its five arms x four cells, as make_exp9_sweep makes v1's."""
    import pandas as pd

    from prereg.core.registration import load_registered
    from prereg.exp9 import analysis
    from prereg.exp9.arms import arm_spec

    reg = dict(load_registered("exp9_v2"), step_cap=steps)
    diag_steps = analysis.diagnostic_steps(steps, reg["diagnostic_steps"])
    fid = {"rel_err": 1e-15, "gap": 0.1, "gate": 1e-12, "pass": True}
    fd = {"worst_rel_err": 1e-10, "grad_norm": 0.3, "applies": True, "gate": 1e-6, "pass": True}
    for ci, cell in enumerate(reg["cells"]):
        for arm in reg["lambdas"]:
            lam = arm_spec(reg, arm).lam
            d = root / f"arm={arm},cell={cell},registration=exp9_v2"
            d.mkdir(parents=True)
            (d / "run.json").write_text(
                json.dumps(PLOTS._run_json(reg, "exp9", {"arm": arm, "cell": cell}))
            )
            (d / "registration.json").write_text(json.dumps(reg))
            m = PLOTS.exp9_metrics(arm, lam, ci, steps)
            m.to_csv(d / "metrics.csv", index=False)
            fidelity = {"first": {"step": 0, **fid}, "last": {"step": steps - 1, **fid}}
            summary = {"experiment": "exp9", "arm": arm, "cell": cell, "lambda": lam,
                       "fidelity": fidelity, "fd_check": fd}  # fmt: skip
            (d / "summary.json").write_text(json.dumps(summary))
            (d / "fd_check.json").write_text(json.dumps(fd))
            diag = {"step": diag_steps, "detailed_balance": 1e-18, "row_sum": 2e-16,
                    "symmetry": 4e-17, "lambda_2": 0.9, "gap": 0.1, "inv_gap_power": 10.0,
                    "conductance": 0.1, "cheeger_lower": 0.05, "cheeger_upper": 0.45,
                    "cheeger_margin": 0.05, "failed": ""}  # fmt: skip
            pd.DataFrame(diag).to_csv(d / "diagnostics.csv", index=False)
    return root


def test_the_v2_verdict_tests_each_augmented_arm_against_the_baseline(tmp_path):
    sweep = make_v2_sweep(tmp_path / "v2")
    md = write_verdict(sweep)
    v = json.loads((sweep / "verdict.json").read_text())
    arms = ["rho0_01", "rho0_1", "rho1", "noise0_1"]
    assert v["exploratory"]["is"] is False and v["runs"]["expected"] == 20
    assert list(v["P2"]["arms"]) == arms and list(v["outcome"]["by_arm"]) == arms
    for arm in arms:
        p2 = v["P2"]["arms"][arm]
        assert len(p2["pairs"]) == 8 and p2["result"] in ("PASS", "FAIL")
    # the fabricated KL floor is 0.005 + 2 lambda: lambda 1 never reaches eps x initial KL
    assert v["P3"]["arms"]["rho1"]["result"] == "FAIL"
    assert v["P3"]["arms"]["rho0_01"]["result"] == "PASS"
    assert v["outcome"]["by_arm"]["rho1"]["number"] in (2, 4)
    assert v["outcome"]["by_arm"]["rho0_01"]["number"] == 3
    dose = v["reported"]["dose_response"]
    assert [(d["arm"], d["lambda"], d["form"]) for d in dose["rows"]] == [
        ("rho0_01", 0.01, "rho"), ("rho0_1", 0.1, "rho"), ("rho1", 1.0, "rho"),
        ("noise0_1", 0.1, "noise"),
    ]  # fmt: skip
    assert set(v["trust"]["arms"]) == set(arms)
    lines = md.splitlines()
    assert lines[2].startswith("**Outcomes by arm** — rho0_01: **Outcome 3**; rho0_1: ")
    assert "## P2 steering, each augmented arm against the baseline" in md
    assert "### Dose-response across all lambdas" in md
    assert "| noise0_1 | 0.1 | noise |" in md
    assert md.index("## How much this verdict can be trusted") > md.index("### Finals")
    assert "*Plots not drawn*" not in md
    for png in PLOTS.EXP9_PNGS:
        assert (sweep / png).stat().st_size > 10_000


def test_the_trust_section_counts_early_pairs_and_recomputes_ratios_on_a_window(tmp_path):
    sweep = PLOTS.make_exp9_sweep(tmp_path / "sw", steps=CAP)
    v = compute_verdict(sweep)
    t = v["trust"]["arms"]["primary"]
    # the fabricated 0.5 crossings come at steps 18-29 (< 50), the 0.1 ones after step 60
    assert t["early_pairs"] == 4 and t["early"] == [f"{c}@0.5" for c in CELLS]
    late = [p["ratio"] for p in v["P2"]["pairs"] if p["eps"] == 0.1]
    assert t["late_pairs"] == 4 and abs(t["late_median_ratio"] - sorted(late)[1:3][0] / 2
                                          - sorted(late)[1:3][1] / 2) < 1e-12  # fmt: skip
    for pair in t["pairs"]:  # rho is smooth here: the window barely moves the ratio
        assert abs(pair["window_ratio"] / pair["ratio"] - 1) < 0.02
    md = render_markdown(v)
    assert md.rstrip().split("\n## How much this verdict can be trusted")[1]
    assert "| primary | 4 of 8 (n4m2@0.5, n5m2@0.5, n4m3@0.5, n5m3@0.5) |" in md

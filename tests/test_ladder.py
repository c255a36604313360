"""The Path-B ladder: pure stage logic at and around every gate, the decision, the verdict
over constructed run directories, candidate application and the registered sweep order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from prereg.core.registration import CONF_DIR, load_registered, registration_hash
from prereg.ppo.ladder import (
    FAIL,
    NOT_REACHED,
    PASS,
    Grade,
    NotGradable,
    Stage,
    best_state,
    decide,
    grade,
    stage1,
    stage2,
    stage3,
)
from prereg.ppo.ladder_verdict import compute_verdict, render_markdown
from prereg.sweep.app import setup as register_schemas

register_schemas()
REG = load_registered("ppo_pathb_v1")
S1, S2, S3 = REG["stage1"], REG["stage2"], REG["stage3"]
EPS = 1e-9
FROZEN_PPO_PATHB_V1_HASH = "a1458ee414d8ed95"


def ev(success: float, seed_start: int = 10000, n_seeds: int = 32) -> dict:
    return {"seed_start": seed_start, "n_seeds": n_seeds, "success_rate": success}


def table(
    n: int = 60,
    entropy_end: float = 2.0,
    log_std_start: float = -0.3,
    log_std_end: float = -0.35,
    value_loss: float = 100.0,
) -> pd.DataFrame:
    """n updates; the final-window log_std runs from log_std_start to log_std_end."""
    log_std = np.full(n, log_std_start)
    window = min(n, S2["window"])
    log_std[n - window :] = np.linspace(log_std_start, log_std_end, window)
    entropy = np.full(n, 2.0)
    entropy[-1] = entropy_end
    return pd.DataFrame(
        {
            "update": np.arange(1, n + 1),
            "entropy": entropy,
            "log_std": log_std,
            "value_loss": np.full(n, value_loss),
        }
    )


def checks(stage: Stage) -> dict[str, bool]:
    return {c.label.split(" ")[0]: c.passed for c in stage.checks}


def test_the_frozen_registration_hash_is_pinned():
    # ppo_pathb_v1 is frozen: changing any constant must be a new registration (ppo_pathb_v2)
    assert registration_hash(REG) == FROZEN_PPO_PATHB_V1_HASH


# ---------------------------------------------------------------------------- stage 1
@pytest.mark.parametrize(
    ("success", "result"), [(0.40, PASS), (0.40 - EPS, FAIL), (0.40 + EPS, PASS), (0.0, FAIL)]
)
def test_stage1_passes_at_and_above_040(success, result):
    assert stage1(ev(success), S1).result == result


def test_stage1_needs_the_registered_seeds():
    with pytest.raises(NotGradable, match="seed_start 10000 with 8 seeds"):
        stage1(ev(0.9, n_seeds=8), S1)
    with pytest.raises(NotGradable, match="missing"):
        stage1(None, S1)


# ---------------------------------------------------------------------------- stage 2
@pytest.mark.parametrize(
    ("entropy", "ok"), [(2.28, False), (2.28 - EPS, True), (2.28 + EPS, False), (2.0, True)]
)
def test_stage2_entropy_must_end_strictly_below_228(entropy, ok):
    s = stage2(table(entropy_end=entropy), S2)
    assert checks(s)["entropy[-1]"] is ok
    assert s.result == (PASS if ok else FAIL)


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        (-0.3, -0.3, True),  # exactly 0: stable passes
        (-0.3, -0.3 + EPS, False),
        (-0.3, -0.3 - EPS, True),
        (0.3, 0.1 + 0.2, True),  # 0 in decimal, 5.6e-17 in binary: counts as 0
        (-0.2, -0.3, True),  # shrinking
        (-0.28, -0.04, False),  # the seed's ext3: log_std expanding
    ],
)
def test_stage2_log_std_change_over_the_window_must_be_at_most_zero(start, end, ok):
    s = stage2(table(log_std_start=start, log_std_end=end), S2)
    assert checks(s)["log_std[-1]"] is ok


def test_stage2_log_std_change_is_measured_from_the_first_update_of_the_window():
    t = table(log_std_start=-0.3, log_std_end=-0.3)
    t.loc[: len(t) - S2["window"] - 1, "log_std"] = -1.0  # before the window: ignored
    t.loc[len(t) - 25, "log_std"] = 0.5  # inside, not an endpoint: ignored (registered formula)
    assert checks(stage2(t, S2))["log_std[-1]"] is True


@pytest.mark.parametrize(
    ("loss", "ok"), [(400.0, True), (400.0 - EPS, True), (400.0 + 1e-6, False), (700.0, False)]
)
def test_stage2_value_loss_must_stay_at_most_400_in_every_window_update(loss, ok):
    t = table()
    t.loc[len(t) - S2["window"], "value_loss"] = loss  # the first update of the window
    assert checks(stage2(t, S2))["max"] is ok


def test_stage2_ignores_value_loss_before_the_window_and_fails_on_nan_inside_it():
    t = table()
    t.loc[len(t) - S2["window"] - 1, "value_loss"] = 10_000.0
    assert stage2(t, S2).result == PASS
    t.loc[len(t) - 1, "value_loss"] = float("nan")
    assert checks(stage2(t, S2))["max"] is False


def test_stage2_with_fewer_updates_than_the_window_fails_with_that_reason():
    s = stage2(table(n=S2["window"] - 1), S2)
    assert s.result == FAIL and s.reason == "only 49 updates, fewer than the window of 50"
    assert stage2(table(n=S2["window"]), S2).result == PASS


def test_stage2_sorts_by_update_and_needs_its_columns():
    t = table().iloc[::-1]
    assert stage2(t, S2).result == PASS
    with pytest.raises(NotGradable, match="value_loss"):
        stage2(table().drop(columns="value_loss"), S2)


# ---------------------------------------------------------------------------- stage 3
@pytest.mark.parametrize(
    ("s20000", "s10000", "ok"),
    [
        (0.5, 0.4, True),  # exactly 0.10 (in decimal) either way
        (0.3, 0.4, True),
        (0.4, 0.3, True),
        (0.5 + EPS, 0.4, False),
        (0.3 - EPS, 0.4, False),
        (0.5 - EPS, 0.4, True),
        (0.15625, 0.25, True),  # k/32 rates: gap 0.09375
        (0.125, 0.25, False),  # gap 0.125
    ],
)
def test_stage3_gap_must_be_at_most_010(s20000, s10000, ok):
    s = stage3(ev(s20000, 20000), ev(s10000), S3, S1)
    assert s.result == (PASS if ok else FAIL)


# ---------------------------------------------------------------------------- grade
def test_stages_after_a_failure_are_not_reached_and_need_no_input():
    g = grade(table(), ev(0.1), None, REG)
    assert [s.result for s in g.stages] == [FAIL, NOT_REACHED, NOT_REACHED]
    assert g.failed_stage == 1 and not g.passed
    g = grade(table(entropy_end=2.5), ev(0.5), None, REG)
    assert [s.result for s in g.stages] == [PASS, FAIL, NOT_REACHED]
    with pytest.raises(NotGradable, match="stage-3 eval"):
        grade(table(), ev(0.5), None, REG)
    g = grade(table(), ev(0.5), ev(0.45, 20000), REG)
    assert g.passed and g.failed_stage is None


def test_thresholds_come_from_the_registration():
    strict = {**REG, "stage1": {**S1, "min_success_rate": 0.6}}
    assert grade(table(), ev(0.5), ev(0.5, 20000), REG).passed
    assert grade(table(), ev(0.5), ev(0.5, 20000), strict).failed_stage == 1


# ---------------------------------------------------------------------------- decision
P = Grade((Stage(1, PASS), Stage(2, PASS), Stage(3, PASS)))
F = Grade((Stage(1, PASS), Stage(2, FAIL), Stage(3, NOT_REACHED)))


@pytest.mark.parametrize(
    ("rows", "outcome", "adopted", "ungraded"),
    [
        ([("a", P), ("b", "skipped"), ("c", P)], "adopted", "a", ()),
        ([("a", F), ("b", P), ("c", F)], "adopted", "b", ()),
        ([("a", F), ("b", F)], "rejected", None, ()),
        ([("a", F), ("b", "failed: boom"), ("c", P)], "incomplete", None, ("b",)),
        ([("a", "no run"), ("b", F)], "incomplete", None, ("a",)),
    ],
)
def test_the_first_passing_candidate_in_order_is_adopted_only_after_every_earlier_one_failed(
    rows, outcome, adopted, ungraded
):
    d = decide(rows)
    assert (d.outcome, d.adopted, d.ungraded) == (outcome, adopted, ungraded)


def test_best_state_ranks_by_success_then_alignment_then_fewer_steps():
    states = [
        {"id": 1, "success_rate": 0.3, "mean_terminal_alignment": 0.9, "mean_steps": 150},
        {"id": 2, "success_rate": 0.344, "mean_terminal_alignment": 0.7, "mean_steps": 170},
        {"id": 3, "success_rate": 0.344, "mean_terminal_alignment": 0.735, "mean_steps": 163},
        {"id": 4, "success_rate": 0.344, "mean_terminal_alignment": 0.735, "mean_steps": 180},
        {"id": 5, "success_rate": float("nan"), "mean_terminal_alignment": 1.0, "mean_steps": 1},
    ]
    assert best_state(states)["id"] == 3
    assert best_state([]) is None


# ---------------------------------------------------------------------------- verdict from disk
def fake_run(
    sweep: Path,
    name: str,
    status: str = "completed",
    s10000: float = 0.5,
    s20000: float = 0.45,
    metrics: pd.DataFrame | None = None,
    reg: dict = REG,
) -> Path:
    """A ladder run directory written by hand, as the runner would leave it."""
    d = sweep / f"candidate={name}"
    (d / "logs").mkdir(parents=True)
    run = {
        "status": status,
        "reason": None if status == "completed" else f"{status} for the test",
        "experiment": "ppo_ladder",
        "registration": reg["name"],
        "registration_hash": registration_hash(reg),
        "job": {"choices": {"candidate": name, "experiment": "ppo_ladder"}, "overrides": []},
    }
    (d / "run.json").write_text(json.dumps(run))
    (d / "registration.json").write_text(json.dumps(reg))
    if status == "completed":
        (metrics if metrics is not None else table()).to_csv(d / "metrics.csv", index=False)
        (d / "logs" / "evaluation_seed_10000.json").write_text(json.dumps(ev(s10000)))
        (d / "logs" / "evaluation_seed_20000.json").write_text(json.dumps(ev(s20000, 20000)))
        segment = {"init_from": None, "start_update": 0, "target_update": 1221}
        summary = {
            "experiment": "ppo_ladder", "candidate": name, "variant": "mixed_0_90",
            "tier": "large", "updates": 60, "env_steps": 60 * 8192, "segment": segment,
        }  # fmt: skip
        (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_the_verdict_adopts_the_first_passing_candidate_and_lists_the_falsifiers(tmp_path):
    fake_run(tmp_path, "lr1e4", metrics=table(entropy_end=2.76))
    fake_run(tmp_path, "vc0_25")
    fake_run(tmp_path, "ec0_001", status="skipped")
    v = compute_verdict(tmp_path)
    assert v["decision"]["outcome"] == "adopted" and v["decision"]["adopted"] == "vc0_25"
    assert v["registration"]["registered"] is True and v["setup_deviations"] == []
    results = {r["candidate"]: r["result"] for r in v["candidates"]}
    assert results == {
        "lr1e4": "FAIL (Stage 2)",
        "vc0_25": "ADOPTED",
        "ec0_001": "not graded",
        "clip0_1": "not run",  # no run directory: never ran, not a failure
    }
    assert [f["candidate"] for f in v["falsifiers"]] == ["lr1e4"]
    assert v["next_command"] == (
        "python run.py -m experiment=ppo tier=large candidate=vc0_25 "
        "variant=mixed_0_95,mixed_0_97,mixed_0_99,reward_phase3"
    )
    md = render_markdown(v)
    assert "**Adopted: vc0_25 (ppo.value_coef=0.25)" in md
    assert "not graded: skipped: skipped for the test" in md
    assert "| not run (no run in this sweep) |" in md
    assert v["exploratory"] == {"is": False, "why": ""} and "exploratory" not in md
    assert '"Large-tier L-Mixed needs targeted critic control' in md


def test_failed_or_missing_earlier_candidates_leave_the_verdict_incomplete(tmp_path):
    fake_run(tmp_path, "lr1e4", status="failed")
    fake_run(tmp_path, "vc0_25")
    v = compute_verdict(tmp_path)
    assert v["decision"]["outcome"] == "incomplete"
    assert v["decision"]["ungraded"] == ["lr1e4"]
    assert v["candidates"][0]["not_graded_reason"] == "failed: failed for the test"
    assert "hydra.sweep.dir=" in v["next_command"]


def test_no_passing_candidate_rejects_path_b_and_names_the_best_state(tmp_path):
    for name, rate in (("lr1e4", 0.25), ("vc0_25", 0.34375), ("ec0_001", 0.0), ("clip0_1", 0.1)):
        fake_run(tmp_path, name, s10000=rate, metrics=table(value_loss=700.0))
    v = compute_verdict(tmp_path)
    assert v["decision"]["outcome"] == "rejected"
    assert v["decision"]["sentence"].startswith("Path B rejected: fall back to Path A")
    assert len(v["falsifiers"]) == 4
    best = v["path_a"]["best"]
    assert best["checkpoint"] == str(tmp_path.resolve() / "candidate=vc0_25/checkpoints/final")
    assert best["success_rate"] == 0.34375
    assert v["next_command"].endswith("variant=mixed_0_95,mixed_0_97,mixed_0_99,reward_phase3")
    assert "candidate=" not in v["next_command"]


def test_an_unreadable_run_is_not_graded_never_a_crash(tmp_path):
    d = fake_run(tmp_path, "lr1e4")
    (d / "metrics.csv").write_text("")
    (fake_run(tmp_path, "vc0_25") / "logs" / "evaluation_seed_20000.json").write_text("{bad")
    v = compute_verdict(tmp_path)
    reasons = [r["not_graded_reason"] for r in v["candidates"][:2]]
    assert reasons[0] == "metrics.csv missing or unreadable"
    assert "stage-3 eval" in reasons[1] and v["decision"]["outcome"] == "incomplete"


def test_runs_of_different_registrations_are_refused(tmp_path):
    fake_run(tmp_path, "lr1e4")
    other = {**REG, "stage2": {**S2, "window": 10}}
    fake_run(tmp_path, "vc0_25", reg=other)
    v = compute_verdict(tmp_path)
    assert v["decision"]["outcome"] == "refused"
    assert "cannot be pooled" in v["refused"] and "candidate=vc0_25" in v["refused"]
    assert "**REFUSED**" in render_markdown(v)


def test_a_changed_constant_is_flagged(tmp_path):
    fake_run(tmp_path, "lr1e4", reg={**REG, "stage2": {**S2, "window": 10}})
    v = compute_verdict(tmp_path)
    assert v["registration"]["differing_constants"] == ["stage2.window"]
    assert v["exploratory"] == {"is": True, "why": "stage2.window 10"}
    md = render_markdown(v)
    assert "NOT the registered constants** — differs in stage2.window" in md
    assert md.splitlines()[2].startswith(
        "**exploratory: not the registered set-up (stage2.window 10)**"
    )


def short_setup(tmp_path, name, **kw):
    """A run as a tiny ladder leaves it: tier small, 3 updates."""
    d = fake_run(tmp_path, name, **kw)
    if (d / "summary.json").exists():
        summary = json.loads((d / "summary.json").read_text())
        summary["tier"], summary["segment"]["target_update"] = "small", 3
        (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_an_exploratory_rejection_headlines_the_set_up_and_acts_on_nothing(tmp_path):
    for name in ("lr1e4", "vc0_25", "ec0_001", "clip0_1"):
        short_setup(tmp_path, name, s10000=0.0)
    v = compute_verdict(tmp_path)
    assert v["exploratory"] == {"is": True, "why": "tier small, 3 updates"}
    assert v["decision"]["outcome"] == "rejected"  # what the stages say on this set-up
    assert v["decision"]["sentence"].startswith("exploratory: not the registered set-up")
    assert "Path B rejected" not in v["decision"]["sentence"]
    assert v["falsifiers"] == [] and "path_a" not in v
    assert v["next_command"] == "python run.py -m experiment=ppo_ladder 'candidate=glob(*)'"
    md = render_markdown(v)
    headline = md.splitlines()[2]
    assert headline.startswith("**exploratory: not the registered set-up (tier small, 3 updates)**")
    assert "Stage results on this set-up: no candidate passed all three stages." in md
    assert "Path B rejected" not in md and "Falsifiers" not in md and "Path A" not in md
    for falsifier in (REG["candidates"][c]["falsifier"] for c in REG["candidates"]):
        assert falsifier not in md
    assert "tier large, 1221 updates per candidate" in md
    assert "```bash\npython run.py -m experiment=ppo_ladder 'candidate=glob(*)'\n```" in md


def test_an_exploratory_pass_adopts_nothing(tmp_path):
    short_setup(tmp_path, "lr1e4")
    v = compute_verdict(tmp_path)
    assert v["decision"]["outcome"] == "adopted" and v["exploratory"]["is"]
    md = render_markdown(v)
    assert "**Adopted" not in md and "adopts nothing" in v["decision"]["sentence"]
    assert "lr1e4 is the first candidate in registered order to pass all three stages" in md
    assert v["next_command"].startswith("python run.py -m experiment=ppo_ladder")


def test_exploratory_plot_titles(tmp_path):
    from prereg.ppo.ladder_plots import plot_curves, plot_stage_table
    from prereg.ppo.ladder_verdict import load_tables

    for name in ("lr1e4", "vc0_25"):
        short_setup(tmp_path, name, s10000=0.0, metrics=table(n=3))
    v = compute_verdict(tmp_path)
    tables, reg = load_tables(v)
    want = "exploratory: not the registered set-up (tier small, 3 updates)"
    for fig in (plot_curves(v, tables, reg), plot_stage_table(v)):
        assert fig.get_suptitle().splitlines()[0] == want


def test_a_short_run_draws_no_empty_panel_no_unused_legend_entry_and_dodges_stars(tmp_path):
    from prereg.ppo.ladder_plots import plot_curves, plot_stage_table
    from prereg.ppo.ladder_verdict import load_tables

    for name in ("lr1e4", "vc0_25", "ec0_001"):  # clip0_1 never ran
        m = table(n=3).assign(env_steps=lambda f: f["update"] * 128, success_rate=float("nan"))
        short_setup(tmp_path, name, s10000=0.0, metrics=m)
    v = compute_verdict(tmp_path)
    assert [r["result"] for r in v["candidates"]][-1] == "not run"
    tables, reg = load_tables(v)
    fig = plot_curves(v, tables, reg)
    ax_s = fig.axes[0]
    assert any("no training episode ended" in t.get_text() for t in ax_s.texts)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any(label.startswith("Stage-2 window") for label in labels)  # none shaded
    stars = [ln for ln in ax_s.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 3
    xs = [ln.get_transform().transform((ln.get_xdata()[0], ln.get_ydata()[0]))[0] for ln in stars]
    assert len({round(x) for x in xs}) == 3  # same data point, three places on screen
    legend = [t.get_text() for t in plot_stage_table(v).axes[0].get_legend().get_texts()]
    assert legend == ["FAIL", "not reached", "not run"]  # no "PASS" or "not graded" swatch


# ---------------------------------------------------------------------------- configuration
def compose(*overrides: str):
    from hydra.types import RunMode

    from prereg.sweep.precheck import _loader

    return _loader(CONF_DIR).load_configuration("config", list(overrides), run_mode=RunMode.RUN)


def test_a_candidate_applies_its_registered_change_and_nothing_else():
    from prereg.ppo.candidates import apply_candidate

    base = compose("experiment=ppo")
    for name, spec in REG["candidates"].items():
        cfg = apply_candidate(compose("experiment=ppo", f"candidate={name}"))
        expected = {**OmegaConf.to_container(base.ppo), **spec["set"]}
        assert OmegaConf.to_container(cfg.ppo) == expected, name


def test_every_candidate_option_is_a_registered_candidate_and_vice_versa():
    from prereg.sweep.precheck import _loader

    assert sorted(_loader(CONF_DIR).get_group_options("candidate")) == sorted(REG["candidates"])


def test_the_ladder_defaults_are_the_registered_variant_tier_budget_and_seeds():
    cfg = compose("experiment=ppo_ladder", "candidate=lr1e4")
    assert cfg.ppo.variant == REG["variant"] and cfg.tier.name == REG["tier"]
    assert cfg.ppo.updates == REG["updates"] and cfg.ladder.mode == "sequential"
    assert (cfg.eval.seed_start, cfg.eval.n_seeds) == (S1["seed_start"], S1["n_seeds"])
    assert compose("experiment=ppo").get("candidate") is None


def test_a_ladder_sweep_runs_in_registered_order_whatever_the_glob_says(capsys):
    from prereg.sweep import preflight
    from prereg.sweep.order import study_sweep_order

    def registered_sweep_order(argv, conf_dir):
        return study_sweep_order(preflight.plan(argv, conf_dir))

    argv = ["-m", "experiment=ppo_ladder", "candidate=glob(*)", "tier=small"]
    assert registered_sweep_order(argv, CONF_DIR) == [
        "-m", "experiment=ppo_ladder", "candidate=lr1e4,vc0_25,ec0_001,clip0_1", "tier=small",
    ]  # fmt: skip
    # the one plan's jobs (what sweep.json lists) follow the same order
    plan = preflight.plan(argv, CONF_DIR)
    study_sweep_order(plan)
    candidates = [o for job in plan.jobs for o in job if o.startswith("candidate=")]
    assert candidates == [f"candidate={c}" for c in ("lr1e4", "vc0_25", "ec0_001", "clip0_1")]
    # a key given twice: Hydra's sweeper keeps its last override (ppo.seed=3 in every job)
    twice = ["-m", "experiment=ppo_ladder", "candidate=glob(*)", "ppo.seed=0,1", "ppo.seed=3"]
    plan = preflight.plan(twice, CONF_DIR)
    study_sweep_order(plan)
    assert [job[1:] for job in plan.jobs] == [
        [f"candidate={c}", "ppo.seed=3"] for c in ("lr1e4", "vc0_25", "ec0_001", "clip0_1")
    ]
    for unchanged in (
        ["experiment=ppo_ladder", "candidate=lr1e4"],
        ["-m", "experiment=ppo", "candidate=glob(*)"],
        ["-m", "arm=baseline,primary"],
    ):
        assert registered_sweep_order(unchanged, CONF_DIR) == unchanged

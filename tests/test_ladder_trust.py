"""How sure a ladder verdict is: intervals and the gate text, the trust section (v1 and v2),
the ppo_pathb_v2 gates on multi-seed fixture runs, and ``python -m prereg audit``.

Fixture run directories are written by hand as the runners leave them (no training): v2's
``metrics.csv`` has a ``seed`` column and its evals pool the training seeds
(``n_train_seeds``, ``n_success``), the contract with the multi-seed trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prereg.__main__ import main
from prereg.core.registration import load_registered, registration_hash
from prereg.core.stats import wilson_interval
from prereg.ppo import ladder_v2
from prereg.ppo.ladder import FAIL, NOT_REACHED, PASS, statement
from prereg.ppo.ladder_verdict import compute_verdict, render_markdown
from prereg.sweep.app import setup

setup()
V1 = load_registered("ppo_pathb_v1")
V2 = load_registered("ppo_pathb_v2")
STAGE3_V1 = "0.382 at p = 0.5, 0.339 at p = 0.7, 0.141 at p = 0.9, 0.013 at p = 0.97"


def metrics(
    n: int = 400,
    seeds: int = 1,
    log_std_slope: float = 0.0,
    noise: float = 0.0,
    ev: float = 0.9,
    entropy: float = 2.0,
    value_loss: float = 0.05,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """``n`` updates per training seed; log_std drifts by ``log_std_slope`` per update."""
    rng = np.random.default_rng(rng_seed)
    parts = []
    for s in range(seeds):
        u = np.arange(1, n + 1)
        part = pd.DataFrame(
            {
                "update": u,
                "entropy": np.full(n, entropy),
                "log_std": -0.3 + 0.01 * s + log_std_slope * u + rng.normal(0, noise, n),
                "value_loss": np.full(n, value_loss),
                "explained_variance": np.full(n, ev),
            }
        )
        if seeds > 1:
            part.insert(0, "seed", s)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def evaluation(
    k: int, seed_start: int, n_seeds: int = 32, trained: int = 1, per_seed: bool = True
) -> dict:
    """An eval summary; pooled over ``trained`` seeds as the multi-seed runner writes it (its
    ``n_seeds`` counts every episode, ``per_seed`` holds each seed's), or (``per_seed=False``)
    with ``n_seeds`` per training seed and ``n_train_seeds`` only."""
    n = n_seeds * trained
    ev = {"seed_start": seed_start, "n_seeds": n_seeds, "success_rate": k / n, "n_success": k}
    if trained > 1:
        ev["n_train_seeds"] = trained
        if per_seed:
            ks = [k // trained + (i < k % trained) for i in range(trained)]
            ev["n_seeds"] = n
            ev["per_seed"] = [
                {"train_seed": i, "seed_start": seed_start, "n_seeds": n_seeds,
                 "success_rate": ki / n_seeds, "n_success": ki}
                for i, ki in enumerate(ks)
            ]  # fmt: skip
    return ev


def write_run(sweep: Path, name: str, reg: dict, table: pd.DataFrame, k1: int, k3: int) -> Path:
    """A completed ladder run directory, as the runner leaves it."""
    trained = int(reg.get("num_seeds", 1))
    d = sweep / f"candidate={name}"
    (d / "logs").mkdir(parents=True)
    run = {
        "status": "completed", "experiment": "ppo_ladder", "registration": reg["name"],
        "registration_hash": registration_hash(reg),
        "job": {"choices": {"candidate": name, "experiment": "ppo_ladder"}, "overrides": []},
    }  # fmt: skip
    (d / "run.json").write_text(json.dumps(run))
    (d / "registration.json").write_text(json.dumps(reg))
    table.to_csv(d / "metrics.csv", index=False)
    for k, stage in ((k1, "stage1"), (k3, "stage3")):
        start = reg[stage]["seed_start"]
        ev = evaluation(k, start, reg[stage]["n_seeds"], trained)
        (d / "logs" / f"evaluation_seed_{start}.json").write_text(json.dumps(ev))
    summary = {
        "experiment": "ppo_ladder", "candidate": name, "variant": reg["variant"],
        "tier": reg["tier"], "segment": {"start_update": 0, "target_update": reg["updates"]},
    }  # fmt: skip
    (d / "summary.json").write_text(json.dumps(summary))
    return d


# ---------------------------------------------------------------------------- gate text
def test_a_check_prints_the_comparison_that_holds():
    fail = {"label": "x", "figure": 0.04633, "gate": "<= 0", "passed": False,
            "name": "log_std delta", "op": "<=", "threshold": 0.0}  # fmt: skip
    assert statement(fail) == "log_std delta 0.04633 > 0: FAIL"
    assert statement({**fail, "figure": -0.056, "passed": True}) == (
        "log_std delta -0.056 <= 0: PASS"
    )
    nan = {**fail, "name": "max value_loss", "figure": float("nan"), "threshold": 400.0}
    assert statement(nan) == "max value_loss nan not <= 400: FAIL"
    old = {"label": "entropy[-1]", "figure": 2.0, "gate": "< 2.28", "passed": True}
    assert statement(old) == "entropy[-1] 2 (gate < 2.28): PASS"  # verdict.json before


# ---------------------------------------------------------------------------- v1 verdict
def test_v1_verdict_shows_intervals_corrected_gate_text_and_the_trust_section(tmp_path):
    # lr1e4: log_std ends +0.046 above the window's start on a noisy plateau (the full-scale case)
    noisy = metrics(noise=0.02, rng_seed=3)
    lo = noisy.index[-50]
    noisy.loc[noisy.index[-1], "log_std"] = noisy.loc[lo, "log_std"] + 0.046
    write_run(tmp_path, "lr1e4", V1, noisy, 32, 32)
    write_run(tmp_path, "vc0_25", V1, metrics(log_std_slope=-1e-4), 16, 14)
    v = compute_verdict(tmp_path)
    assert v["decision"]["adopted"] == "vc0_25"
    md = render_markdown(v)
    assert "log_std delta 0.046 > 0: FAIL" in md and "log_std delta -0.0049 <= 0: PASS" in md
    assert "<= 0: FAIL" not in md
    assert "success_rate 1 (32/32, 95% CI 0.893-1.000) >= 0.4: PASS" in md
    assert "14/32, 95% CI 0.282-0.607" in md  # the stage-3 rate's interval
    assert "## How much this verdict can be trusted" in md
    assert f"fails by chance with probability {STAGE3_V1}" in md
    assert "0.133 at p = 0.3, 0.538 at p = 0.4, 0.892 at p = 0.5, 0.992 at p = 0.6" in md
    assert "**this gate cannot fail** on these runs" in md  # value losses 0.05 vs 400
    trust = v["trust"]["observed"]["candidates"]
    t = trust["lr1e4"]["trend"]
    assert t["windows"] == 300 and t["noise_decided"] and "**decided by noise**" in md
    assert 0.2 <= t["pass_fraction"] <= 0.8
    assert trust["vc0_25"]["trend"]["pass_fraction"] == 1.0
    assert "the log_std test was **decided by noise** for lr1e4;" in md
    assert "Stage 2's critic gate, value_loss <= 400 in every window update;" in md
    assert trust["lr1e4"]["stage3"]["false_fail_probability"] == 0.0  # 32/32 twice
    s3 = trust["vc0_25"]["stage3"]
    assert s3["rate"] == pytest.approx(30 / 64) and 0.3 < s3["false_fail_probability"] < 0.4
    assert v["trust"]["observed"]["value_loss"]["largest_logged"] == pytest.approx(0.05)


# ---------------------------------------------------------------------------- v2 gates
def grade_v2(table=None, k1=140, k3=135, reg=V2, trained=5):
    table = metrics(seeds=5, noise=0.005) if table is None else table
    return ladder_v2.grade(
        table, evaluation(k1, 10000, trained=trained), evaluation(k3, 20000, trained=trained), reg
    )


def test_v2_passes_a_steady_five_seed_candidate():
    g = grade_v2()
    assert [s.result for s in g.stages] == [PASS, PASS, PASS], g


@pytest.mark.parametrize(
    ("kw", "stage", "check"),
    [
        # 70/160 = 0.44 >= 0.40 would pass v1's point test; its Wilson lower bound 0.36 does not
        ({"k1": 70, "k3": 70}, 1, 0),
        ({"table": metrics(seeds=5, noise=0.005, log_std_slope=2e-3)}, 2, 1),  # log_std rising
        ({"table": metrics(seeds=5, noise=0.005, ev=0.1)}, 2, 2),  # the critic explains little
        ({"table": metrics(seeds=5, entropy=2.5)}, 2, 0),
        ({"k1": 150, "k3": 110}, 3, 0),  # success moved with the eval seeds
    ],
)
def test_v2_fails_each_gate(kw, stage, check):
    g = grade_v2(**kw)
    s = g.stages[stage - 1]
    assert s.result == FAIL and not s.checks[check].passed
    assert all(x.result == NOT_REACHED for x in g.stages[stage:])


def test_v2_slope_pools_seeds_with_their_own_levels():
    # every seed flat at its own level: a pooled line through them all would not be flat
    table = metrics(seeds=5, noise=0.002)
    table["log_std"] += table["seed"] * 0.5
    s2 = grade_v2(table=table).stages[1]
    assert s2.result == PASS and abs(s2.checks[1].figure) < 1e-4


def test_v2_reads_pooled_evals_with_or_without_per_seed_entries():
    for per_seed in (True, False):
        ev1 = evaluation(140, 10000, trained=5, per_seed=per_seed)
        s1 = ladder_v2.stage1(ev1, V2["stage1"], 5)
        assert s1.checks[0].count == (140, 160) and s1.result == PASS


def test_v2_refuses_single_seed_inputs():
    with pytest.raises(ladder_v2.NotGradable, match="pools 1 training seed"):
        grade_v2(trained=1)
    with pytest.raises(ladder_v2.NotGradable, match="seed"):
        ladder_v2.stage2(metrics(seeds=1), V2["stage2"], 5)


def test_v2_verdict_grades_pooled_runs_and_reports_its_trust(tmp_path):
    write_run(tmp_path, "lr1e4", V2, metrics(seeds=5, noise=0.005, ev=0.2), 140, 135)
    write_run(tmp_path, "vc0_25", V2, metrics(seeds=5, noise=0.005), 140, 135)
    v = compute_verdict(tmp_path)
    assert v["registration"]["registered"] and v["decision"]["adopted"] == "vc0_25"
    assert [r["result"] for r in v["candidates"][:2]] == ["FAIL (Stage 2)", "ADOPTED"]
    md = render_markdown(v)
    assert "mean explained_variance 0.2 < 0.5: FAIL" in md
    assert "success lower bound 0.8" in md and "140/160, 95% CI" in md
    assert "two-proportion p-value" in md and "PASS iff p >= 0.05" in md
    assert "v1's value-loss gate (not a v2 gate)" in md
    t = v["trust"]["observed"]["candidates"]["vc0_25"]
    assert t["trend"]["pass_fraction"] == 1.0 and not t["trend"]["noise_decided"]
    assert t["entropy"] == {"pass_fraction": 1.0, "updates": 300}  # updates, not (update, seed)
    assert 0.03 < t["stage3"]["false_fail_probability"] < 0.07


def test_v2_composes_with_five_seeds_beside_the_unchanged_v1():
    from hydra.types import RunMode

    from prereg.core.checks import typed_registration
    from prereg.core.registration import CONF_DIR, to_plain
    from prereg.ppo.config import PPORegistration
    from prereg.sweep.precheck import _loader

    def compose(*o):
        return _loader(CONF_DIR).load_configuration("config", list(o), run_mode=RunMode.RUN)

    cfg = compose("experiment=ppo_ladder", "registration=ppo_pathb_v2", "candidate=lr1e4")
    assert cfg.ppo.num_seeds == 5
    assert to_plain(typed_registration(cfg, PPORegistration)) == V2
    assert compose("experiment=ppo_ladder", "candidate=lr1e4").ppo.num_seeds == 1
    from prereg.core.errors import ConfigError
    from prereg.sweep.validate import known_keys

    known_keys(cfg)  # v2's own keys are known (its schema, not v1's)
    bad = compose("experiment=ppo_ladder", "registration=ppo_pathb_v2", "candidate=lr1e4",
                  "+registration.stage2.bogus=1")  # fmt: skip
    with pytest.raises(ConfigError, match=r"registration\.stage2\.bogus: unknown key"):
        known_keys(bad)


# ---------------------------------------------------------------------------- audit
def test_audit_prints_the_stage3_false_fail_probabilities(capsys):
    assert main(["audit", "ppo_pathb_v1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## How much this verdict can be trusted")
    assert f"fails by chance with probability {STAGE3_V1}" in out
    assert main(["audit", "ppo_pathb_v2"]) == 0
    assert "0.050 at p = 0.5" in capsys.readouterr().out


def test_audit_refuses_an_unknown_name_in_one_line(capsys):
    assert main(["audit", "ppo_pathb_v9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ppo_pathb_v1, ppo_pathb_v2" in err


def test_audit_of_a_sweep_adds_what_its_runs_show(tmp_path, capsys):
    write_run(tmp_path, "lr1e4", V1, metrics(), 20, 19)
    assert main(["audit", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        STAGE3_V1 in out
        and "What these runs show:" in out
        and "lr1e4: Stage-1 success 20/32" in out
    )


def test_plots_draw_intervals_seed_bands_and_the_comparison_that_holds(tmp_path):
    from prereg.ppo.ladder_plots import plot_curves, plot_stage_table
    from prereg.ppo.ladder_verdict import load_tables

    table = metrics(seeds=5, noise=0.005, ev=0.2).assign(env_steps=lambda f: f["update"] * 8192)
    write_run(tmp_path, "lr1e4", V2, table, 140, 135)
    v = compute_verdict(tmp_path)
    tables, reg = load_tables(v)
    fig = plot_curves(v, tables, reg)
    ax_s, _, ax_l, ax_v = fig.axes[:4]
    assert ax_v.get_ylabel() == "explained_variance (critic)"
    ys = [list(ln.get_ydata()) for ln in ax_s.get_lines()]
    bar = [y for y in ys if len(y) == 2 and y[0] != y[1]]  # not the (flat) gate line
    assert len(bar) == 1 and tuple(bar[0]) == pytest.approx(wilson_interval(140, 160))
    assert ax_l.collections  # the band over the five seeds
    texts = [t.get_text() for t in plot_stage_table(v).axes[0].texts]
    assert any("mean explained_variance 0.2 < 0.5" in t for t in texts)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("registration.stage3.alpha=1.5", "registration.stage3.alpha: must lie in (0, 1), got 1.5"),
        ("registration.stage2.window=2", "registration.stage2.window: must be an integer >= 3"),
        ("ppo.num_seeds=2", "ppo.num_seeds: ppo_pathb_v2 grades 5 training seeds per candidate"),
    ],
)
def test_bad_v2_input_is_refused_in_one_line_before_any_compute(override, message):
    from hydra.types import RunMode

    from prereg.core.errors import ConfigError
    from prereg.core.registration import CONF_DIR
    from prereg.ppo.validate import validate_ppo_ladder
    from prereg.sweep.precheck import _loader

    overrides = ["experiment=ppo_ladder", "registration=ppo_pathb_v2", "candidate=lr1e4", override]
    cfg = _loader(CONF_DIR).load_configuration("config", overrides, run_mode=RunMode.RUN)
    with pytest.raises(ConfigError) as err:
        validate_ppo_ladder(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)

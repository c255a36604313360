"""The verdict plots: PNGs written beside verdict.md, referenced from it, real images; a plot that
cannot be drawn never breaks the verdict.  Run directories are fabricated (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from prereg.core.registration import load_registered, registration_hash
from prereg.exp9 import analysis
from prereg.exp9.plots import PAIR_RATIOS, TRAJECTORIES
from prereg.exp9.verdict import write_verdict as write_exp9_verdict
from prereg.ppo.ladder_plots import CURVES, STAGES
from prereg.ppo.ladder_verdict import write_verdict as write_ladder_verdict
from prereg.reports.verdicts import write_any_verdict

EXP9_PNGS = [f"plots/{TRAJECTORIES}", f"plots/{PAIR_RATIOS}"]
LADDER_PNGS = [f"plots/{CURVES}", f"plots/{STAGES}"]


def _write(d: Path, name: str, obj: Any) -> None:
    (d / name).write_text(json.dumps(obj))


def _run_json(reg: dict, experiment: str, choices: dict, status: str = "completed") -> dict:
    return {
        "job": {"choices": {"experiment": experiment, **choices}, "overrides": []},
        "status": status,
        "reason": None if status == "completed" else f"{status} in the test",
        "experiment": experiment,
        "registration": reg["name"],
        "registration_hash": registration_hash(reg),
    }


def exp9_metrics(arm: str, lam: float, cell_index: int, steps: int) -> pd.DataFrame:
    """A plausible exp9 trajectory: KL decays to a floor that rises with lambda; rho decays
    with the gradient unless lambda holds the signal up (as the real runs do)."""
    t = np.arange(steps, dtype=float)
    kl0 = 0.3 + 0.2 * cell_index
    floor = 0.005 + 2.0 * lam
    kl = floor + (kl0 - floor) * np.exp(-t / (25.0 + 5 * cell_index))
    signal = 0.1 * np.exp(-t / 30.0) + 300.0 * lam * 1e-3
    noise = 100.0 + 3.0 * t + 5.0 * np.sin(t / 7.0)
    rho = signal / noise
    return pd.DataFrame(
        {
            "step": t.astype(int),
            "kl": kl,
            "rho": rho,
            "signal": signal,
            "noise": noise,
            "rho_proj": rho * 10,
            "noise_proj": noise / 50,
            "loss": kl - lam * np.log(rho),
            "grad_norm": np.sqrt(signal),
        }
    )


def make_exp9_sweep(root: Path, steps: int = 200, skip: tuple[str, ...] = ()) -> Path:
    """A 12-run exp9 sweep dir shaped like ``run.py -m arm=... 'cell=glob(*)'`` leaves it."""
    reg = dict(load_registered("exp9_v1"), step_cap=steps)
    diag_steps = analysis.diagnostic_steps(steps, reg["diagnostic_steps"])
    for ci, cell in enumerate(reg["cells"]):
        for arm, lam in reg["lambdas"].items():
            if f"{arm}/{cell}" in skip:
                continue
            d = root / f"arm={arm},cell={cell}"
            d.mkdir(parents=True)
            _write(d, "run.json", _run_json(reg, "exp9", {"arm": arm, "cell": cell}))
            _write(d, "registration.json", reg)
            m = exp9_metrics(arm, lam, ci, steps)
            m.to_csv(d / "metrics.csv", index=False)
            fid = {"rel_err": 1e-15, "gap": 0.1, "gate": 1e-12, "pass": True}
            fd = {"worst_rel_err": 1e-10, "grad_norm": 0.3, "applies": True, "gate": 1e-6,
                  "pass": True}  # fmt: skip
            summary = {
                "experiment": "exp9", "arm": arm, "cell": cell, "lambda": lam,
                "steps": steps, "initial_kl": float(m["kl"].iloc[0]),
                "crossings": analysis.crossings(m, reg["thresholds"]),
                "fidelity": {"first": {"step": 0, **fid}, "last": {"step": steps - 1, **fid}},
                "fd_check": fd,
            }  # fmt: skip
            _write(d, "summary.json", summary)
            _write(d, "fd_check.json", fd)
            diag = {"step": diag_steps, "detailed_balance": 1e-18, "row_sum": 2e-16,
                    "symmetry": 4e-17, "lambda_2": 0.9, "gap": 0.1, "inv_gap_power": 10.0,
                    "conductance": 0.1, "cheeger_lower": 0.05, "cheeger_upper": 0.45,
                    "cheeger_margin": 0.05, "failed": ""}  # fmt: skip
            pd.DataFrame(diag).to_csv(d / "diagnostics.csv", index=False)
    return root


def ladder_metrics(n: int, entropy_end: float, value_loss: float, seed: int) -> pd.DataFrame:
    """A plausible PPO metrics.csv: one row per update of 8192 env steps."""
    rng = np.random.default_rng(seed)
    u = np.arange(1, n + 1, dtype=float)
    frac = u / n
    entropy = 2.84 + (entropy_end - 2.84) * frac + rng.normal(0, 0.01, n)
    return pd.DataFrame(
        {
            "update": u.astype(int),
            "env_steps": (u * 8192).astype(int),
            "mean_reward": 0.1 * frac,
            "episode_return": 20 * frac,
            "success_rate": np.clip(0.6 * frac + rng.normal(0, 0.03, n), 0, 1),
            "entropy": entropy,
            "log_std": (entropy - 2.84) / 2,
            "value_loss": value_loss * (1 + 50 * np.exp(-u / 10)) * (1 + rng.normal(0, 0.1, n)),
            "policy_loss": rng.normal(0, 0.01, n),
            "approx_kl": 0.01,
            "clipfrac": 0.1,
            "explained_variance": 0.9 * frac,
            "sps": 20000.0,
        }
    )


LADDER_SPECS = {  # candidate: (status, stage-1 success, stage-3 success, entropy end, value loss)
    "lr1e4": ("completed", 0.5, 0.45, 2.6, 100.0),  # Stage 2 fails (entropy)
    "vc0_25": ("completed", 0.25, 0.3, 2.0, 100.0),  # Stage 1 fails
    "ec0_001": ("completed", 0.5, 0.4375, 2.0, 80.0),  # adopted
    "clip0_1": ("skipped", None, None, None, None),
}


def make_ladder_sweep(root: Path, updates: int = 120, specs: dict | None = None) -> Path:
    """A 4-candidate ladder sweep dir shaped like ``experiment=ppo_ladder 'candidate=glob(*)'``."""
    reg = load_registered("ppo_pathb_v1")
    for i, (name, (status, s1, s3, ent, vl)) in enumerate((specs or LADDER_SPECS).items()):
        d = root / f"candidate={name}"
        (d / "logs").mkdir(parents=True)
        _write(d, "run.json", _run_json(reg, "ppo_ladder", {"candidate": name}, status))
        _write(d, "registration.json", reg)
        if status != "completed":
            continue
        ladder_metrics(updates, ent, vl, i).to_csv(d / "metrics.csv", index=False)
        for start, rate in ((10000, s1), (20000, s3)):
            ev = {"seed_start": start, "n_seeds": 32, "success_rate": rate}
            ev |= {"mean_terminal_alignment": 0.9, "mean_steps": 120.0, "mean_return": 30.0}
            _write(d / "logs", f"evaluation_seed_{start}.json", ev)
        segment = {"init_from": None, "start_update": 0, "target_update": reg["updates"]}
        summary = {"experiment": "ppo_ladder", "candidate": name, "variant": reg["variant"],
                   "tier": reg["tier"], "updates": updates, "env_steps": updates * 8192,
                   "segment": segment}  # fmt: skip
        _write(d, "summary.json", summary)
    return root


def assert_real_png(path: Path, min_kb: float = 15) -> None:
    """A valid PNG above ``min_kb`` that is not one flat colour."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > min_kb * 1024, (path, len(data))
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 300
    assert float(pixels[..., :3].var()) > 1e-3, f"{path} is (nearly) one flat colour"


def assert_plots(sweep: Path, md: str, pngs: list[str]) -> None:
    assert (sweep / "verdict.md").read_text() == md
    for rel in pngs:
        assert f"]({rel})" in md, f"{rel} not referenced from verdict.md"
        assert_real_png(sweep / rel)


def test_exp9_verdict_writes_its_plots_and_links_them(tmp_path):
    sweep = make_exp9_sweep(tmp_path / "sw")
    md = write_exp9_verdict(sweep)
    assert "## Plots" in md and "not drawn" not in md
    assert_plots(sweep, md, EXP9_PNGS)
    assert json.loads((sweep / "verdict.json").read_text())["runs"]["completed"] == 12


def test_the_cli_writer_draws_the_same_plots(tmp_path):
    sweep = make_exp9_sweep(tmp_path / "sw")
    md = write_any_verdict(sweep)
    assert_plots(sweep, md, EXP9_PNGS)


def test_a_half_finished_exp9_sweep_still_gets_its_verdict_and_what_can_be_drawn(tmp_path):
    skip = tuple(f"{a}/{c}" for a in ("primary", "secondary") for c in ("n5m2", "n5m3"))
    sweep = make_exp9_sweep(tmp_path / "sw", skip=skip)
    (sweep / "arm=baseline,cell=n4m2" / "metrics.csv").write_text("")  # half-written
    md = write_exp9_verdict(sweep)
    assert "Outcome 0" in md and "Missing runs" in md
    assert_plots(sweep, md, EXP9_PNGS)


def test_a_refused_verdict_skips_the_plots_with_a_note_and_removes_stale_ones(tmp_path):
    sweep = make_exp9_sweep(tmp_path / "sw")
    write_exp9_verdict(sweep)
    assert (sweep / EXP9_PNGS[0]).exists()
    reg = dict(load_registered("exp9_v1"), lr=0.5)  # a second registration: pooling refused
    run = sweep / "arm=primary,cell=n4m2"
    (run / "run.json").write_text(json.dumps(_run_json(reg, "exp9", {"arm": "primary"})))
    md = write_exp9_verdict(sweep)
    assert "**REFUSED**" in md
    assert md.count("*not drawn* — verdict refused") == 2
    assert not any((sweep / rel).exists() for rel in EXP9_PNGS)


def test_an_empty_sweep_dir_writes_a_verdict_without_plots(tmp_path):
    md = write_exp9_verdict(tmp_path)
    assert "REFUSED" in md and "not drawn" in md and (tmp_path / "verdict.md").exists()


def test_a_plot_that_raises_becomes_a_note(tmp_path, monkeypatch):
    from prereg.exp9 import plots as plots_exp9

    def boom(*_: Any) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(plots_exp9, "plot_pair_ratios", boom)
    sweep = make_exp9_sweep(tmp_path / "sw")
    md = write_exp9_verdict(sweep)
    assert "*not drawn* — RuntimeError: kaput" in md
    assert_plots(sweep, md, EXP9_PNGS[:1])


def test_ladder_verdict_writes_its_plots_and_links_them(tmp_path):
    sweep = make_ladder_sweep(tmp_path / "sw")
    md = write_ladder_verdict(sweep)
    assert "**Adopted: ec0_001" in md and "not drawn" not in md
    assert_plots(sweep, md, LADDER_PNGS)


@pytest.mark.parametrize(
    "specs",
    [
        {"lr1e4": ("failed", None, None, None, None), "vc0_25": ("completed", 0.5, 0.5, 2, 9)},
        {"lr1e4": ("running", None, None, None, None)},
    ],
)
def test_a_half_finished_ladder_sweep_still_gets_its_verdict(tmp_path, specs):
    sweep = make_ladder_sweep(tmp_path / "sw", specs=specs)
    md = write_ladder_verdict(sweep)
    assert "No verdict yet" in md
    assert f"]({LADDER_PNGS[1]})" in md  # the stage table is always drawable
    assert_real_png(sweep / LADDER_PNGS[1], min_kb=8)
    if len(specs) == 1:  # no metrics anywhere: the curves are skipped with a note
        assert "*not drawn* — no candidate has a readable metrics.csv yet" in md
    else:
        assert_real_png(sweep / LADDER_PNGS[0])

"""The pre-registered exp9 verdict (P1-P4, outcome table, reported-only tables) from disk.

Everything is recomputed from the run directories of a sweep (``metrics.csv``,
``diagnostics.csv``, ``summary.json``, ``fd_check.json``, ``run.json``), so the verdict
printed at the end of a multirun and ``python -m prereg verdict <dir>`` agree.

Why one file of ~600 lines: every gate (P1-P4, incomplete and exploratory states, exp9_v1's
single verdict arm and exp9_v2's every augmented arm) reads the same loaded runs and records;
split, each part would re-load or re-key them. The maths it reads lives in
:mod:`prereg.exp9.analysis` and :mod:`prereg.exp9.trust`, the Markdown in
:mod:`prereg.exp9.verdict_md`, the plots in :mod:`prereg.exp9.plots`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prereg.core.exploration import mark as mark_exploratory
from prereg.core.registration import registration_status
from prereg.core.rundirs import RunInfo, find_runs
from prereg.core.verdict_files import write_verdict_files
from prereg.exp9 import analysis, trust
from prereg.exp9 import arms as arms_mod
from prereg.exp9.config import Exp9Registration
from prereg.exp9.verdict_md import (  # noqa: F401 - re-exported: the verdict's text
    count_text,
    exploratory_line,
    render_markdown,
)

OUTCOMES = {
    1: "steers: P1, P2 and P3 pass and P4 is verified",
    2: "steers but breaks KL: P2 passes, P3 fails",
    3: "feasible, does not steer: P1 and P3 pass, P4 verified, P2 fails",
    4: "neither steers nor keeps KL: P2 and P3 fail",
    0: "no verdict: P1 fails or a run HALTed (or the set is incomplete)",
}


#: Statuses of a run that has finished (its files are final); others have not run (yet).
FINISHED = ("completed", "failed", "halted")


def gate_result(ok: bool, definite_fail: bool, have: int, need: int, unit: str = "runs") -> str:
    """PASS/FAIL of a gate, or ``incomplete (k of n runs)`` when its inputs are incomplete.

    A failure already seen in the inputs that exist (a non-finite run, a failed comparison) is a
    FAIL whatever is missing; otherwise missing inputs make the gate incomplete, not FAIL.
    """
    if definite_fail:
        return "FAIL"
    if have < need:
        return f"incomplete ({have} of {need} {unit})"
    return "PASS" if ok else "FAIL"


def _combine(results: Sequence[str]) -> str:
    """A check's result from its gates' results: FAIL, else the first incomplete, else PASS."""
    if "FAIL" in results:
        return "FAIL"
    return next((r for r in results if r.startswith("incomplete")), "PASS")


def _dotted(reg: Any, key: str) -> Any:
    for part in key.split("."):
        reg = reg.get(part, "<absent>") if isinstance(reg, dict) else "<absent>"
    return reg


def exploratory(status: dict[str, Any], reg: dict[str, Any]) -> dict[str, Any]:
    """``{"is": bool, "why": "step_cap 100"}``: whether the runs' registration is not the frozen
    file's (a sweep with ``registration.step_cap=100`` is exploratory, not the registered test)."""
    why = [f"{k} {_dotted(reg, k)}" for k in status["differing_constants"]]
    return {"is": not status["registered"], "why": ", ".join(why)}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _load(run: RunInfo) -> dict[str, Any]:
    metrics = None
    if (run.path / "metrics.csv").exists():
        try:
            metrics = pd.read_csv(run.path / "metrics.csv")
        except (OSError, ValueError, pd.errors.EmptyDataError):
            metrics = None
    diag = None
    if (run.path / "diagnostics.csv").exists():
        try:
            diag = pd.read_csv(run.path / "diagnostics.csv")
        except (OSError, ValueError, pd.errors.EmptyDataError):
            diag = None
    return {
        "info": run,
        "metrics": metrics,
        "diag": diag,
        "fd": run.read_json("fd_check.json"),
        "registration": run.read_json("registration.json"),
    }


def _select_registration(runs: list[RunInfo]) -> tuple[str | None, dict[str, list[str]]]:
    by_hash: dict[str, list[str]] = {}
    for r in runs:
        by_hash.setdefault(str(r.registration_hash), []).append(r.path.name)
    hashes = [h for h in by_hash if h != "None"]
    return (hashes[0] if len(hashes) == 1 else None), by_hash


def _by_key(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Loaded runs keyed by (arm, cell), from the summary where present, else the job's choices."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for x in runs:
        ch = x["info"].choices
        key = (ch.get("arm"), ch.get("cell"))
        if x["info"].summary:
            key = (x["info"].summary.get("arm", key[0]), x["info"].summary.get("cell", key[1]))
        by_key[key] = x
    return by_key


def load_tables(
    sweep_dir: Path, registration_hash: str
) -> tuple[dict[tuple[str, str], pd.DataFrame], dict[str, Any] | None]:
    """Each (arm, cell) run's ``metrics.csv`` for one registration (the verdict's own reader),
    and that registration (``registration.json`` of the first run that has one)."""
    runs = [
        _load(r)
        for r in find_runs([sweep_dir])
        if (r.run or {}).get("experiment", "exp9") == "exp9"
        and r.registration_hash == registration_hash
    ]
    tables = {
        k: x["metrics"]
        for k, x in _by_key(runs).items()
        if x["metrics"] is not None and not x["metrics"].empty
    }
    return tables, next((x["registration"] for x in runs if x["registration"]), None)


def _table_of(x: dict[str, Any] | None) -> pd.DataFrame | None:
    """A loaded run's metrics table; None when it has none (or an empty one)."""
    return x["metrics"] if x and x["metrics"] is not None and not x["metrics"].empty else None


ByKey = dict[tuple[str, str], dict[str, Any]]


def arm_pairs(by_key: ByKey, reg: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    """P2's pairs of ``arm`` against the baseline: per (cell, eps), the matched crossings and
    the ratios of rho, of its numerator (signal) and of its denominator (noise)."""
    rows = []
    for c in reg["cells"]:
        for eps in reg["thresholds"]:
            ta, tb = (
                _table_of(by_key.get((arm, c))),
                _table_of(by_key.get((reg["baseline_arm"], c))),
            )
            ca = analysis.crossings(ta, [eps])[str(eps)] if ta is not None else None
            cb = analysis.crossings(tb, [eps])[str(eps)] if tb is not None else None
            rows.append(
                {
                    "cell": c,
                    "eps": eps,
                    "t_arm": ca and int(ca["step"]),
                    "t_baseline": cb and int(cb["step"]),
                    "ratio": _ratio(ca and ca["rho"], cb and cb["rho"]),
                    "numerator_ratio": _ratio(ca and ca["signal"], cb and cb["signal"]),
                    "denominator_ratio": _ratio(ca and ca["noise"], cb and cb["noise"]),
                }
            )
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pairs drawn (both crossings), their median ratio and how many have r > 1."""
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    return {
        "n_pairs": len(ratios),
        "median_ratio": statistics.median(ratios) if ratios else None,
        "count_gt_1": sum(r > 1 for r in ratios),
    }


def p2_check(by_key: ByKey, reg: dict[str, Any], arm: str, finished: Any) -> dict[str, Any]:
    """P2 for ``arm`` against the baseline: median ratio vs the steering bar AND the count of
    r > 1 vs the consistency count (``finished(key)``: the run if it finished, else None)."""
    cells, thresholds = list(reg["cells"]), reg["thresholds"]
    prim = arm_pairs(by_key, reg, arm)
    s = summarise(prim)
    n_pairs = len(cells) * len(thresholds)
    median_ok = s["median_ratio"] is not None and s["median_ratio"] >= reg["steering_bar"]
    count_ok = s["count_gt_1"] >= reg["consistency_count"]
    p2 = s["n_pairs"] == n_pairs and median_ok and count_ok
    p2_keys = [(a, c) for c in cells for a in (arm, reg["baseline_arm"])]
    p2_have = sum(finished(k) is not None for k in p2_keys)
    return {
        "pairs": prim,
        "n_pairs": s["n_pairs"],
        "expected_pairs": n_pairs,
        "median_ratio": s["median_ratio"],
        "steering_bar": reg["steering_bar"],
        "median_pass": median_ok,
        "count_gt_1": s["count_gt_1"],
        "consistency_count": reg["consistency_count"],
        "count_pass": count_ok,
        "median_result": gate_result(median_ok, False, p2_have, len(p2_keys)),
        "count_result": gate_result(count_ok, False, p2_have, len(p2_keys)),
        "pass": p2,
        "result": gate_result(p2, False, p2_have, len(p2_keys)),
    }


def outcome_of(
    p1: bool, p2: bool, p3: bool, p4: bool, out: dict[str, Any], n_expected: int
) -> dict[str, Any]:
    """The registered outcome table: ``{"number", "sentence"}`` (0 says why there is none)."""
    halted, not_run = out["runs"]["halted"], out["runs"]["not_run"]
    if not p1 or halted:
        num = 0
    elif p2 and p3 and p4:
        num = 1
    elif p2 and not p3:
        num = 2
    elif p3 and p4 and not p2:
        num = 3
    elif not p2 and not p3:
        num = 4
    else:
        num = 0
    sentence = OUTCOMES[num]
    if num == 0:
        n_done = n_expected - len(not_run)
        sentence = (
            f"no verdict: {len(halted)} run(s) HALTed ({', '.join(halted)})"
            if halted
            else "no verdict: P1 fails"
            if out["P1"]["result"] == "FAIL"
            else f"no verdict: the set is incomplete ({n_done} of {n_expected} runs)"
            if not_run
            else OUTCOMES[0]
        )
    return {"number": num, "sentence": sentence}


def finals_rows(
    by_key: ByKey, reg: dict[str, Any], arm: str, pairs: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per cell: ``arm``'s rho ratio to the baseline at the last step and over the final
    window, flagged when it exceeds every matched ratio of the cell (the finals trap)."""
    rows = []
    for c in reg["cells"]:
        xa, xb = by_key.get((arm, c)), by_key.get((reg["baseline_arm"], c))
        if not (xa and xb and xa["metrics"] is not None and xb["metrics"] is not None):
            continue
        fa = analysis.finals(xa["metrics"], reg["finals_window"])
        fb = analysis.finals(xb["metrics"], reg["finals_window"])
        final_ratio = _ratio(fa["last_rho"], fb["last_rho"])
        matched = [p["ratio"] for p in pairs if p["cell"] == c and p["ratio"] is not None]
        rows.append(
            {
                "cell": c,
                "final_ratio": final_ratio,
                "final_median_ratio": _ratio(fa["median_rho"], fb["median_rho"]),
                "max_matched_ratio": max(matched) if matched else None,
                "finals_trap": bool(
                    final_ratio is not None and matched and final_ratio > max(matched)
                ),
            }
        )
    return rows


def _monotone(meds: Sequence[tuple[float, float | None]]) -> bool | None:
    """Whether the medians, sorted by lambda, are monotone (None if one is missing)."""
    if not all(m is not None for _, m in meds):
        return None
    vals = [m for _, m in sorted(meds)]
    pairs = list(zip(vals, vals[1:], strict=False))
    return all(x <= y for x, y in pairs) or all(x >= y for x, y in pairs)


def trust_section(
    by_key: ByKey, reg: dict[str, Any], p2s: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """verdict.json's ``trust``: per tested arm, the P2 pairs crossed before the aux term has
    acted and the ratios on a window around each crossing (:mod:`prereg.exp9.trust`)."""
    out: dict[str, Any] = {"early_steps": trust.EARLY_STEPS, "window": trust.WINDOW, "arms": {}}
    for arm, p2 in p2s.items():
        rows = [
            trust.pair_trust(
                p,
                _table_of(by_key.get((arm, p["cell"]))),
                _table_of(by_key.get((reg["baseline_arm"], p["cell"]))),
            )
            for p in p2["pairs"]
        ]
        out["arms"][arm] = trust.arm_trust(rows, reg["steering_bar"], reg["consistency_count"])
    return out


def _generalised(
    out: dict[str, Any], by_key: ByKey, reg: dict[str, Any], p2s: dict[str, Any], p1: bool
) -> None:
    """exp9_v2's verdict (``verdict_arm: all``): P3 and an outcome for each augmented arm
    against the baseline (P1 and P4 are the whole set's), and the dose-response across all
    lambdas (reported)."""
    base, p4, runs = reg["baseline_arm"], out["P4"]["verified"], out["runs"]
    n_expected = runs["expected"]
    out["P3"]["arms"], out["outcome"] = {}, {"by_arm": {}}
    dose = []
    for arm, p2 in p2s.items():
        mine = [r for r in out["P3"]["crossings"] if r["run"].split("/")[0] in (arm, base)]
        not_crossed = [f"{r['run']}@{r['eps']}" for r in mine if r["step"] is None]
        missing = [k for k in runs["not_run"] if k.split("/")[0] in (arm, base)]
        need = 2 * len(reg["cells"])
        p3 = not missing and not not_crossed
        out["P3"]["arms"][arm] = {
            "not_crossed": not_crossed,
            "missing_runs": missing,
            "pass": p3,
            "result": gate_result(p3, bool(not_crossed), need - len(missing), need),
        }
        out["outcome"]["by_arm"][arm] = outcome_of(p1, p2["pass"], p3, p4, out, n_expected)
        finals = finals_rows(by_key, reg, arm, p2["pairs"])
        dose.append(
            {
                "arm": arm,
                "lambda": arms_mod.arm_spec(reg, arm).lam,
                "form": arms_mod.arm_spec(reg, arm).form,
                "median_ratio": p2["median_ratio"],
                "count_gt_1": p2["count_gt_1"],
                "n_pairs": p2["n_pairs"],
                "median_numerator_ratio": _median([p["numerator_ratio"] for p in p2["pairs"]]),
                "median_denominator_ratio": _median([p["denominator_ratio"] for p in p2["pairs"]]),
                "median_final_kl": _final_kl(by_key, reg, arm),
                "p3": out["P3"]["arms"][arm]["result"],
                "finals": finals,
            }
        )
    by_arm = out["outcome"]["by_arm"]
    out["outcome"]["number"] = None  # one outcome per arm
    out["outcome"]["sentence"] = "; ".join(f"{a}: Outcome {o['number']}" for a, o in by_arm.items())
    rho = [(0.0, 1.0)] + [(d["lambda"], d["median_ratio"]) for d in dose if d["form"] == "rho"]
    out["reported"] = {
        "dose_response": {
            "baseline_final_kl": _final_kl(by_key, reg, base),
            "rows": dose,
            "monotone_in_lambda_rho": _monotone(rho),
        },
    }


def _median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _final_kl(by_key: ByKey, reg: dict[str, Any], arm: str) -> float | None:
    """The arm's final-window median KL, median over the cells it ran (the KL it pays)."""
    tables = [_table_of(by_key.get((arm, c))) for c in reg["cells"]]
    w = reg["finals_window"]
    return _median([analysis.finals(t, w)["median_kl"] for t in tables if t is not None])


def compute_verdict(sweep_dir: Path) -> dict[str, Any]:
    """The full verdict as a JSON-able dict (see module docstring)."""
    all_runs = [
        r for r in find_runs([sweep_dir]) if (r.run or {}).get("experiment", "exp9") == "exp9"
    ]
    out: dict[str, Any] = {"experiment": "exp9", "sweep_dir": str(sweep_dir)}
    chosen, by_hash = _select_registration(all_runs)
    if chosen is None:
        out["refused"] = (
            "no exp9 run with a registration hash found"
            if not [h for h in by_hash if h != "None"]
            else "runs of different registrations cannot be pooled: "
            + "; ".join(f"hash {h}: {', '.join(sorted(v))}" for h, v in sorted(by_hash.items()))
        )
        out["outcome"] = {"number": 0, "sentence": "no verdict: " + out["refused"]}
        return out
    runs = [_load(r) for r in all_runs if r.registration_hash == chosen]
    reg = next((x["registration"] for x in runs if x["registration"]), None)
    if reg is None:
        out["refused"] = "registration.json missing from every run"
        out["outcome"] = {"number": 0, "sentence": "no verdict: " + out["refused"]}
        return out
    out["registration"] = registration_status(reg, chosen, Exp9Registration)
    arms, cells = list(reg["lambdas"]), list(reg["cells"])
    by_key = _by_key(runs)
    expected = [(a, c) for c in cells for a in arms]
    missing = [f"{a}/{c}" for a, c in expected if (a, c) not in by_key]
    status = {f"{a}/{c}": by_key[(a, c)]["info"].status for a, c in expected if (a, c) in by_key}
    not_done = {
        k: f"{s}: {by_key[tuple(k.split('/'))]['info'].reason}"
        for k, s in status.items()
        if s != "completed"
    }
    not_run = missing + [k for k, s in status.items() if s not in FINISHED]
    explore = exploratory(out["registration"], reg)
    out["exploratory"] = mark_exploratory(explore, [r.run for r in all_runs])  # optuna runs
    out["runs"] = {
        "expected": len(expected),
        "completed": sum(s == "completed" for s in status.values()),
        "finished": sum(s in FINISHED for s in status.values()),
        "missing": missing,
        "not_run": not_run,
        "not_completed": not_done,
        "halted": [k for k, s in status.items() if s == "halted"],
    }

    def finished(key: tuple[str, str]) -> dict[str, Any] | None:
        """The loaded run of (arm, cell) if it finished (completed, failed, halted)."""
        x = by_key.get(key)
        return x if x is not None and x["info"].status in FINISHED else None

    gates = reg["gates"]
    thresholds = reg["thresholds"]

    # ------------------------------------------------------------------ P1
    finite = {}
    fidelity_rows = []
    for a, c in expected:
        x = finished((a, c))
        if x is not None and "non-finite" in (x["info"].reason or ""):
            finite[f"{a}/{c}"] = False  # the run stopped at its first NaN/inf (P1 fails)
            continue
        if x is None or x["metrics"] is None or x["metrics"].empty:
            finite[f"{a}/{c}"] = None
            continue
        finite[f"{a}/{c}"] = analysis.first_nonfinite(x["metrics"]) is None
        fid = (x["info"].summary or {}).get("fidelity") or {}
        for which in ("first", "last"):
            if which in fid:
                fidelity_rows.append({"run": f"{a}/{c}", "which": which, **fid[which]})
    fd_rows = []
    for c in cells:
        fd = next(
            (by_key[(a, c)]["fd"] for a in arms if (a, c) in by_key and by_key[(a, c)]["fd"]), None
        )
        if fd is not None:
            fd_rows.append(
                {
                    "cell": c,
                    **{
                        k: fd.get(k)
                        for k in ("worst_rel_err", "grad_norm", "applies", "gate", "pass")
                    },
                }
            )
    n_fid_expected = 2 * len(expected)
    p1_finite = all(v is True for v in finite.values()) and not missing
    p1_fid = len(fidelity_rows) == n_fid_expected and all(r["pass"] for r in fidelity_rows)
    p1_fd = len(fd_rows) == len(cells) and all(r["pass"] for r in fd_rows)
    checked = sum(v is not None for v in finite.values())
    fid_runs = len({r["run"] for r in fidelity_rows})
    results = {
        "finite": gate_result(p1_finite, False in finite.values(), checked, len(expected)),
        "fidelity": gate_result(
            p1_fid, not all(r["pass"] for r in fidelity_rows), fid_runs, len(expected)
        ),
        "finite_differences": gate_result(
            p1_fd, not all(r["pass"] for r in fd_rows), len(fd_rows), len(cells), "cells"
        ),
    }
    out["P1"] = {
        "finite": {
            "pass": p1_finite,
            "result": results["finite"],
            "runs_checked": sum(v is not None for v in finite.values()),
            "non_finite": [k for k, v in finite.items() if v is False],
            "unchecked": [k for k, v in finite.items() if v is None],
        },
        "fidelity": {
            "comparisons": len(fidelity_rows),
            "expected": n_fid_expected,
            "worst_rel_err": max((r["rel_err"] for r in fidelity_rows), default=None),
            "gate": (
                f"rel err <= max({gates['fidelity_abs']:g}, {gates['fidelity_gap_scale']:g}/gap)"
                f" where gap >= {gates['fidelity_min_gap']:g}"
            ),
            "rows": fidelity_rows,
            "pass": p1_fid,
            "result": results["fidelity"],
        },
        "finite_differences": {
            "cells": fd_rows,
            "worst_rel_err": max(
                (r["worst_rel_err"] for r in fd_rows if r["applies"]), default=None
            ),
            "gate": (
                f"best-h rel err <= {gates['fd_rel_err']:g}"
                f" where ||g|| >= {gates['fd_min_grad_norm']:g}"
            ),
            "pass": p1_fd,
            "result": results["finite_differences"],
        },
    }
    p1 = p1_finite and p1_fid and p1_fd
    out["P1"]["pass"] = p1
    out["P1"]["result"] = _combine(list(results.values()))

    # ------------------------------------------------------------------ P2: each tested arm
    general = arms_mod.generalised(reg)
    p2s = {a: p2_check(by_key, reg, a, finished) for a in arms_mod.augmented(reg)}
    if general:
        out["P2"] = {"arms": p2s}
    else:
        out["P2"] = p2s[reg["verdict_arm"]]
        p2 = out["P2"]["pass"]

    # ------------------------------------------------------------------ P3
    p3_rows = []
    for a, c in expected:
        x = finished((a, c))
        if x is None:
            continue  # never ran (or not finished): listed as missing, not as not crossed
        cr = (
            analysis.crossings(x["metrics"], thresholds)
            if x and x["metrics"] is not None and not x["metrics"].empty
            else {}
        )
        for eps in thresholds:
            hit = cr.get(str(eps))
            p3_rows.append({"run": f"{a}/{c}", "eps": eps, "step": hit and int(hit["step"])})
    not_crossed = [f"{r['run']}@{r['eps']}" for r in p3_rows if r["step"] is None]
    p3 = not not_run and not not_crossed
    p3_have = len(expected) - len(not_run)
    out["P3"] = {
        "crossings": p3_rows,
        "step_cap": reg["step_cap"],
        "not_crossed": not_crossed,
        "missing_runs": not_run,
        "pass": p3,
        "result": gate_result(p3, bool(not_crossed), p3_have, len(expected)),
    }

    # ------------------------------------------------------------------ P4
    diags = [
        x["diag"].assign(run=f"{a}/{c}")
        for (a, c), x in by_key.items()
        if x["diag"] is not None and not x["diag"].empty
    ]
    dd = pd.concat(diags, ignore_index=True) if diags else pd.DataFrame()
    expected_cells = len(expected) * len(
        analysis.diagnostic_steps(reg["step_cap"], reg["diagnostic_steps"])
    )
    failed_cells = int(dd["failed"].notna().sum()) if len(dd) else 0  # "" is read back as NaN
    halted = out["runs"]["halted"]
    p4 = len(dd) == expected_cells and failed_cells == 0 and not halted
    p4_result = gate_result(
        p4, bool(failed_cells or halted), len(expected) - len(not_run), len(expected)
    )
    out["P4"] = {
        "cells": int(len(dd)),
        "expected_cells": expected_cells,
        "failed_cells": failed_cells,
        "halted_runs": halted,
        "max_detailed_balance": float(dd["detailed_balance"].max()) if len(dd) else None,
        "gate_detailed_balance": gates["detailed_balance"],
        "max_row_sum": float(dd["row_sum"].max()) if len(dd) else None,
        "gate_row_sum": gates["row_sum"],
        "max_symmetry": float(dd["symmetry"].max()) if len(dd) else None,
        "gate_symmetry": gates["symmetry"],
        "min_gap": float(dd["gap"].min()) if len(dd) else None,
        "gate_gap": gates["halt_gap"],
        "min_conductance": float(dd["conductance"].min()) if len(dd) else None,
        "min_cheeger_margin": float(dd["cheeger_margin"].min()) if len(dd) else None,
        "gate_cheeger_rel_tol": gates["cheeger_rel_tol"],
        "verified": p4,
        "result": "verified" if p4 else "NOT verified" if p4_result == "FAIL" else p4_result,
    }

    # ------------------------------------------------------------------ outcome
    if general:
        _generalised(out, by_key, reg, p2s, p1)
        out["trust"] = trust_section(by_key, reg, p2s)
        return out
    out["outcome"] = outcome_of(p1, p2, p3, p4, out, len(expected))

    # ------------------------------------------------------------------ reported only
    prim, s = out["P2"]["pairs"], out["P2"]
    dose = arm_pairs(by_key, reg, reg["dose_arm"])
    ds = summarise(dose)
    lam_p, lam_s = reg["lambdas"][reg["verdict_arm"]], reg["lambdas"][reg["dose_arm"]]
    meds = sorted([(0.0, 1.0), (lam_s, ds["median_ratio"]), (lam_p, s["median_ratio"])])
    out["reported"] = {
        "dose_response": {
            "arm": reg["dose_arm"],
            "lambda": lam_s,
            "pairs": dose,
            **ds,
            "monotone_in_lambda": _monotone(meds),
            "medians_by_lambda": [{"lambda": lam, "median_ratio": m} for lam, m in meds],
        },
        "finals": finals_rows(by_key, reg, reg["verdict_arm"], prim),
    }
    out["trust"] = trust_section(by_key, reg, p2s)
    return out


def write_verdict(sweep_dir: Path) -> str:
    """Compute, write ``verdict.json`` and ``verdict.md`` in ``sweep_dir``, return the markdown."""
    from prereg.exp9.plots import write_plots

    def plots(directory: Path, v: dict[str, Any]) -> str:
        return write_plots(
            directory, v, lambda: load_tables(Path(directory), v["registration"]["hash"])
        )

    return write_verdict_files(sweep_dir, compute_verdict, render_markdown, plots=plots)

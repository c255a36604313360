"""The pre-registered exp9 verdict (P1-P4, outcome table, reported-only tables) from disk.

Everything is recomputed from the run directories of a sweep (``metrics.csv``,
``diagnostics.csv``, ``summary.json``, ``fd_check.json``, ``run.json``), so the verdict
printed at the end of a multirun and ``python -m prereg verdict <dir>`` agree.

Why one file of ~700 lines: the verdict's computation and its Markdown share every gate's
record (P1-P4, incomplete and exploratory states); split, each half would re-derive the other's
keys. The maths it reads lives in :mod:`prereg.exp9.analysis`, the plots in
:mod:`prereg.exp9.plots`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prereg.core.registration import registration_line, registration_status
from prereg.core.rundirs import RunInfo, find_runs
from prereg.core.verdict_files import write_verdict_files
from prereg.exp9 import analysis, trust
from prereg.exp9 import arms as arms_mod
from prereg.exp9.config import Exp9Registration

OUTCOMES = {
    1: "steers: P1, P2 and P3 pass and P4 is verified",
    2: "steers but breaks KL: P2 passes, P3 fails",
    3: "feasible, does not steer: P1 and P3 pass, P4 verified, P2 fails",
    4: "neither steers nor keeps KL: P2 and P3 fail",
    0: "no verdict: P1 fails or a run HALTed (or the set is incomplete)",
}


def _pf(ok: bool | None) -> str:
    return "not evaluated" if ok is None else ("PASS" if ok else "FAIL")


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


def exploratory_line(v: dict[str, Any]) -> str | None:
    """``exploratory: not the registered set-up (step_cap 100)``, None for a registered sweep."""
    e = v.get("exploratory") or {}
    return f"exploratory: not the registered set-up ({e['why']})" if e.get("is") else None


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
    out["exploratory"] = exploratory(out["registration"], reg)
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


def _f(x: Any, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _le(x: float | None, gate: float) -> bool:
    return x is not None and x <= gate


def _dose_item(x: dict[str, Any]) -> str:
    return f"lambda {x['lambda']:g}: {_f(x['median_ratio'])}"


def _res(check: dict[str, Any]) -> str:
    """A check's result: PASS, FAIL or ``incomplete (k of n runs)``."""
    return check.get("result") or _pf(check.get("pass"))


def count_text(p2: dict[str, Any]) -> str:
    """``5 of 8 pairs have r > 1 (registered consistency count: 7)``."""
    text = (
        f"{p2['count_gt_1']} of {p2['n_pairs']} pairs have r > 1 "
        f"(registered consistency count: {p2['consistency_count']}"
    )
    if p2["n_pairs"] != p2["expected_pairs"]:
        text += f"; {p2['expected_pairs']} pairs registered"
    return text + ")"


def _step(x: int | None) -> str:
    return "—" if x is None else str(x)


def _head_lines(v: dict[str, Any], outcome: str) -> list[str]:
    """The title, exploratory flag, outcome line (``outcome`` after its tag), registration
    and runs."""
    lines = [f"# exp9 verdict — {v['sweep_dir']}", ""]
    reg, runs = v["registration"], v["runs"]
    explore = exploratory_line(v)
    if explore:
        lines += [
            f"**{explore}** — the gates below use this sweep's constants; the outcome is "
            "not the registered test's verdict.",
            "",
        ]
    tag = " (exploratory)" if explore else ""
    lines += [outcome.replace("{tag}", tag), ""]
    lines.append(registration_line(reg))
    lines += ["", f"Runs: {runs['completed']}/{runs['expected']} completed."]
    not_run = runs.get("not_run", runs["missing"])
    if not_run:
        state = {k: why.split(":")[0] for k, why in runs["not_completed"].items()}
        named = [k if k in runs["missing"] else f"{k} ({state.get(k, 'not run')})" for k in not_run]
        lines.append(
            f"Missing runs: {', '.join(named)} ({len(not_run)} of the {runs['expected']} "
            "registered runs never ran or have not finished)."
        )
    for k, why in runs["not_completed"].items():
        if k not in not_run:
            lines.append(f"Not completed: {k} — {why}")

    return lines


def _p1_lines(v: dict[str, Any]) -> list[str]:
    """P1's section: finite values, resolvent fidelity, finite differences."""
    lines: list[str] = []
    p1 = v["P1"]
    fin, fid, fd = p1["finite"], p1["fidelity"], p1["finite_differences"]
    lines += ["", f"## P1 feasibility + fidelity: {_res(p1)}", ""]
    lines += _table(
        ["check", "figure", "gate", "result"],
        [
            [
                "finite at every step",
                f"{fin['runs_checked']} runs checked"
                + (f"; non-finite: {', '.join(fin['non_finite'])}" if fin["non_finite"] else ""),
                "all finite",
                _res(fin),
            ],
            [
                "resolvent vs eigen reference",
                f"worst rel err {_f(fid['worst_rel_err'])} over {fid['comparisons']}/"
                f"{fid['expected']} comparisons",
                fid["gate"],
                _res(fid),
            ],
            [
                "autodiff vs central FD",
                f"worst rel err {_f(fd['worst_rel_err'])} over {len(fd['cells'])} cells",
                fd["gate"],
                _res(fd),
            ],
        ],
    )

    return lines


def _p2_lines(v: dict[str, Any]) -> list[str]:
    """exp9_v1's P2 section: the verdict arm's pairs against the steering bar."""
    lines: list[str] = []
    p2 = v["P2"]
    lines += [
        "",
        f"## P2 steering: {_res(p2)}",
        "",
        f"- median ratio {_f(p2['median_ratio'])} vs steering bar {p2['steering_bar']}: "
        f"{p2.get('median_result', _pf(p2['median_pass']))}",
        f"- {count_text(p2)}: {p2.get('count_result', _pf(p2['count_pass']))}",
        "",
    ]
    lines += _table(
        [
            "cell",
            "eps",
            "t_primary",
            "t_baseline",
            "r = rho_p/rho_b",
            "numerator ratio",
            "denominator ratio",
        ],
        [
            [
                r["cell"],
                r["eps"],
                _step(r["t_arm"]),
                _step(r["t_baseline"]),
                _f(r["ratio"]),
                _f(r["numerator_ratio"]),
                _f(r["denominator_ratio"]),
            ]
            for r in p2["pairs"]
        ],
    )

    return lines


def _p3_lines(v: dict[str, Any]) -> list[str]:
    """P3's section: every run crosses every threshold within the step cap."""
    lines: list[str] = []
    p3 = v["P3"]
    not_crossed = ", ".join(p3["not_crossed"])
    absent = p3.get("missing_runs") or []
    crossed = "All runs that ran crossed." if absent else "All crossed."
    lines += [
        "",
        f"## P3 KL-compatibility: {_res(p3)}",
        "",
        f"Every arm must cross every threshold within the step cap {p3['step_cap']}. "
        + (f"Not crossed: {not_crossed}." if p3["not_crossed"] else crossed),
    ]
    if absent:
        lines += ["", f"Missing runs (not counted as not crossed): {', '.join(absent)}."]

    return lines


def _p4_lines(v: dict[str, Any]) -> list[str]:
    """P4's section: the kernel diagnostics of every run."""
    lines: list[str] = []
    p4 = v["P4"]
    cells_ok = p4["cells"] == p4["expected_cells"] and p4["failed_cells"] == 0
    gap_ok = p4["min_gap"] is not None and p4["min_gap"] >= p4["gate_gap"]
    p4_result = p4.get("result", "verified" if p4["verified"] else "NOT verified")
    lines += ["", f"## P4 R4 carry-over: {p4_result}", ""]
    lines += _table(
        ["check", "figure", "gate", "result"],
        [
            [
                "diagnostic cells",
                f"{p4['cells']} of {p4['expected_cells']}, {p4['failed_cells']} out of tolerance",
                "all present and in tolerance",
                p4_result if p4_result.startswith("incomplete") else _pf(cells_ok),
            ],
            [
                "detailed balance",
                f"max {_f(p4['max_detailed_balance'])}",
                f"<= {p4['gate_detailed_balance']:g}",
                _pf(_le(p4["max_detailed_balance"], p4["gate_detailed_balance"])),
            ],
            [
                "row sums",
                f"max {_f(p4['max_row_sum'])}",
                f"<= {p4['gate_row_sum']:g}",
                _pf(_le(p4["max_row_sum"], p4["gate_row_sum"])),
            ],
            [
                "symmetry of D^1/2 P D^-1/2",
                f"max {_f(p4['max_symmetry'])}",
                f"<= {p4['gate_symmetry']:g}",
                _pf(_le(p4["max_symmetry"], p4["gate_symmetry"])),
            ],
            [
                "spectral gap",
                f"min {_f(p4['min_gap'])}",
                f">= {p4['gate_gap']:g} (HALT below)",
                _pf(gap_ok),
            ],
            ["sweep-cut conductance", f"min {_f(p4['min_conductance'])}", "reported", "—"],
            [
                "Cheeger margin",
                f"min {_f(p4['min_cheeger_margin'])}",
                f">= -{p4['gate_cheeger_rel_tol']:g} x scale",
                _pf(p4["failed_cells"] == 0 and p4["cells"] > 0),
            ],
            ["HALTs", len(p4["halted_runs"]), "none", _pf(not p4["halted_runs"])],
        ],
    )

    return lines


def _reported_lines(v: dict[str, Any]) -> list[str]:
    """exp9_v1's reported-only sections: dose-response and finals."""
    lines: list[str] = []
    d = v["reported"]["dose_response"]
    lines += [
        "",
        "## Reported, not in the verdict",
        "",
        f"### Dose-response ({d['arm']}, lambda = {d['lambda']})",
        "",
        f"median ratio {_f(d['median_ratio'])}, {d['count_gt_1']} of {d['n_pairs']} pairs "
        f"have r > 1; monotone in lambda: {d['monotone_in_lambda']} ("
        + ", ".join(_dose_item(x) for x in d["medians_by_lambda"])
        + ")",
        "",
        "Numerator (signal ||g||^2) and denominator (noise trace Sigma) ratios of every pair "
        "(primary pairs in the P2 table above):",
        "",
    ]
    lines += _table(
        ["cell", "eps", "r", "numerator ratio", "denominator ratio"],
        [
            [
                r["cell"],
                r["eps"],
                _f(r["ratio"]),
                _f(r["numerator_ratio"]),
                _f(r["denominator_ratio"]),
            ]
            for r in d["pairs"]
        ],
    )
    lines += ["", "### Finals (last step; excluded from the verdict by design)", ""]
    lines += _table(
        [
            "cell",
            "rho ratio at last step",
            "median ratio over final window",
            "max matched ratio",
            "finals trap",
        ],
        [
            [
                r["cell"],
                _f(r["final_ratio"]),
                _f(r["final_median_ratio"]),
                _f(r["max_matched_ratio"]),
                "FLAG: exceeds matched" if r["finals_trap"] else "no",
            ]
            for r in v["reported"]["finals"]
        ],
    )
    return lines


def render_markdown(v: dict[str, Any]) -> str:
    """verdict.md: every figure with its gate and PASS/FAIL; the trust section last."""
    o = v["outcome"]
    if "refused" in v:
        return "\n".join(
            [
                f"# exp9 verdict — {v['sweep_dir']}",
                "",
                f"**REFUSED**: {v['refused']}",
                "",
                f"Outcome 0 — {o['sentence']}",
            ]
        )
    if "arms" in v["P2"]:
        return render_generalised(v)
    head = f"**Outcome {o['number']}**{{tag}} — {o['sentence']}"
    lines = _head_lines(v, head) + _p1_lines(v) + _p2_lines(v) + _p3_lines(v) + _p4_lines(v)
    lines += _reported_lines(v)
    lines.append("")
    lines += trust_lines(v)
    return "\n".join(lines)


def _arm_p2(v: dict[str, Any], arm: str) -> dict[str, Any]:
    return v["P2"]["arms"][arm] if "arms" in v["P2"] else v["P2"]


def trust_lines(v: dict[str, Any]) -> list[str]:
    """verdict.md's last section, "How much this verdict can be trusted" (reported only)."""
    t = v.get("trust")
    if not t:
        return []
    early, half = t["early_steps"], t["window"]
    lines = [
        "## How much this verdict can be trusted",
        "",
        "Reported, not a gate. P2 takes each ratio at one step, the matched crossing:",
        "",
        f"- **early pairs**: an arm that crosses before step {early} is compared before its "
        "auxiliary term has acted (every arm of a cell starts from the same theta, and Adam "
        "moves each coordinate by about lr per step), so its ratio is near 1 by construction;",
        f"- **window**: each ratio recomputed from the medians of rho over +-{half} steps "
        "around each arm's crossing, so that one step of Adam's oscillation cannot decide it.",
        "",
    ]
    rows = []
    for arm, a in t["arms"].items():
        p2 = _arm_p2(v, arm)
        named = f" ({', '.join(a['early'])})" if a["early"] else ""
        decision = (
            _pf(a["window_p2_pass"])
            if a["window_p2_pass"] is not None
            else f"n/a ({a['window_pairs']} of {a['n_pairs']} pairs)"
        )
        rows.append(
            [
                arm,
                f"{a['early_pairs']} of {a['n_pairs']}{named}",
                f"{_f(a['late_median_ratio'])} ({a['late_pairs']} pairs)",
                _f(a["window_median_ratio"]),
                f"{a['window_count_gt_1']} of {a['window_pairs']}",
                f"{decision} (P2: {_res(p2)})",
            ]
        )
    lines += _table(
        [
            "arm",
            f"pairs crossed before step {early}",
            "median r without them",
            f"median r, +-{half}-step window",
            "window r > 1",
            "P2's gates on the window ratios",
        ],
        rows,
    )
    lines += ["", "Per pair:", ""]
    lines += _table(
        ["arm", "cell", "eps", "t_arm", "t_baseline", "r", "window r", "early"],
        [
            [arm, r["cell"], r["eps"], _step(r["t_arm"]), _step(r["t_baseline"]),
             _f(r["ratio"]), _f(r["window_ratio"]), "yes" if r["early"] else "no"]
            for arm, a in t["arms"].items()
            for r in a["pairs"]
        ],
    )  # fmt: skip
    return lines + [""]


def _of_registered(p2: dict[str, Any]) -> str:
    """`` (8 registered)`` when fewer pairs than registered have both crossings."""
    return "" if p2["n_pairs"] == p2["expected_pairs"] else f" ({p2['expected_pairs']} registered)"


def _pair_table(pairs: Sequence[dict[str, Any]]) -> list[str]:
    return _table(
        ["cell", "eps", "t_arm", "t_baseline", "r = rho_arm/rho_b", "numerator ratio",
         "denominator ratio"],
        [
            [r["cell"], r["eps"], _step(r["t_arm"]), _step(r["t_baseline"]), _f(r["ratio"]),
             _f(r["numerator_ratio"]), _f(r["denominator_ratio"])]
            for r in pairs
        ],
    )  # fmt: skip


def render_generalised(v: dict[str, Any]) -> str:
    """verdict.md of a generalised registration (exp9_v2): each augmented arm against the
    baseline, an outcome per arm, the dose-response across all lambdas, the trust section."""
    by_arm, dose = v["outcome"]["by_arm"], v["reported"]["dose_response"]
    spec = {d["arm"]: d for d in dose["rows"]}
    head = "**Outcomes by arm**{tag} — " + "; ".join(
        f"{a}: **Outcome {o['number']}**" for a, o in by_arm.items()
    )
    lines = _head_lines(v, head)
    lines += ["", "## Outcome by arm (the registered table, each arm against the baseline)", ""]
    lines += _table(
        ["arm", "lambda", "form", "P2", "P3", "outcome"],
        [
            [a, f"{spec[a]['lambda']:g}", spec[a]["form"], _res(v["P2"]["arms"][a]),
             _res(v["P3"]["arms"][a]), f"{o['number']} — {o['sentence']}"]
            for a, o in by_arm.items()
        ],
    )  # fmt: skip
    lines += _p1_lines(v)
    lines += ["", "## P2 steering, each augmented arm against the baseline", ""]
    first = next(iter(v["P2"]["arms"].values()))
    lines += _table(
        ["arm", f"median r vs bar {first['steering_bar']}",
         f"pairs with r > 1 (consistency count {first['consistency_count']})", "result"],
        [
            [a, f"{_f(p['median_ratio'])}: {p['median_result']}",
             f"{p['count_gt_1']} of {p['n_pairs']}{_of_registered(p)}: {p['count_result']}",
             _res(p)]
            for a, p in v["P2"]["arms"].items()
        ],
    )  # fmt: skip
    for a, p in v["P2"]["arms"].items():
        lines += ["", f"### {a} (lambda {spec[a]['lambda']:g}, form {spec[a]['form']})", ""]
        lines += _pair_table(p["pairs"])
    lines += _p3_lines(v)
    lines += ["", "Each arm with the baseline (the arm's P3):", ""]
    lines += _table(
        ["arm", "not crossed", "result"],
        [[a, ", ".join(p["not_crossed"]) or "none", _res(p)] for a, p in v["P3"]["arms"].items()],
    )
    lines += _p4_lines(v)
    mono = dose["monotone_in_lambda_rho"]
    lines += [
        "",
        "## Reported, not in the verdict",
        "",
        "### Dose-response across all lambdas",
        "",
        "Medians over each arm's pairs at matched crossings; final KL is the final-window median "
        "KL, median over cells. Median r monotone in lambda over the rho arms (baseline r = 1): "
        + ("not determined (an arm has no matched pair)" if mono is None else str(mono))
        + ".",
        "",
    ]
    lines += _table(
        ["arm", "lambda", "form", "median r", "r > 1", "median signal ratio",
         "median noise ratio", "final KL", "P3"],
        [["baseline", "0", "—", "1", "—", "1", "1", _f(dose["baseline_final_kl"]), "—"]]
        + [
            [d["arm"], f"{d['lambda']:g}", d["form"], _f(d["median_ratio"]),
             f"{d['count_gt_1']} of {d['n_pairs']}", _f(d["median_numerator_ratio"]),
             _f(d["median_denominator_ratio"]), _f(d["median_final_kl"]), d["p3"]]
            for d in dose["rows"]
        ],
    )  # fmt: skip
    lines += ["", "### Finals (last step; excluded from the verdict by design)", ""]
    lines += _table(
        ["arm", "cell", "rho ratio at last step", "median ratio over final window",
         "max matched ratio", "finals trap"],
        [
            [d["arm"], r["cell"], _f(r["final_ratio"]), _f(r["final_median_ratio"]),
             _f(r["max_matched_ratio"]), "FLAG: exceeds matched" if r["finals_trap"] else "no"]
            for d in dose["rows"]
            for r in d["finals"]
        ],
    )  # fmt: skip
    lines.append("")
    lines += trust_lines(v)
    return "\n".join(lines)


def write_verdict(sweep_dir: Path) -> str:
    """Compute, write ``verdict.json`` and ``verdict.md`` in ``sweep_dir``, return the markdown."""
    from prereg.exp9.plots import write_plots

    def plots(directory: Path, v: dict[str, Any]) -> str:
        return write_plots(
            directory, v, lambda: load_tables(Path(directory), v["registration"]["hash"])
        )

    return write_verdict_files(sweep_dir, compute_verdict, render_markdown, plots=plots)

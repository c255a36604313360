"""exp9's verdict.md: every figure of the verdict dict with its gate and PASS/FAIL.

Rendering only: :func:`prereg.exp9.verdict.compute_verdict` makes the dict (from disk) and
:func:`render_markdown` writes it: exp9_v1's sections (P1-P4, the outcome, dose-response and
finals), a generalised registration's (exp9_v2: every augmented arm against the baseline), and
the trust section both end with (:mod:`prereg.exp9.trust`).  Over 400 lines because each
gate's section reads its own keys of the dict, for two verdict shapes; split further, the two
shapes' shared sections (head, P1, P3, P4, trust) would be imported back and forth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prereg.core.registration import registration_line


def _pf(ok: bool | None) -> str:
    return "not evaluated" if ok is None else ("PASS" if ok else "FAIL")


def exploratory_line(v: dict[str, Any]) -> str | None:
    """``exploratory: not the registered set-up (step_cap 100)``, None for a registered sweep."""
    e = v.get("exploratory") or {}
    return f"exploratory: not the registered set-up ({e['why']})" if e.get("is") else None


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


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}" if k == 1 else f"{k} {noun}s"


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
                f"{_f(a['late_median_ratio'])} ({_n(a['late_pairs'], 'pair')})",
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

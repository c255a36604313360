"""The pre-registered exp9_estimator verdict (E1-E5, outcome) from the job directory alone.

The checks are :func:`prereg.exp9_estimator.checks.evaluate`'s (the runner's summary has the
same); this module adds the refusals (no job, several jobs, not completed, other constants),
the Markdown and the plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prereg.core.registration import registration_line, registration_status
from prereg.core.rundirs import find_runs
from prereg.core.verdict_files import write_verdict_files
from prereg.exp9_estimator.checks import evaluate
from prereg.exp9_estimator.config import NAME, Exp9EstRegistration


def compute_verdict(sweep_dir: Path) -> dict[str, Any]:
    """The verdict as a JSON-able dict."""
    runs = [r for r in find_runs([sweep_dir]) if (r.run or {}).get("experiment") == NAME]
    out: dict[str, Any] = {"experiment": NAME, "sweep_dir": str(sweep_dir)}

    def no_verdict(why: str) -> dict[str, Any]:
        out["refused"] = why
        out["outcome"] = {"number": 0, "sentence": f"no verdict: {why}"}
        return out

    if not runs:
        return no_verdict(f"no {NAME} run found")
    if len(runs) > 1:
        names = ", ".join(r.path.name for r in runs)
        return no_verdict(f"one {NAME} job per sweep is judged; this sweep holds {names}")
    run = runs[0]
    reg = run.read_json("registration.json")
    source = run.read_json("source.json") or {}
    if not isinstance(reg, dict) or run.registration_hash is None:
        return no_verdict("registration.json missing")
    out["registration"] = registration_status(reg, run.registration_hash, Exp9EstRegistration)
    out["source"] = {k: source.get(k) for k in ("path", "registration", "registration_hash")}
    out["source"]["status"] = source.get("status")
    why = [f"{k} differs" for k in out["registration"]["differing_constants"]]
    src_status = source.get("status") or {}
    if src_status and not src_status.get("registered", False):
        why.append("source sweep " + ", ".join(src_status.get("differing_constants", [])))
    out["exploratory"] = {"is": bool(why), "why": "; ".join(why)}
    if run.status != "completed":
        return no_verdict(f"the {NAME} job is {run.status}: {run.reason or 'not finished'}")
    if "constants" not in source:
        return no_verdict("source.json (the source sweep's registration) missing")
    out.update(evaluate(run.path, reg, source["constants"]))
    out["run_dir"] = str(run.path)
    return out


def _f(x: Any, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render_markdown(v: dict[str, Any]) -> str:
    """verdict.md: the outcome first, then each check with its figures."""
    o = v["outcome"]
    tag = " (exploratory)" if (v.get("exploratory") or {}).get("is") else ""
    lines = [f"# {NAME} verdict — {v['sweep_dir']}", "", f"**Outcome {o['number']}**{tag} — "
             f"{o['sentence']}", ""]  # fmt: skip
    if "registration" in v:
        lines += [registration_line(v["registration"]), ""]
    if v.get("source"):
        s = v["source"]
        lines += [f"Source: exp9 sweep {s['path']} (registration {s['registration']}, "
                  f"hash {s['registration_hash']}).", ""]  # fmt: skip
    if (v.get("exploratory") or {}).get("is"):
        lines += [f"exploratory: not the registered set-up ({v['exploratory']['why']})", ""]
    if "E1" not in v:
        return "\n".join(lines) + "\n"
    e1, e2, e3, e4, e5 = (v[k] for k in ("E1", "E2", "E3", "E4", "E5"))
    b, t = v["practical"]
    lines += [
        f"{v['thetas']} thetas (each exp9 run at its matched crossings and last step); "
        f"practical (B, T) = ({b}, {t}).",
        "",
        f"## E1 chain fidelity: {_pf(e1['pass'])}",
        "",
        f"- {e1['comparisons']} comparisons (thetas x (B, T)): worst |log MSE_exact - log "
        f"MSE_emp| / se = {e1['worst_z']:.3g} vs bound z = {e1['z']:.3g} (family level "
        f"{e1['family_level']:g}, Bonferroni)",
        f"- MSE_emp / MSE_exact from {e1['best_ratio']:.3g} to {e1['worst_ratio']:.3g}; exact "
        f"SNR outside the 95% bootstrap interval in {e1['outside_95']} of {e1['comparisons']} "
        f"(about 5% expected)",
    ]
    if e1["failures"]:
        lines.append(f"- outside: {', '.join(e1['failures'][:8])}")
    lines += [
        "",
        f"## E2 ranking: {_pf(e2['pass'])}",
        "",
        f"Spearman(rho, SNR_emp) over {e2['n']} thetas at (B, T) = ({b}, {t}): "
        f"{e2['spearman']:.3f} (bar {e2['bar']:g}).",
        "",
        f"## E3 calibration: {_pf(e3['pass'])}",
        "",
        f"- SNR_pred / SNR_emp within x{e3['factor']:g} for {e3['within']} of {e3['n']} thetas "
        f"({e3['fraction']:.0%}; bar {e3['fraction_bar']:.0%}); ratios {e3['min_ratio']:.3g} "
        f"to {e3['max_ratio']:.3g}, median {e3['median_ratio']:.3g}",
        f"- how T must grow (exact, B = {b}): SNR_pred / SNR_exact stays within x{e3['factor']:g}"
        f" from T = {_f(e3['t_within_median'], '.0f')} (median over thetas), "
        f"{_f(e3['t_within_max'], '.0f')} (worst); never by T = {e3['exact_t_max']} for "
        f"{e3['t_within_never']} thetas; by label: "
        + ", ".join(f"{k} {_f(x, '.0f')}" for k, x in e3["t_within_by_label"].items()),
        "",
        f"## E4 steering, estimator form: {_pf(e4['pass'])}",
        "",
        f"Median SNR_emp(primary) / SNR_emp(baseline) over {len(e4['pairs'])} matched pairs: "
        f"{_f(e4['median_ratio_emp'])} vs steering bar {e4['steering_bar']:g} "
        f"(exp9's P2 median rho ratio: {_f(e4['median_ratio_p2'])}; "
        f"{e4['count_gt_1']} of {len(e4['pairs'])} > 1).",
        "",
        "| cell | eps | SNR_emp ratio | SNR_exact ratio | exp9 P2 rho ratio |",
        "|---|---|---|---|---|",
    ]
    for p in e4["pairs"]:
        lines.append(
            f"| {p['cell']} | {p['eps']} | {p['ratio_emp']:.3g} | {p['ratio_exact']:.3g} | "
            f"{p['ratio_rho_p2']:.3g} |"
        )
    held = "held" if e5["prediction_held"] else "did NOT hold"
    lines += [
        "",
        "## E5 sampled-gradient training (reported)",
        "",
        f"Registered prediction: {e5['prediction']} — {held} (strictly earlier in "
        f"{e5['earlier']}, later in {e5['later']}, tied in {e5['ties_or_neither']}).",
        "",
        "| run | crossings (step per eps) | final KL (median of last window) |",
        "|---|---|---|",
    ]
    for name, r in e5["runs"].items():
        cross = ", ".join(f"{e}: {_f(s, 'd')}" for e, s in r["crossings"].items())
        lines.append(f"| {name} | {cross} | {r['final_kl']:.4g} |")
    if e5["never_crossed"]:
        lines += ["", f"Never crossed within the step cap: {', '.join(e5['never_crossed'])}."]
    lines += [
        "",
        "## How much this verdict can be trusted",
        "",
        "- E1 fails a faithful sampler with probability at most "
        f"{1 - e1['family_level']:.0%} (Bonferroni over {e1['comparisons']} comparisons; the "
        "normal approximation of the bootstrap standard error is the remaining assumption).",
        "- E2 and E3 are judged at one (B, T) on thetas that span many orders of magnitude of "
        "rho; the ratio SNR_pred / SNR_exact = T MSE / tr Sigma does not depend on ||g||, so "
        "E3 measures the chains' mixing, and E2 mostly the spread of ||g||^2.",
        f"- E4 rests on {len(e4['pairs'])} pairs and E5 on {len(e5['pairs'])} (one teacher and "
        "one initial theta per cell; E5's chains are one seed per cell).",
    ]
    return "\n".join(lines) + "\n"


def write_verdict(sweep_dir: Path) -> str:
    """Compute and write ``verdict.json``, ``verdict.md`` and the plots; return the Markdown."""
    from prereg.exp9_estimator.plots import write_plots

    return write_verdict_files(sweep_dir, compute_verdict, render_markdown, plots=write_plots)

"""How much a Path-B ladder verdict can be trusted (DESIGN section 10): pure figures and text.

Two parts.  From the registration alone (``python -m prereg audit <registration>``, before
anything runs): each rate gate's operating characteristics at the registered sample sizes,
exact binomial sums (:mod:`prereg.core.stats`): the chance that a policy of true success
rate p passes Stage 1, and the chance that an identical policy fails Stage 3.  From a sweep's
runs: Stage 3's false-fail chance at the observed rate; a gate the observed figures show
cannot fail (the value-loss gate against the largest value loss any run logged); and for the
Stage-2 trend test, how many of the ``window``-update windows ending in the run's last
:data:`SPAN` updates pass, with the run's figure against the spread of those windows.  A gate
whose windows pass between :data:`NOISE_BAND` of the time is named "decided by noise": moving
the run's end by a few updates could flip it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from prereg.core.stats import (
    gap_fail_probability,
    min_successes,
    pass_fraction,
    pass_probability,
    two_proportion_fail_probability,
    wilson_interval,
    wilson_pass_probability,
    window_deltas,
)
from prereg.ppo import ladder_v2
from prereg.ppo.ladder import rate_of
from prereg.ppo.registration_v2 import is_pooled

TITLE = "How much this verdict can be trusted"
STAGE1_RATES = (0.3, 0.4, 0.5, 0.6)
STAGE3_RATES = (0.5, 0.7, 0.9, 0.97)
#: windows ending in the last SPAN updates of a run are the trend test's plateau sample
SPAN = 300
#: a window pass fraction inside this band: the gate is decided by noise
NOISE_BAND = (0.2, 0.8)
#: a gate whose worst observed figure is this many times inside it cannot fail on these runs
CANNOT_FAIL_FACTOR = 10.0


# ------------------------------------------------------------------ from the registration
def registration_trust(reg: Mapping[str, Any]) -> dict[str, Any]:
    """Each rate gate's operating characteristics at the registered sample sizes (exact)."""
    s1, s2, s3 = reg["stage1"], reg["stage2"], reg["stage3"]
    seeds = int(reg.get("num_seeds", 1))
    n1, n3 = int(s1["n_seeds"]) * seeds, int(s3["n_seeds"]) * seeds
    bar = float(s1["min_success_rate"])
    if is_pooled(reg):
        conf = float(s1["confidence"])
        k_min = next((k for k in range(n1 + 1) if wilson_interval(k, n1, conf)[0] >= bar), None)
        stage1 = {
            "rule": f"Wilson {conf:.0%} lower bound of the pooled success >= {bar:g} "
            f"on {seeds} x {s1['n_seeds']} = {n1} episodes; PASS at {k_min}/{n1} or more",
            "pass_probability": [
                {"p": p, "probability": wilson_pass_probability(n1, bar, p, conf)}
                for p in STAGE1_RATES
            ],
        }
        alpha = float(s3["alpha"])
        stage3 = {
            "rule": f"two-sided two-proportion z-test, {n3} vs {n1} pooled episodes: "
            f"PASS iff p >= {alpha:g}",
            "false_fail_probability": [
                {"p": p, "probability": two_proportion_fail_probability(n3, n1, p, alpha)}
                for p in STAGE3_RATES
            ],
        }
        trend = (
            f"upper {float(s2['confidence']):.0%} bound of the log_std slope over the final "
            f"{s2['window']} updates, {seeds} seeds pooled, <= {float(s2['max_log_std_slope']):g}"
        )
    else:
        gap = float(s3["max_abs_gap"])
        k_min = min_successes(n1, bar)
        stage1 = {
            "rule": f"success_rate >= {bar:g} on {n1} episodes; PASS at {k_min}/{n1} or more",
            "pass_probability": [
                {"p": p, "probability": pass_probability(n1, bar, p)} for p in STAGE1_RATES
            ],
        }
        stage3 = {
            "rule": f"|success({s3['seed_start']}) - success({s1['seed_start']})| <= {gap:g}, "
            f"{n3} and {n1} episodes",
            "false_fail_probability": [
                {"p": p, "probability": gap_fail_probability(n3, n1, p, gap)} for p in STAGE3_RATES
            ],
        }
        trend = (
            f"log_std[-1] - log_std[-{s2['window']}] <= {float(s2['max_log_std_delta']):g}: "
            "two single updates, no sample size"
        )
    if is_pooled(reg):
        critic = (
            f"mean explained variance over the window >= {float(s2['min_explained_variance']):g}; "
            "scale-free (1 - Var(returns - values) / Var(returns)), so it can fail whatever the "
            "reward scale"
        )
    else:
        critic = (
            f"value_loss <= {float(s2['max_value_loss']):g} in every window update; whether it can "
            "fail depends on the returns' scale (on MesaDock, returns of at most ~19 and no reward "
            "normalisation, measured value losses lie between 1e-5 and ~6)"
        )
    return {"stage1": stage1, "stage3": stage3, "stage2_trend": trend, "stage2_critic": critic}


# ------------------------------------------------------------------ from the runs
def _windows_v1(metrics: pd.DataFrame, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """v1's log_std delta over every window ending in the last SPAN updates."""
    if "log_std" not in metrics or "update" not in metrics:
        return None
    values = metrics.sort_values("update")["log_std"].to_numpy(float)
    deltas = window_deltas(values, int(spec["window"]), SPAN)
    if not len(deltas):
        return None
    return _window_summary(deltas, float(deltas[-1]), float(spec["max_log_std_delta"]), "<=")


def _windows_v2(metrics: pd.DataFrame, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """v2's slope bound (and explained variance) over every window ending in the last SPAN."""
    need = {"update", "log_std", "explained_variance", "entropy"}
    if not need <= set(metrics):
        return None
    window = int(spec["window"])
    seeds = [t.sort_values("update") for _, t in
             (metrics.groupby("seed") if "seed" in metrics else [(0, metrics)])]  # fmt: skip
    length = min(len(t) for t in seeds)
    ends = range(max(window, length - SPAN + 1), length + 1)
    bounds, evs = [], []
    for end in ends:
        tails = {i: t.iloc[end - window : end] for i, t in enumerate(seeds)}
        checks = ladder_v2.stage2_checks(tails, spec)
        bounds.append(checks[1].figure)
        evs.append(checks[2].figure)
    if not bounds:
        return None
    out = _window_summary(np.array(bounds), bounds[-1], float(spec["max_log_std_slope"]), "<=")
    ev = np.array(evs)
    out["explained_variance"] = {
        "pass_fraction": float(np.mean(ev >= float(spec["min_explained_variance"]))),
        "observed": float(ev[-1]),
        "min": float(ev.min()),
    }
    return out


def _window_summary(figures: np.ndarray, observed: float, gate: float, op: str) -> dict[str, Any]:
    frac = pass_fraction(figures, gate)
    sd = float(np.std(figures, ddof=1)) if len(figures) > 1 else math.nan
    return {
        "windows": len(figures),
        "pass_fraction": frac,
        "observed": observed,
        "gate": gate,
        "op": op,
        "mean": float(np.mean(figures)),
        "sd": sd,
        "q05": float(np.quantile(figures, 0.05)),
        "q95": float(np.quantile(figures, 0.95)),
        "noise_decided": bool(NOISE_BAND[0] <= frac <= NOISE_BAND[1]),
    }


def candidate_trust(
    reg: Mapping[str, Any],
    metrics: pd.DataFrame | None,
    ev1: Mapping[str, Any] | None,
    ev3: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One candidate's observed figures against its gates' noise."""
    out: dict[str, Any] = {}
    pooled = is_pooled(reg)
    counts = [rate_of(e) if e and e.get("success_rate") is not None else None for e in (ev1, ev3)]
    if counts[0] is not None:
        k1, n1 = counts[0]
        p = k1 / n1 if n1 else math.nan
        s1 = reg["stage1"]
        again = (
            wilson_pass_probability(n1, float(s1["min_success_rate"]), p, float(s1["confidence"]))
            if pooled
            else pass_probability(n1, float(s1["min_success_rate"]), p)
        )
        out["stage1"] = {
            "k": k1, "n": n1, "rate": p, "ci95": list(wilson_interval(k1, n1)),
            "pass_probability_at_observed": again,
        }  # fmt: skip
        k3, n3 = counts[1] if counts[1] is not None else (0, 0)
        pooled_rate = (k1 + k3) / (n1 + n3)
        n3_reg = int(reg["stage3"]["n_seeds"]) * int(reg.get("num_seeds", 1))
        false_fail = (
            two_proportion_fail_probability(n3_reg, n1, pooled_rate, float(reg["stage3"]["alpha"]))
            if pooled
            else gap_fail_probability(n3_reg, n1, pooled_rate, float(reg["stage3"]["max_abs_gap"]))
        )
        out["stage3"] = {
            "rate": pooled_rate,
            "rate_from": "both evals" if counts[1] is not None else "the stage-1 eval",
            "false_fail_probability": false_fail,
        }
    if metrics is not None and not metrics.empty:
        trend = (_windows_v2 if pooled else _windows_v1)(metrics, reg["stage2"])
        if trend is not None:
            out["trend"] = trend
        if "entropy" in metrics:  # per update (the mean over seeds, as v2's gate reads it)
            per_update = metrics.groupby("update")["entropy"].mean().sort_index()
            last = per_update.to_numpy(float)[-SPAN:]
            gate = float(reg["stage2"]["max_final_entropy"])
            out["entropy"] = {"pass_fraction": float(np.mean(last < gate)), "updates": len(last)}
    return out


def value_loss_trust(reg: Mapping[str, Any], tables: Sequence[pd.DataFrame]) -> dict[str, Any]:
    """The largest value loss any run logged against the value-loss gate."""
    gate = float(reg["stage2"]["max_value_loss"])
    losses = [t["value_loss"].to_numpy(float) for t in tables if "value_loss" in t and len(t)]
    finite = np.concatenate(losses) if losses else np.array([])
    finite = finite[np.isfinite(finite)]
    largest = float(finite.max()) if len(finite) else None
    return {
        "gate": gate,
        "largest_logged": largest,
        "cannot_fail": largest is not None and largest * CANNOT_FAIL_FACTOR < gate,
        "is_gate": not is_pooled(reg),
    }


def observed_trust(
    reg: Mapping[str, Any],
    data: Mapping[str, tuple[pd.DataFrame | None, Mapping | None, Mapping | None]],
) -> dict[str, Any]:
    """Per candidate (metrics, stage-1 eval, stage-3 eval) and over all runs."""
    tables = [m for m, _, _ in data.values() if m is not None]
    return {
        "candidates": {name: candidate_trust(reg, *parts) for name, parts in data.items()},
        "value_loss": value_loss_trust(reg, tables),
    }


def trust_section(
    reg: Mapping[str, Any],
    data: Mapping[str, tuple[pd.DataFrame | None, Mapping | None, Mapping | None]] | None = None,
) -> dict[str, Any]:
    """The verdict's trust section: the registration's part, and the runs' when given (with
    the registration's constants, which its text quotes)."""
    out = {"title": TITLE, "constants": dict(reg), "registration": registration_trust(reg)}
    if data is not None:
        out["observed"] = observed_trust(reg, data)
    return out


# ------------------------------------------------------------------ text
def _probs(rows: Sequence[Mapping[str, float]]) -> str:
    return ", ".join(f"{r['probability']:.3f} at p = {r['p']:g}" for r in rows)


def _trend_line(name: str, t: Mapping[str, Any], reg: Mapping[str, Any]) -> str:
    window = reg["stage2"]["window"]
    what = "slope upper bound" if is_pooled(reg) else "log_std delta"
    line = (
        f"- {name}: {t['pass_fraction']:.0%} of the {t['windows']} {window}-update windows "
        f"ending in the last {SPAN} updates pass the log_std test ({what} {t['op']} "
        f"{t['gate']:g}); this run's {t['observed']:.4g} against those windows' mean "
        f"{t['mean']:.3g}, sd {t['sd']:.3g} (5-95%: {t['q05']:.3g} to {t['q95']:.3g})"
    )
    if t["noise_decided"]:
        line += ": **decided by noise** (a few updates more or less could flip it)"
    if "explained_variance" in t:
        e = t["explained_variance"]
        line += (
            f"; explained variance passes in {e['pass_fraction']:.0%} of the windows "
            f"(this run {e['observed']:.3g}, lowest {e['min']:.3g})"
        )
    return line + "."


def render_registration(rt: Mapping[str, Any], reg: Mapping[str, Any]) -> list[str]:
    """The registration-only part (Markdown lines)."""
    s1, s3 = rt["stage1"], rt["stage3"]
    return [
        f"Registration {reg['name']}, exact binomial sums at the registered sample sizes:",
        "",
        f"- Stage 1 ({s1['rule']}): a policy of true success rate p passes with probability "
        f"{_probs(s1['pass_probability'])}.",
        f"- Stage 3 ({s3['rule']}): an identical policy (same true rate p on both seed sets) "
        f"fails by chance with probability {_probs(s3['false_fail_probability'])}.",
        f"- Stage 2's trend test ({rt['stage2_trend']}): its noise is measured on the runs.",
        f"- Stage 2's critic gate, {rt['stage2_critic']}; the runs show its margin.",
    ]


def render_observed(ot: Mapping[str, Any], reg: Mapping[str, Any]) -> list[str]:
    """The runs' part (Markdown lines)."""
    lines: list[str] = []
    for name, c in ot["candidates"].items():
        if "stage1" in c:
            s1, s3 = c["stage1"], c["stage3"]
            lo, hi = s1["ci95"]
            lines.append(
                f"- {name}: Stage-1 success {s1['k']}/{s1['n']} = {s1['rate']:.3f} "
                f"(95% CI {lo:.3f}-{hi:.3f}); a policy of that true rate passes Stage 1 with "
                f"probability {s1['pass_probability_at_observed']:.3f}; at the observed rate "
                f"{s3['rate']:.3f} ({s3['rate_from']}) an identical policy fails Stage 3 by "
                f"chance with probability {s3['false_fail_probability']:.3f}."
            )
        if "trend" in c:
            lines.append(_trend_line(name, c["trend"], reg))
        if "entropy" in c:
            e = c["entropy"]
            lines.append(
                f"- {name}: entropy < {float(reg['stage2']['max_final_entropy']):g} in "
                f"{e['pass_fraction']:.0%} of its last {e['updates']} updates."
            )
    v = ot["value_loss"]
    if v["largest_logged"] is not None:
        head = (
            "Stage 2's value-loss gate" if v["is_gate"] else "v1's value-loss gate (not a v2 gate)"
        )
        ratio = v["gate"] / v["largest_logged"] if v["largest_logged"] > 0 else math.inf
        text = (
            f"- {head} (<= {v['gate']:g}): the largest value loss any run logged is "
            f"{v['largest_logged']:.3g}, {ratio:.3g} times below it"
        )
        lines.append(text + (": **this gate cannot fail** on these runs." if v["cannot_fail"]
                             else "."))  # fmt: skip
    noisy = [n for n, c in ot["candidates"].items() if c.get("trend", {}).get("noise_decided")]
    if noisy:
        lines.append(
            "- In short: the log_std test was **decided by noise** for " + ", ".join(noisy) + "; "
            "read their Stage-2 results as a coin flip, not as evidence."
        )
    return lines


def render(section: Mapping[str, Any]) -> list[str]:
    """The whole section as Markdown lines (a ``##`` heading first)."""
    reg = section["constants"]
    lines = [f"## {section['title']}", ""]
    lines += render_registration(section["registration"], reg)
    if "observed" in section:
        observed = render_observed(section["observed"], reg)
        lines += ["", "What these runs show:", ""] + (observed or ["- no run figures to read."])
    return lines

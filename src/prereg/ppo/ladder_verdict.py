"""The Path-B ladder verdict and Path A's best state, computed from run directories alone.

For each registered candidate, in registered order, the run of the sweep is graded with the
pure stage functions of :mod:`prereg.ppo.ladder` (``metrics.csv`` and the two
``logs/evaluation_seed_<start>.json``); the first candidate passing all three stages is
adopted, with none "Path B rejected: fall back to Path A" and the best saved state across the
runs.  A candidate whose run failed, halted, was skipped, is still pending or is missing is
"not graded" with its reason.  The verdict printed at the end of a multirun and
``python -m prereg verdict <dir>`` agree, whatever ``ladder.mode`` ran the jobs.

A control run (``candidate=control``: the default hparams, ``ladder.control=true``) is graded
by the same stages in a section of its own and never adopted; the candidates of a
``ladder.mode=vmapped`` job live inside its run directory, and the job's own run is none of them.

Why one file of ~700 lines: the ladder's decision, Path A's best state and their Markdown read
the same run records (grades, evaluations, setup deviations); the stage tests themselves are pure
functions in :mod:`prereg.ppo.ladder`, the plots in :mod:`prereg.ppo.ladder_plots`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prereg.core.atomic import json_safe, read_json
from prereg.core.exploration import mark as mark_exploratory
from prereg.core.registration import load_registered, registration_line, registration_status
from prereg.core.rundirs import RunInfo, by_registration, find_runs
from prereg.ppo import ladder_v2
from prereg.ppo.candidates import CONTROL, registered_names
from prereg.ppo.config import PPOConf
from prereg.ppo.ladder import (
    NOT_REACHED,
    Decision,
    Grade,
    NotGradable,
    best_state,
    decide,
    grade,
    rate_text,
    statement,
)
from prereg.ppo.ladder_trust import render as render_trust
from prereg.ppo.ladder_trust import trust_section
from prereg.ppo.multiseed import in_run, member_states
from prereg.ppo.registration_v2 import is_pooled, schema_of

LADDER = "ppo_ladder"
#: The cliff-subset variants run at the adopted hparams (seed 003 section 4, step 6).
REMAINING_VARIANTS = ("mixed_0_95", "mixed_0_97", "mixed_0_99", "reward_phase3")
REJECTED = "Path B rejected: fall back to Path A"
#: The registered ladder's command (a fresh sweep): what an exploratory verdict points to.
REGISTERED_COMMAND = ["python", "run.py", "-m", f"experiment={LADDER}", "candidate=glob(*)"]
#: Result of a candidate with no run directory or a job that never started.
NOT_RUN = "not run"


# ------------------------------------------------------------------------------ reading runs
def experiment_of(run: RunInfo) -> str | None:
    """The experiment of a run: its run.json, else its job's ``experiment`` choice."""
    return (run.run or {}).get("experiment") or run.choices.get("experiment")


def candidate_of(run: RunInfo) -> str | None:
    """The candidate a run trained (its job's choice, else its summary)."""
    return run.choices.get("candidate") or (run.summary or {}).get("candidate")


def _dict(x: Any) -> dict[str, Any] | None:
    return x if isinstance(x, dict) else None


def _json_dict(path: Path) -> dict[str, Any] | None:
    """A JSON object file's content; None when missing, unreadable or not an object."""
    try:
        return _dict(read_json(path))
    except (OSError, ValueError):
        return None


_NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
#: an eval summary's figures (``prereg.ppo.evaluate.SUMMARY_FIELDS``; no JAX import here)
SUMMARY_FIELDS = ("success_rate", "mean_terminal_alignment", "mean_steps", "mean_return")


def _evaluation(x: Any) -> dict[str, Any] | None:
    """An eval summary with its figures as numbers: ``null`` (how prereg writes NaN) and the
    ``"nan"``/``"inf"`` strings of files written before that are NaN / inf."""
    ev = _dict(x)
    if ev is None:
        return None
    out = dict(ev)
    for key in SUMMARY_FIELDS:
        value = out.get(key, 0.0)
        if value is None:
            out[key] = float("nan")
        elif isinstance(value, str) and value in _NONFINITE:
            out[key] = _NONFINITE[value]
    return out


def grade_run(run: RunInfo, registration: Mapping[str, Any]) -> Grade | str:
    """A completed run's :class:`Grade`, or the reason it is not graded (never raises)."""
    if run.status != "completed":
        return run.status + (f": {run.reason}" if run.reason else "")
    return grade_files(run.path, registration)


def read_metrics(path: Path) -> pd.DataFrame | None:
    """A run directory's ``metrics.csv``; None when missing or unreadable."""
    try:
        return pd.read_csv(Path(path) / "metrics.csv")
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def grade_files(path: Path, registration: Mapping[str, Any]) -> Grade | str:
    """Grade a run directory's ``metrics.csv`` and eval JSONs, or say why it cannot be."""
    metrics = read_metrics(path)
    if metrics is None:
        return "metrics.csv missing or unreadable"
    evals = [
        _evaluation(
            _json_dict(path / "logs" / f"evaluation_seed_{registration[s]['seed_start']}.json")
        )
        for s in ("stage1", "stage3")
    ]
    grader = ladder_v2.grade if is_pooled(registration) else grade
    try:
        return grader(metrics, evals[0], evals[1], registration)
    except (NotGradable, KeyError, TypeError, ValueError) as exc:
        return f"not gradable: {exc}"


def _on_seeds(evaluation: Any, seed_start: int, n_seeds: int) -> bool:
    ev = _dict(evaluation) or {}
    return ev.get("seed_start") == seed_start and ev.get("n_seeds") == n_seeds


def collect_states(runs: Sequence[RunInfo], seed_start: int, n_seeds: int) -> list[dict]:
    """Every saved state with an eval on the given seeds: each run's final and best checkpoints.

    An eval-only run (``experiment=ppo_eval``) contributes the checkpoint it evaluated (its
    eval is in its summary; the file went beside the checkpoint).  A checkpoint reached both
    ways is listed once.
    """
    keys = SUMMARY_FIELDS
    states: list[dict] = []
    seen: set[str] = set()

    def add(state: dict[str, Any], evaluation: dict[str, Any]) -> None:
        if state["checkpoint"]:
            where = str(Path(state["checkpoint"]).resolve())
            if where in seen:
                return
            seen.add(where)
        states.append({**state, **{k: evaluation.get(k) for k in keys}})

    for run in runs:
        summary = run.summary or {}
        eval_only = summary.get("experiment") == "ppo_eval"
        ev = _evaluation(run.read_json(f"logs/evaluation_seed_{seed_start}.json"))
        if eval_only and ev is None:
            ev = _evaluation(summary.get("evaluation"))
        if _on_seeds(ev, seed_start, n_seeds):
            assert ev is not None
            add(
                {
                    "run": str(run.path),
                    "state": "evaluated checkpoint" if eval_only else "final",
                    "checkpoint": in_run(run.path, summary.get("checkpoint"))
                    if eval_only
                    else str(run.path / "checkpoints" / "final"),
                    "update": summary.get("update" if eval_only else "updates"),
                    "env_steps": summary.get("env_steps"),
                },
                ev,
            )
        meta = (_dict(run.read_json("checkpoints/best/checkpoint.json")) or {}).get("meta") or {}
        best = _evaluation(meta.get("evaluation"))
        if _on_seeds(best, seed_start, n_seeds):
            assert best is not None
            add(
                {
                    "run": str(run.path),
                    "state": "best",
                    "checkpoint": str(run.path / "checkpoints" / "best"),
                    "update": meta.get("update"),
                    "env_steps": meta.get("env_steps"),
                },
                best,
            )
        for one in member_states(run.path, seed_start, n_seeds):  # each seed of a multi-seed run
            add({k: v for k, v in one.items() if k != "evaluation"}, one["evaluation"])
    return states


def stage1_seeds(runs: Sequence[RunInfo]) -> tuple[int, int]:
    """The registered eval seeds (stage 1) of the runs' registration, else of ppo_pathb_v1."""
    for run in runs:
        stage = (_dict(run.read_json("registration.json")) or {}).get("stage1")
        if isinstance(stage, dict) and "seed_start" in stage:
            return int(stage["seed_start"]), int(stage["n_seeds"])
    stage = load_registered("ppo_pathb_v1")["stage1"]
    return int(stage["seed_start"]), int(stage["n_seeds"])


def path_a(runs: Sequence[RunInfo], seed_start: int, n_seeds: int) -> dict[str, Any]:
    """Path A: the best state across ``runs`` by the registered eval, and every state seen."""
    states = collect_states(runs, seed_start, n_seeds)
    return {
        "seed_start": seed_start,
        "n_seeds": n_seeds,
        "runs": len(runs),
        "states": states,
        "best": best_state(states),
    }


# ------------------------------------------------------------------------------ the verdict
def _setup_deviations(runs: Sequence[RunInfo], reg: Mapping[str, Any]) -> list[str]:
    """How the runs' set-up differs from the registered one (variant, tier, budget, fresh start)."""
    out: list[str] = []
    for run in runs:
        s = run.summary or {}
        seg = s.get("segment") or {}
        trained = None
        if "target_update" in seg:
            trained = int(seg["target_update"]) - int(seg.get("start_update", 0))
        for what, got, want in (
            ("variant", s.get("variant"), reg["variant"]),
            ("tier", s.get("tier"), reg["tier"]),
            ("updates", trained, reg["updates"]),
        ):
            if got is not None and got != want:
                out.append(f"{what} {got} (registered {want})")
        if seg.get("init_from"):
            out.append(f"continued from {seg['init_from']} (registered: a fresh run)")
    return sorted(set(out))


def _dotted(reg: Any, key: str) -> Any:
    for part in key.split("."):
        reg = reg.get(part, "<absent>") if isinstance(reg, dict) else "<absent>"
    return reg


def _exploratory(
    runs: Sequence[RunInfo], reg: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[str, Any]:
    """``{"is": bool, "why": "tier small, 3 updates"}``: whether the runs are not the registered
    set-up (variant, tier, updates, a fresh run) or not the frozen registration's constants."""
    why: list[str] = []
    for run in runs:
        s = run.summary or {}
        seg = s.get("segment") or {}
        if s.get("variant") is not None and s["variant"] != reg["variant"]:
            why.append(f"variant {s['variant']}")
        if s.get("tier") is not None and s["tier"] != reg["tier"]:
            why.append(f"tier {s['tier']}")
        if "target_update" in seg:
            trained = int(seg["target_update"]) - int(seg.get("start_update", 0))
            if trained != reg["updates"]:
                why.append(f"{trained} updates")
        if seg.get("init_from"):
            why.append("a continued run")
    why = list(dict.fromkeys(why))  # first-seen order, no repeats
    why += [f"{k} {_dotted(reg, k)}" for k in status["differing_constants"]]
    explore = {"is": bool(why), "why": ", ".join(why)}
    return mark_exploratory(explore, [r.run for r in runs])  # e.g. runs of hydra/sweeper=optuna


def registered_command(reg: Mapping[str, Any]) -> str:
    """The registered ladder as a fresh sweep (the registration by name if not the default)."""
    parts = list(REGISTERED_COMMAND)
    if reg.get("name") and reg["name"] != "ppo_pathb_v1":
        parts.append(f"registration={reg['name']}")
    return shlex.join(parts)


def _next_command(
    decision_outcome: str,
    adopted: str | None,
    reg: Mapping[str, Any],
    differing: Sequence[str],
    sweep_dir: Path,
) -> str:
    """The exact command that follows this verdict."""
    base = ["python", "run.py", "-m", "experiment=ppo", f"tier={reg['tier']}"]
    if reg["updates"] != PPOConf.updates:
        base.append(f"ppo.updates={reg['updates']}")
    if decision_outcome == "incomplete":
        manifest = _json_dict(sweep_dir / "sweep.json") or {}
        overrides = manifest.get("command_overrides") or [
            f"experiment={LADDER}",
            "candidate=glob(*)",
        ]
        parts = ["python", "run.py", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
        return shlex.join(parts)
    if adopted is not None:
        base.append(f"candidate={adopted}")
        prefix = f"candidates.{adopted}.set."
        for key in differing:
            if key.startswith(prefix):
                value = reg["candidates"][adopted]["set"][key.removeprefix(prefix)]
                base.append(f"registration.{key}={value}")
    base.append("variant=" + ",".join(REMAINING_VARIANTS))
    return shlex.join(base)


def _set_text(change: Mapping[str, Any]) -> str:
    return ", ".join(f"ppo.{k}={v:g}" for k, v in change.items())


def _candidates(
    reg: Mapping[str, Any], pool: Sequence[RunInfo]
) -> tuple[list[dict[str, Any]], Decision]:
    """A row per registered candidate (registered order) with its grade, and the decision."""
    by_candidate: dict[str, list[RunInfo]] = {}
    for r in pool:
        by_candidate.setdefault(str(candidate_of(r)), []).append(r)
    rows: list[tuple[str, Grade | str]] = []
    table = []
    for name in registered_names(reg):
        spec = reg["candidates"][name]
        found = by_candidate.get(name, [])
        if not found:
            g: Grade | str = "no run in this sweep"
            ran = False
        elif len(found) > 1:
            g = f"{len(found)} runs for one candidate: {', '.join(r.path.name for r in found)}"
        else:
            g = grade_run(found[0], reg)
        if found:
            ran = not (len(found) == 1 and found[0].status == "pending")
        rows.append((name, g))
        table.append(
            {
                "order": spec["order"],
                "candidate": name,
                "set": dict(spec["set"]),
                "falsifier": spec["falsifier"],
                "run": str(found[0].path) if len(found) == 1 else None,
                "status": found[0].status if len(found) == 1 else None,
                "graded": isinstance(g, Grade),
                "ran": ran,
                "not_graded_reason": None if isinstance(g, Grade) else g,
                "grade": g.to_dict() if isinstance(g, Grade) else None,
            }
        )
    decision = decide(rows)
    for row in table:
        row["result"] = (
            "ADOPTED"
            if row["candidate"] == decision.adopted
            else NOT_RUN
            if not row["ran"]
            else "not graded"
            if not row["graded"]
            else "PASS"
            if row["grade"]["passed"]
            else f"FAIL (Stage {row['grade']['failed_stage']})"
        )
    return table, decision


def _is_program(run: RunInfo) -> bool:
    """A ``ladder.mode=vmapped`` job's own run: it trains candidates, it is none of them."""
    return candidate_of(run) is None and (
        (run.summary or {}).get("ladder_mode") == "vmapped"
        or "ladder.mode=vmapped" in run.overrides
    )


def _control(runs: Sequence[RunInfo], reg: Mapping[str, Any]) -> dict[str, Any]:
    """The control run (default hparams on the registered set-up): its grade, never adopted."""
    if len(runs) > 1:
        return {
            "run": None,
            "graded": False,
            "grade": None,
            "sentence": (f"{len(runs)} control runs: {', '.join(r.path.name for r in runs)}"),
        }
    g = grade_run(runs[0], reg)
    if not isinstance(g, Grade):
        sentence = f"not graded ({g})"
    elif g.passed:
        sentence = (
            "passes all three stages at the default hparams: the instability the ladder exists "
            "to fix did not appear in this run"
        )
    else:
        sentence = (
            f"fails Stage {g.failed_stage} at the default hparams: the instability the ladder "
            "exists to fix is there"
        )
    return {
        "run": str(runs[0].path),
        "status": runs[0].status,
        "graded": isinstance(g, Grade),
        "grade": g.to_dict() if isinstance(g, Grade) else None,
        "sentence": sentence,
    }


def _sentence(decision: Decision, reg: Mapping[str, Any], exploratory: bool = False) -> str:
    if exploratory:  # stage results on this set-up, never an adoption or a rejection
        note = "exploratory: not the registered set-up"
        if decision.outcome == "adopted":
            return (
                f"{note} — {decision.adopted} is the first candidate to pass all three stages "
                "on this set-up (adopts nothing)"
            )
        if decision.outcome == "rejected":
            return f"{note} — no candidate passed all three stages on this set-up (rejects nothing)"
        return f"{note} — not graded on this set-up: " + ", ".join(decision.ungraded)
    if decision.outcome == "adopted":
        change = _set_text(reg["candidates"][decision.adopted]["set"])
        return (
            f"Adopted: {decision.adopted} ({change}), the first candidate in registered order "
            "to pass all three stages"
        )
    if decision.outcome == "rejected":
        return f"{REJECTED} (no candidate passed all three stages)"
    return "No verdict yet: grade " + ", ".join(decision.ungraded) + " first (not graded)"


def _trust_data(
    reg: Mapping[str, Any], table: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[pd.DataFrame | None, dict | None, dict | None]]:
    """Each candidate run's metrics and stage-1/stage-3 evals, for the trust section."""
    data = {}
    for row in table:
        if row["run"] is None or not row["ran"]:
            continue
        path = Path(row["run"])
        evals = [
            _evaluation(_json_dict(path / "logs" / f"evaluation_seed_{reg[s]['seed_start']}.json"))
            for s in ("stage1", "stage3")
        ]
        data[row["candidate"]] = (read_metrics(path), evals[0], evals[1])
    return data


def compute_verdict(sweep_dir: Path) -> dict[str, Any]:
    """The full ladder verdict as a JSON-able dict (see the module docstring)."""
    sweep_dir = Path(sweep_dir)
    # a vmapped ladder job's own run (no candidate) holds its candidates' runs; they are graded
    runs = [r for r in find_runs([sweep_dir]) if experiment_of(r) == LADDER and not _is_program(r)]
    out: dict[str, Any] = {"experiment": LADDER, "sweep_dir": str(sweep_dir)}
    groups = by_registration(runs)
    hashes = sorted(h for h in groups if h is not None)
    reg = None
    if len(hashes) == 1:
        reg = next(
            (x for r in groups[hashes[0]] if (x := _dict(r.read_json("registration.json")))),
            None,
        )
    if reg is None:
        out["refused"] = (
            "no ppo_ladder run with a registration hash found"
            if not hashes
            else "registration.json missing from every run"
            if len(hashes) == 1
            else "runs of different registrations cannot be pooled: "
            + "; ".join(
                f"hash {h}: {', '.join(sorted(r.path.name for r in groups[h]))}" for h in hashes
            )
        )
        out["decision"] = {"outcome": "refused", "adopted": None, "sentence": out["refused"]}
        return out
    status = registration_status(reg, hashes[0], schema_of(reg))
    out["registration"] = status
    pool = groups[hashes[0]] + groups.get(None, [])
    table, decision = _candidates(reg, pool)
    out["modes"] = sorted({str(m) for r in pool if (m := (r.summary or {}).get("ladder_mode"))})
    control = [r for r in pool if candidate_of(r) == CONTROL]
    if control:
        out["control"] = _control(control, reg)
    explore = _exploratory(pool, reg, status)
    out["exploratory"] = explore
    try:  # the frozen file's set-up: what the next command of an exploratory verdict runs
        frozen = load_registered(str(status["name"]))
    except OSError:
        frozen = dict(reg)
    out["registered_setup"] = {k: frozen.get(k) for k in ("variant", "tier", "updates")}
    out["candidates"] = table
    out["decision"] = {
        "outcome": decision.outcome,
        "adopted": decision.adopted,
        "ungraded": list(decision.ungraded),
        "sentence": _sentence(decision, reg, explore["is"]),
    }
    # an exploratory verdict quotes no registered falsifier as a finding and acts on nothing
    out["falsifiers"] = [
        {"candidate": r["candidate"], "failed_stage": r["grade"]["failed_stage"],
         "falsifier": r["falsifier"]}
        for r in table
        if r["graded"] and not r["grade"]["passed"] and not explore["is"]
    ]  # fmt: skip
    out["setup_deviations"] = _setup_deviations(pool, reg)
    if decision.outcome == "rejected" and not explore["is"]:
        out["path_a"] = path_a(
            pool, int(reg["stage1"]["seed_start"]), int(reg["stage1"]["n_seeds"])
        )
    out["trust"] = json_safe(trust_section(reg, _trust_data(reg, table)))
    out["next_command"] = (
        registered_command(reg)
        if explore["is"]
        else _next_command(
            decision.outcome, decision.adopted, reg, status["differing_constants"], sweep_dir
        )
    )
    return out


# ------------------------------------------------------------------------------ rendering
def _f(x: Any, fmt: str = ".4g") -> str:
    return "—" if x is None else format(x, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _stage_cell(stage: Mapping[str, Any]) -> str:
    """Each check as the comparison that holds: ``log_std delta 0.04633 > 0: FAIL``."""
    if stage["result"] == NOT_REACHED:
        return NOT_REACHED
    return "; ".join(statement(c) for c in stage["checks"])


def state_line(state: Mapping[str, Any]) -> str:
    """One line naming a saved state, where its checkpoint is and its registered eval."""
    return (
        f"`{state['checkpoint']}` ({state['state']} of {Path(state['run']).name}, update "
        f"{state['update']}, env_steps {state['env_steps']}): success_rate "
        f"{_f(state['success_rate'], '.3f')}, alignment "
        f"{_f(state['mean_terminal_alignment'], '.3f')}, "
        f"mean_steps {_f(state['mean_steps'], '.1f')}"
    )


def render_path_a(pa: Mapping[str, Any]) -> list[str]:
    """Path A's best state and the table of every state considered (Markdown lines)."""
    lines = [
        f"Best state by success_rate at seed_start {pa['seed_start']} ({pa['n_seeds']} seeds) "
        f"over {len(pa['states'])} saved states of {pa['runs']} runs:",
        "",
    ]
    if pa["best"] is None:
        return lines + ["no saved state with an eval on those seeds."]
    lines += [f"**{state_line(pa['best'])}**", ""]
    return lines + _table(
        ["run", "state", "update", "env_steps", "success_rate", "alignment", "mean_steps"],
        [
            [Path(s["run"]).name, s["state"], s["update"], s["env_steps"],
             _f(s["success_rate"], ".3f"), _f(s["mean_terminal_alignment"], ".3f"),
             _f(s["mean_steps"], ".1f")]
            for s in pa["states"]
        ],
    )  # fmt: skip


def _exploratory_result(d: Mapping[str, Any]) -> str:
    """The stage results of an exploratory ladder in one plain (not bold) sentence."""
    if d["outcome"] == "adopted":
        return (
            f"Stage results on this set-up: {d['adopted']} is the first candidate in registered "
            "order to pass all three stages."
        )
    if d["outcome"] == "rejected":
        return "Stage results on this set-up: no candidate passed all three stages."
    return "Stage results on this set-up: not graded yet: " + ", ".join(d["ungraded"]) + "."


def _result_cell(r: Mapping[str, Any]) -> str:
    if r["graded"]:
        return r["result"]
    if r["result"] == NOT_RUN:
        return f"{NOT_RUN} ({r['not_graded_reason']})"
    return f"{r['result']}: {r['not_graded_reason']}"


def render_markdown(v: Mapping[str, Any]) -> str:
    """verdict.md: a row per candidate with each stage's figures, gates and PASS/FAIL."""
    lines = [f"# PPO Path-B ladder verdict — {v['sweep_dir']}", ""]
    if "refused" in v:
        return "\n".join(lines + [f"**REFUSED**: {v['refused']}", ""])
    d = v["decision"]
    explore = v.get("exploratory") or {}
    if explore.get("is"):
        lines += [
            f"**exploratory: not the registered set-up ({explore['why']})** — the stage "
            "results below are reported as measured; they adopt or reject no candidate.",
            "",
            _exploratory_result(d),
            "",
            registration_line(v["registration"]),
        ]
    else:
        lines += [f"**{d['sentence']}**", "", registration_line(v["registration"])]
    if v["setup_deviations"]:
        lines.append(
            "Run set-up: **not the registered set-up** — " + "; ".join(v["setup_deviations"]) + "."
        )
    lines += ["", "## Candidates in registered order", ""]
    lines += _table(
        ["order", "candidate", "change", "Stage 1", "Stage 2", "Stage 3", "result"],
        [
            [
                r["order"],
                r["candidate"],
                _set_text(r["set"]),
                *(
                    [_stage_cell(s) for s in r["grade"]["stages"]]
                    if r["graded"]
                    else ["—", "—", "—"]
                ),
                _result_cell(r),
            ]
            for r in v["candidates"]
        ],
    )
    if "vmapped" in (v.get("modes") or []):
        lines += [
            "",
            "ladder.mode=vmapped: every candidate trained at once in one program, so "
            "sequential mode's early stop (no candidate after the first that passes) did "
            "not apply; the verdict is the same rule.",
        ]
    if "control" in v:
        c = v["control"]
        lines += [
            "",
            "## Control: the registered set-up at the default hparams (reported, never adopted)",
            "",
            f"The control {c['sentence']}.",
        ]
        if c["graded"]:
            lines += [""] + _table(
                ["Stage 1", "Stage 2", "Stage 3"],
                [[_stage_cell(s) for s in c["grade"]["stages"]]],
            )
    lines += ["", "## Stages", ""]
    rows = []
    for r in v["candidates"]:
        for s in (r["grade"] or {}).get("stages", []):
            stage = f"{s['number']} {s['name']}: {s['result']}"
            if not s["checks"]:
                rows.append([r["candidate"], stage, "—", "—", "—", s["result"]])
            for c in s["checks"]:
                result = ("PASS" if c["passed"] else "FAIL") + (
                    f" ({s['reason']})" if s["reason"] else ""
                )
                rate = rate_text(c.get("count"), c.get("interval"))
                value = _f(c["figure"]) + (f" ({rate})" if rate else "")
                rows.append([r["candidate"], stage, c["label"], value, c["gate"], result])
    lines += _table(["candidate", "stage", "figure", "value", "gate", "result"], rows)
    if v["falsifiers"]:
        lines += ["", "## Falsifiers of the rejected candidates", ""]
        lines += [
            f'- {f["candidate"]} (failed Stage {f["failed_stage"]}): "{f["falsifier"]}"'
            for f in v["falsifiers"]
        ]
    if "path_a" in v:
        lines += ["", "## Path A: best state across these runs", ""]
        lines += render_path_a(v["path_a"])
    if "trust" in v:
        lines += ["", *render_trust(v["trust"])]
    lines += ["", "## Next command", ""]
    if explore.get("is"):
        setup = v.get("registered_setup") or {}
        lines += [
            "This sweep is exploratory; the registered ladder (variant "
            f"{setup.get('variant')}, tier {setup.get('tier')}, {setup.get('updates')} updates "
            "per candidate) is:",
            "",
        ]
    elif d["outcome"] == "rejected":
        lines += [
            "Path A: the remaining variants at the default hparams, with best-state discipline "
            "(`python -m prereg best-state <run dirs>` picks each chain's best state):",
            "",
        ]
    elif d["outcome"] == "incomplete":
        lines += ["Grade the missing candidates: re-run the sweep into the same directory:", ""]
    lines += ["```bash", v["next_command"], "```", ""]
    return "\n".join(lines)


def load_tables(v: Mapping[str, Any]) -> tuple[dict[str, pd.DataFrame], dict[str, Any] | None]:
    """Each graded-or-not candidate run's metrics (the verdict's reader), and its registration."""
    tables: dict[str, pd.DataFrame] = {}
    reg = None
    for row in v.get("candidates") or []:
        if not row.get("run"):
            continue
        m = read_metrics(Path(row["run"]))
        if m is not None and not m.empty and "update" in m:
            tables[row["candidate"]] = m
        reg = reg or _json_dict(Path(row["run"]) / "registration.json")
    return tables, reg


def write_verdict(sweep_dir: Path) -> str:
    """Compute, write ``verdict.json`` and ``verdict.md`` in ``sweep_dir``, return the markdown."""
    from prereg.core.verdict_files import write_verdict_files
    from prereg.ppo.ladder_plots import write_plots

    def plots(directory: Path, v: dict[str, Any]) -> str:
        return write_plots(directory, v, lambda: load_tables(v))

    return write_verdict_files(sweep_dir, compute_verdict, render_markdown, plots=plots)


def best_state_report(paths: Sequence[str | Path], as_json: bool = False) -> tuple[str, int]:
    """``python -m prereg best-state``: (text, exit status) over the runs under ``paths``."""
    import json

    runs = find_runs(list(paths))
    seed_start, n_seeds = stage1_seeds(runs)
    pa = path_a(runs, seed_start, n_seeds)
    text = json.dumps(json_safe(pa), indent=2) if as_json else "\n".join(render_path_a(pa))
    return text, 0 if pa["best"] is not None else 1

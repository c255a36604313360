"""The pre-registered Path-B acceptance ladder (seed 003 section 5) as pure functions.

Inputs: a run's metrics table (one row per update with ``update``, ``entropy``, ``log_std``,
``value_loss``) and its eval summaries (``logs/evaluation_seed_<start>.json`` as dicts); every
threshold comes from the registration (``registration.stage1/2/3``).  Nothing here reads files.

==========  ===================================================================  ==========
stage       figure                                                               passes if
==========  ===================================================================  ==========
1           success_rate at stage1 seeds (10000, 32 seeds)                       >= 0.40
2           entropy[-1] over the final ``window`` (50) updates                   < 2.28
2           log_std[-1] - log_std[-window]                                       <= 0
2           value_loss in every one of the final ``window`` updates              <= 400
3           abs(success(stage3 seeds, 20000) - success(stage1 seeds))            <= 0.10
==========  ===================================================================  ==========

A stage after a failed one is "not reached"; a run with fewer than ``window`` updates fails
Stage 2.  Each :class:`Check` also carries its comparison (``op``, ``threshold``) so that
:func:`statement` prints the comparison that holds (``log_std delta 0.04633 > 0: FAIL``), and
a success rate carries its count and Wilson 95% interval.  Computed differences (the log_std
change, the success gap) are rounded to :data:`DECIMALS` decimals before the comparison, so a
gap that equals the gate in decimal (0.4 - 0.3) counts as equal; real success rates (k / 32)
are exact in binary anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from prereg.core.stats import wilson_interval

PASS, FAIL, NOT_REACHED = "PASS", "FAIL", "not reached"
DECIMALS = 12
STAGE_NAMES = {
    1: "success_rate (primary substrate)",
    2: "training dynamics (final updates)",
    3: "seed-shifted eval (cross-substrate)",
}


class NotGradable(ValueError):
    """An input the ladder needs is missing, or was evaluated on other than the registered seeds."""


#: the comparison that holds when a gate's comparison does not
NEGATED = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}


@dataclass(frozen=True)
class Check:
    """One figure against one gate (``figure <op> threshold``), with the figure's short name
    and, for a success rate, its count ``[k, n]`` and Wilson 95% ``interval``."""

    label: str
    figure: float | None
    gate: str
    passed: bool
    name: str = ""
    op: str = ""
    threshold: float | None = None
    count: tuple[int, int] | None = None
    interval: tuple[float, float] | None = None


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "—" if x is None else format(x, fmt)


def rate_text(count: Sequence[int] | None, interval: Sequence[float] | None) -> str:
    """``13/32, 95% CI 0.255-0.577`` (empty without a count)."""
    if not count:
        return ""
    text = f"{count[0]}/{count[1]}"
    if interval is not None and all(x is not None and math.isfinite(x) for x in interval):
        text += f", 95% CI {interval[0]:.3f}-{interval[1]:.3f}"
    return text


def statement(check: Mapping[str, Any] | Check) -> str:
    """The comparison that holds, then the result: ``log_std delta 0.04633 > 0: FAIL``.

    A NaN figure reads ``not <= 400`` (no comparison holds).  Checks written before the
    comparison was recorded fall back to ``<figure> (gate <gate>): PASS``.
    """
    c = asdict(check) if isinstance(check, Check) else dict(check)
    result = PASS if c["passed"] else FAIL
    name, fig = c.get("name") or c["label"], c["figure"]
    rate = rate_text(c.get("count"), c.get("interval"))
    value = _num(fig) + (f" ({rate})" if rate else "")
    if not c.get("op") or c.get("threshold") is None:
        return f"{name} {value} (gate {c['gate']}): {result}"
    finite = fig is not None and math.isfinite(fig)
    op = c["op"] if c["passed"] else NEGATED[c["op"]] if finite else f"not {c['op']}"
    return f"{name} {value} {op} {c['threshold']:g}: {result}"


def episodes_per_train_seed(evaluation: Mapping[str, Any]) -> int:
    """Eval episodes per training seed: each ``per_seed`` entry's ``n_seeds`` in a pooled
    multi-seed eval (whose own ``n_seeds`` may count all episodes), else ``n_seeds``."""
    per_seed = evaluation.get("per_seed")
    if isinstance(per_seed, list) and per_seed and isinstance(per_seed[0], Mapping):
        return int(per_seed[0].get("n_seeds", 0))
    return int(evaluation.get("n_seeds", 0))


def rate_of(evaluation: Mapping[str, Any]) -> tuple[int, int]:
    """``(successes, episodes)`` of an eval: ``n_success`` when written, else rate x episodes.

    Episodes: the sum over a pooled eval's ``per_seed`` entries, else ``n_seeds`` times
    ``n_train_seeds`` (1 when absent).
    """
    per_seed = evaluation.get("per_seed")
    if isinstance(per_seed, list) and per_seed and all(isinstance(e, Mapping) for e in per_seed):
        n = sum(int(e.get("n_seeds", 0)) for e in per_seed)
    else:
        n = int(evaluation.get("n_seeds", 0)) * int(evaluation.get("n_train_seeds", 1) or 1)
    k = evaluation.get("n_success")
    if k is None:
        k = round(float(evaluation["success_rate"]) * n)
    return int(k), n


def rate_check(
    label: str, evaluation: Mapping[str, Any], op: str, gate: float, passed: bool
) -> Check:
    """A check of a success rate, carrying its count and Wilson interval."""
    k, n = rate_of(evaluation)
    rate = float(evaluation["success_rate"])
    return Check(label, rate, f"{op} {gate:g}", passed, "success_rate", op, gate, (k, n),
                 wilson_interval(k, n))  # fmt: skip


@dataclass(frozen=True)
class Stage:
    """One stage: PASS, FAIL or not reached, with its checks."""

    number: int
    result: str
    checks: tuple[Check, ...] = ()
    reason: str | None = None

    @property
    def name(self) -> str:
        return STAGE_NAMES[self.number]


@dataclass(frozen=True)
class Grade:
    """A candidate's three stages."""

    stages: tuple[Stage, Stage, Stage]

    @property
    def passed(self) -> bool:
        return all(s.result == PASS for s in self.stages)

    @property
    def failed_stage(self) -> int | None:
        return next((s.number for s in self.stages if s.result == FAIL), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed_stage": self.failed_stage,
            "stages": [{**asdict(s), "name": s.name} for s in self.stages],
        }


@dataclass(frozen=True)
class Decision:
    """The ladder's outcome over candidates in registered order."""

    outcome: str  # "adopted" | "rejected" | "incomplete"
    adopted: str | None
    ungraded: tuple[str, ...]  # candidates that must be graded before a decision


def _rounded(x: float) -> float:
    return round(x, DECIMALS) if math.isfinite(x) else x


def _stage(number: int, checks: Sequence[Check], reason: str | None = None) -> Stage:
    return Stage(number, PASS if all(c.passed for c in checks) else FAIL, tuple(checks), reason)


def _success(evaluation: Mapping[str, Any] | None, spec: Mapping[str, Any], stage: str) -> float:
    """The success rate of an eval on the registered seeds (raises :class:`NotGradable`)."""
    start, n = int(spec["seed_start"]), int(spec["n_seeds"])
    if evaluation is None:
        raise NotGradable(f"the {stage} eval (logs/evaluation_seed_{start}.json) is missing")
    got = (evaluation.get("seed_start", start), evaluation.get("n_seeds", n))
    if got != (start, n):
        raise NotGradable(
            f"the {stage} eval ran at seed_start {got[0]} with {got[1]} seeds; "
            f"registered {start} with {n}"
        )
    return float(evaluation["success_rate"])


def stage1(evaluation: Mapping[str, Any] | None, spec: Mapping[str, Any]) -> Stage:
    """Stage 1: success_rate at the stage-1 seeds >= ``min_success_rate``."""
    rate = _success(evaluation, spec, "stage-1")
    assert evaluation is not None
    gate = float(spec["min_success_rate"])
    label = f"success_rate @ seed_start {spec['seed_start']} ({spec['n_seeds']} seeds)"
    return _stage(1, [rate_check(label, evaluation, ">=", gate, rate >= gate)])


def stage2(metrics: pd.DataFrame, spec: Mapping[str, Any]) -> Stage:
    """Stage 2 over the final ``window`` updates: entropy end, log_std change, value_loss."""
    missing = [c for c in ("update", "entropy", "log_std", "value_loss") if c not in metrics]
    if missing:
        raise NotGradable(f"metrics lack column(s) {', '.join(missing)}")
    window = int(spec["window"])
    table = metrics.sort_values("update")
    if len(table) < window:
        reason = f"only {len(table)} updates, fewer than the window of {window}"
        count = Check("updates in metrics", float(len(table)), f">= {window}", False,
                      "updates", ">=", float(window))  # fmt: skip
        return Stage(2, FAIL, (count,), reason)
    tail = table.iloc[-window:]
    entropy = float(tail["entropy"].iloc[-1])
    delta = _rounded(float(tail["log_std"].iloc[-1]) - float(tail["log_std"].iloc[0]))
    losses = tail["value_loss"].to_numpy(dtype=float)
    max_entropy = float(spec["max_final_entropy"])
    max_delta = float(spec["max_log_std_delta"])
    max_loss = float(spec["max_value_loss"])
    checks = [
        Check("entropy[-1]", entropy, f"< {max_entropy:g}", entropy < max_entropy,
              "entropy[-1]", "<", max_entropy),
        Check(f"log_std[-1] - log_std[-{window}]", delta, f"<= {max_delta:g}",
              delta <= max_delta, "log_std delta", "<=", max_delta),
        Check(
            f"max value_loss over the final {window} updates",
            float(np.max(losses)),
            f"<= {max_loss:g} in every update",
            bool(np.all(losses <= max_loss)),
            "max value_loss",
            "<=",
            max_loss,
        ),
    ]  # fmt: skip
    return _stage(2, checks)


def stage3(
    evaluation3: Mapping[str, Any] | None,
    evaluation1: Mapping[str, Any] | None,
    spec3: Mapping[str, Any],
    spec1: Mapping[str, Any],
) -> Stage:
    """Stage 3: abs(success at stage-3 seeds - success at stage-1 seeds) <= ``max_abs_gap``."""
    s3 = _success(evaluation3, spec3, "stage-3")
    s1 = _success(evaluation1, spec1, "stage-1")
    assert evaluation1 is not None and evaluation3 is not None
    gap = _rounded(abs(s3 - s1))
    gate = float(spec3["max_abs_gap"])
    (k3, n3), (k1, n1) = rate_of(evaluation3), rate_of(evaluation1)
    label = (
        f"abs(success @ {spec3['seed_start']} - success @ {spec1['seed_start']}) "
        f"({s3:.3f} [{rate_text((k3, n3), wilson_interval(k3, n3))}] vs "
        f"{s1:.3f} [{rate_text((k1, n1), wilson_interval(k1, n1))}])"
    )
    check = Check(label, gap, f"<= {gate:g}", gap <= gate, "success gap", "<=", gate)
    return _stage(3, [check])


def grade(
    metrics: pd.DataFrame,
    evaluation1: Mapping[str, Any] | None,
    evaluation3: Mapping[str, Any] | None,
    registration: Mapping[str, Any],
) -> Grade:
    """All three stages in order; a stage after a failed one is not reached (and needs no input)."""
    s1 = stage1(evaluation1, registration["stage1"])
    if s1.result != PASS:
        return Grade((s1, Stage(2, NOT_REACHED), Stage(3, NOT_REACHED)))
    s2 = stage2(metrics, registration["stage2"])
    if s2.result != PASS:
        return Grade((s1, s2, Stage(3, NOT_REACHED)))
    s3 = stage3(evaluation3, evaluation1, registration["stage3"], registration["stage1"])
    return Grade((s1, s2, s3))


def decide(rows: Sequence[tuple[str, Grade | str]]) -> Decision:
    """Adopt the first candidate (rows in registered order) that passes all three stages.

    A row is a :class:`Grade` or the reason the candidate is not graded.  The adoption holds
    only if every earlier candidate was graded (and failed); otherwise the outcome is
    ``incomplete`` and names the candidates to grade first.  With every candidate graded and
    none passing, Path B is ``rejected``.
    """
    ungraded: list[str] = []
    for name, g in rows:
        if isinstance(g, Grade) and g.passed:
            if ungraded:
                return Decision("incomplete", None, tuple(ungraded))
            return Decision("adopted", name, ())
        if not isinstance(g, Grade):
            ungraded.append(name)
    return Decision("incomplete" if ungraded else "rejected", None, tuple(ungraded))


def state_key(state: Mapping[str, Any]) -> tuple[float, float, float]:
    """Sort key of a saved state by its registered eval: success, then alignment, then speed."""

    def num(key: str, default: float) -> float:
        x = state.get(key)
        return default if x is None or not math.isfinite(float(x)) else float(x)

    return (
        num("success_rate", -math.inf),
        num("mean_terminal_alignment", -math.inf),
        -num("mean_steps", math.inf),
    )


def best_state(states: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Path A's best state: the highest :func:`state_key` (the first one on ties), or None."""
    best = None
    for s in states:
        if best is None or state_key(s) > state_key(best):
            best = s
    return best

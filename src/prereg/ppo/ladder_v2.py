"""The multi-seed Path-B ladder (``registration=ppo_pathb_v2``) as pure functions.

Same stages, order and decision as :mod:`prereg.ppo.ladder`; every gate pools the
``num_seeds`` training seeds of one candidate's run (``metrics.csv`` rows per update and
``seed``; evaluations pooled over seeds, ``n_train_seeds`` recorded):

==========  ==========================================================================  =========
stage       figure                                                                      passes if
==========  ==========================================================================  =========
1           Wilson 95% lower bound of the pooled success at the stage-1 seeds            >= 0.40
2           mean over seeds of entropy[-1]                                              < 2.28
2           upper 95% bound of the OLS slope of log_std on update, final ``window``,    <= 5e-4
            pooled over seeds (one intercept each)
2           mean explained_variance over the final ``window`` updates of every seed     >= 0.5
3           two-sided two-proportion z-test, success(stage 3) vs success(stage 1): p    >= 0.05
==========  ==========================================================================  =========

Thresholds come from the registration.  The pooled episodes share their start states across
training seeds (the same eval seeds), so the Wilson interval treats them as independent trials
of the seeds' mean policy; the trust section of the verdict says how often each gate errs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from prereg.core.stats import slope_upper_bound, two_proportion_test, wilson_interval
from prereg.ppo.ladder import (
    FAIL,
    NOT_REACHED,
    PASS,
    Check,
    Grade,
    NotGradable,
    Stage,
    episodes_per_train_seed,
    rate_of,
    rate_text,
)

STAGE2_COLUMNS = ("update", "entropy", "log_std", "explained_variance")


def _stage(number: int, checks: list[Check], reason: str | None = None) -> Stage:
    return Stage(number, PASS if all(c.passed for c in checks) else FAIL, tuple(checks), reason)


def pooled_eval(
    evaluation: Mapping[str, Any] | None, spec: Mapping[str, Any], num_seeds: int, stage: str
) -> tuple[int, int]:
    """``(successes, episodes)`` of a pooled eval on the registered seeds, or NotGradable."""
    start, n = int(spec["seed_start"]), int(spec["n_seeds"])
    if evaluation is None:
        raise NotGradable(f"the {stage} eval (logs/evaluation_seed_{start}.json) is missing")
    got = (evaluation.get("seed_start", start), episodes_per_train_seed(evaluation) or n)
    if got != (start, n):
        raise NotGradable(
            f"the {stage} eval ran at seed_start {got[0]} with {got[1]} seeds; "
            f"registered {start} with {n}"
        )
    trained = int(evaluation.get("n_train_seeds", 1) or 1)
    if trained != num_seeds:
        raise NotGradable(
            f"the {stage} eval pools {trained} training seed(s); registered {num_seeds}"
        )
    return rate_of(evaluation)


def stage1(evaluation: Mapping[str, Any] | None, spec: Mapping[str, Any], num_seeds: int) -> Stage:
    """Stage 1: the Wilson lower bound of the pooled success >= ``min_success_rate``."""
    k, n = pooled_eval(evaluation, spec, num_seeds, "stage-1")
    conf = float(spec["confidence"])
    lo, hi = wilson_interval(k, n, conf)
    gate = float(spec["min_success_rate"])
    label = (
        f"Wilson {conf:.0%} lower bound of success @ seed_start {spec['seed_start']} "
        f"({num_seeds} x {spec['n_seeds']} episodes, rate {k / n:.3f})"
    )
    name = "success lower bound"
    check = Check(label, lo, f">= {gate:g}", lo >= gate, name, ">=", gate, (k, n), (lo, hi))
    return _stage(1, [check])


def _per_seed(metrics: pd.DataFrame, window: int) -> dict[Any, pd.DataFrame]:
    """Each seed's final ``window`` updates (a table without ``seed`` is one seed)."""
    groups = metrics.groupby("seed") if "seed" in metrics else [(0, metrics)]
    return {s: t.sort_values("update").iloc[-window:] for s, t in groups}


def stage2(metrics: pd.DataFrame, spec: Mapping[str, Any], num_seeds: int) -> Stage:
    """Stage 2 over every seed's final ``window`` updates: entropy, log_std slope, explained var."""
    missing = [c for c in STAGE2_COLUMNS if c not in metrics]
    if num_seeds > 1 and "seed" not in metrics:
        missing.append("seed")
    if missing:
        raise NotGradable(f"metrics lack column(s) {', '.join(missing)}")
    window = int(spec["window"])
    seeds = {s: t for s, t in metrics.groupby("seed")} if "seed" in metrics else {0: metrics}
    if len(seeds) != num_seeds:
        raise NotGradable(f"metrics hold {len(seeds)} training seed(s); registered {num_seeds}")
    shortest = min(len(t) for t in seeds.values())
    if shortest < window:
        reason = f"only {shortest} updates, fewer than the window of {window}"
        count = Check("updates in metrics (fewest over seeds)", float(shortest), f">= {window}",
                      False, "updates", ">=", float(window))  # fmt: skip
        return Stage(2, FAIL, (count,), reason)
    tails = _per_seed(metrics, window)
    return _stage(2, stage2_checks(tails, spec))


def stage2_checks(tails: Mapping[Any, pd.DataFrame], spec: Mapping[str, Any]) -> list[Check]:
    """The three Stage-2 checks on each seed's final-window table (also used per window by
    the trust section)."""
    window, conf = int(spec["window"]), float(spec["confidence"])
    entropy = float(np.mean([float(t["entropy"].iloc[-1]) for t in tails.values()]))
    x = np.concatenate([t["update"].to_numpy(float) for t in tails.values()])
    y = np.concatenate([t["log_std"].to_numpy(float) for t in tails.values()])
    groups = np.concatenate([np.full(len(t), i) for i, t in enumerate(tails.values())])
    fit = slope_upper_bound(x, y, groups, conf)
    ev = float(np.mean(np.concatenate([t["explained_variance"].to_numpy(float)
                                       for t in tails.values()])))  # fmt: skip
    max_entropy = float(spec["max_final_entropy"])
    max_slope = float(spec["max_log_std_slope"])
    min_ev = float(spec["min_explained_variance"])
    n = len(tails)
    return [
        Check(f"mean over {n} seed(s) of entropy[-1]", entropy, f"< {max_entropy:g}",
              entropy < max_entropy, "mean entropy[-1]", "<", max_entropy),
        Check(f"upper {conf:.0%} bound of the log_std slope per update over the final {window} "
              f"updates ({n} seed(s) pooled; slope {fit.slope:.3g})", fit.upper,
              f"<= {max_slope:g}", bool(fit.upper <= max_slope), "log_std slope upper bound",
              "<=", max_slope),
        Check(f"mean explained_variance over the final {window} updates ({n} seed(s))", ev,
              f">= {min_ev:g}", ev >= min_ev, "mean explained_variance", ">=", min_ev),
    ]  # fmt: skip


def stage3(
    evaluation3: Mapping[str, Any] | None,
    evaluation1: Mapping[str, Any] | None,
    spec3: Mapping[str, Any],
    spec1: Mapping[str, Any],
    num_seeds: int,
) -> Stage:
    """Stage 3: the two-proportion test of success(stage 3) = success(stage 1) is not rejected."""
    k3, n3 = pooled_eval(evaluation3, spec3, num_seeds, "stage-3")
    k1, n1 = pooled_eval(evaluation1, spec1, num_seeds, "stage-1")
    test = two_proportion_test(k3, n3, k1, n1)
    alpha = float(spec3["alpha"])
    label = (
        f"two-proportion test p-value, success @ {spec3['seed_start']} "
        f"({k3 / n3:.3f} [{rate_text((k3, n3), wilson_interval(k3, n3))}]) vs "
        f"@ {spec1['seed_start']} ({k1 / n1:.3f} [{rate_text((k1, n1), wilson_interval(k1, n1))}])"
    )
    check = Check(label, test.p_value, f">= {alpha:g}", test.p_value >= alpha,
                  "two-proportion p-value", ">=", alpha)  # fmt: skip
    return _stage(3, [check])


def grade(
    metrics: pd.DataFrame,
    evaluation1: Mapping[str, Any] | None,
    evaluation3: Mapping[str, Any] | None,
    registration: Mapping[str, Any],
) -> Grade:
    """All three v2 stages in order; a stage after a failed one is not reached."""
    n = int(registration["num_seeds"])
    s1 = stage1(evaluation1, registration["stage1"], n)
    if s1.result != PASS:
        return Grade((s1, Stage(2, NOT_REACHED), Stage(3, NOT_REACHED)))
    s2 = stage2(metrics, registration["stage2"], n)
    if s2.result != PASS:
        return Grade((s1, s2, Stage(3, NOT_REACHED)))
    s3 = stage3(evaluation3, evaluation1, registration["stage3"], registration["stage1"], n)
    return Grade((s1, s2, s3))

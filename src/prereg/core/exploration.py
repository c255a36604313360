"""Runs made by an exploring sweeper are labelled in ``run.json`` and never count as registered.

``hydra/sweeper=optuna`` and ``hydra/sweeper=prereg_random`` pick their jobs to search, not to
test: each job they launch records ``"exploratory": {"sweeper": <name>}`` in its ``run.json``
(:func:`label`, written when the job claims its directory), and a verdict over runs holding
any such run is exploratory (:func:`mark`): it adopts, rejects and falsifies nothing, whatever
registered runs sit beside them.  A registration is frozen from what a search found, then run
with the basic sweeper.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the hydra/sweeper options that explore (prereg's own sampling sweepers)
EXPLORING_SWEEPERS = ("optuna", "prereg_random")


def label(sweeper: str | None) -> dict[str, Any]:
    """``run.json``'s fields for a job launched by ``sweeper`` (``{}`` for a non-exploring one)."""
    if sweeper not in EXPLORING_SWEEPERS:
        return {}
    return {"exploratory": {"sweeper": sweeper}}


def sweepers(records: Iterable[dict[str, Any] | None]) -> list[str]:
    """The exploring sweepers that made any of these ``run.json`` records, in first-seen order."""
    found = [((r or {}).get("exploratory") or {}).get("sweeper") for r in records]
    return list(dict.fromkeys(s for s in found if s))


def mark(explore: dict[str, Any], records: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """A verdict's ``{"is", "why"}`` exploratory entry, made exploratory by labelled runs."""
    made_by = [f"runs of hydra/sweeper={s}" for s in sweepers(records)]
    if not made_by:
        return explore
    why = ", ".join([*made_by, *filter(None, [explore.get("why")])])
    return {**explore, "is": True, "why": why}

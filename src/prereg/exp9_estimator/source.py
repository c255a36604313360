"""The input of the study: a finished exp9 sweep, checked before any compute, and its thetas.

The thetas are each run's parameters at its matched crossings (the first step whose KL is at
most eps * initial KL, for every registered eps, as exp9's P2 uses them) and at its last logged
step.  exp9 does not keep them: they are replayed (:mod:`prereg.exp9_estimator.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prereg.core.errors import ConfigError
from prereg.core.registration import registration_status
from prereg.core.rundirs import RunInfo, find_runs
from prereg.exp9.config import Exp9Registration

KEY = "source_sweep"


@dataclass
class SourceSweep:
    """A checked exp9 sweep: its registration, its hash, and its runs by (arm, cell)."""

    path: Path
    registration: dict[str, Any]
    registration_hash: str
    runs: dict[tuple[str, str], RunInfo]
    status: dict[str, Any]  #: registration_status against the frozen exp9 file

    @property
    def cells(self) -> list[str]:
        return list(self.registration["cells"])

    @property
    def arms(self) -> list[str]:
        return list(self.registration["lambdas"])


def _key(run: RunInfo) -> tuple[str, str]:
    summary, choices = run.summary or {}, run.choices
    return (
        str(summary.get("arm", choices.get("arm"))),
        str(summary.get("cell", choices.get("cell"))),
    )


def check_source(path: str | None, source_registration: str) -> SourceSweep:
    """The sweep at ``path``, or a one-line ConfigError: missing, not an exp9 sweep, of another
    registration than ``source_registration``, or incomplete (a run missing or not completed)."""
    if path is None or not str(path).strip():
        raise ConfigError(KEY, "required: the folder of a finished exp9 sweep (source_sweep=<dir>)")
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise ConfigError(KEY, f"no such folder: {folder}")
    runs = [r for r in find_runs([folder]) if (r.run or {}).get("experiment") == "exp9"]
    if not runs:
        raise ConfigError(KEY, f"{folder} holds no exp9 run (give the folder of an exp9 sweep)")
    hashes = sorted({str(r.registration_hash) for r in runs})
    if len(hashes) != 1:
        raise ConfigError(KEY, f"{folder} mixes exp9 registrations (hashes {', '.join(hashes)})")
    reg = next((x for x in (r.read_json("registration.json") for r in runs) if x), None)
    if not isinstance(reg, dict) or "cells" not in reg or "lambdas" not in reg:
        raise ConfigError(KEY, f"{folder}: registration.json missing from every exp9 run")
    if reg.get("name") != source_registration:
        raise ConfigError(
            KEY,
            f"{folder} is a sweep of registration {reg.get('name')!r}, not {source_registration!r}",
            [source_registration],
        )
    by_key = {_key(r): r for r in runs}
    expected = [(a, c) for c in reg["cells"] for a in reg["lambdas"]]
    missing = [f"{a}/{c}" for a, c in expected if (a, c) not in by_key]
    unfinished = [
        f"{a}/{c} {by_key[(a, c)].status}"
        for a, c in expected
        if (a, c) in by_key and by_key[(a, c)].status != "completed"
    ]
    if missing or unfinished:
        done = len(expected) - len(missing) - len(unfinished)
        what = ", ".join([*(f"missing {m}" for m in missing), *unfinished][:4])
        raise ConfigError(
            KEY, f"{folder} is incomplete: {done} of {len(expected)} exp9 runs completed ({what})"
        )
    status = registration_status(reg, hashes[0], Exp9Registration)
    return SourceSweep(folder, reg, hashes[0], {k: by_key[k] for k in expected}, status)

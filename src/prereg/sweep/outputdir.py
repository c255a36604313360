"""Checks of where a ``run.py`` command would write, before Hydra starts any job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prereg.core.atomic import probe_writable, read_json
from prereg.core.errors import ConfigError
from prereg.core.experiments import experiment_or_none
from prereg.core.registration import registration_hash, to_plain
from prereg.core.rundir import describe_changes
from prereg.sweep.preflight import Plan


def registration_of(cfg: Any) -> dict[str, Any] | None:
    """The plain registration a composed job config runs with (as its runner stores it)."""
    from prereg.core.checks import typed_registration

    exp = experiment_or_none(str(cfg.get("runner")))
    if exp is None or exp.registration is None or cfg.get("registration") is None:
        return None
    return to_plain(typed_registration(cfg, exp.registration))


def output_location(raw: str) -> tuple[Path, bool]:
    """``(directory to probe, fixed)`` for a configured ``hydra.run.dir``/``sweep.dir``.

    A fixed path is probed itself; one with an interpolation (``outputs/${now:...}``) is
    not known yet, so the directory its literal prefix names is probed instead.
    """
    literal = raw.split("${", 1)[0]
    if literal == raw:
        return Path(raw), True
    if not literal or literal.endswith("/"):
        return Path(literal or "."), False
    return Path(literal).parent, False


def _recorded_registrations(target: Path, multirun: bool) -> dict[str, tuple[Path, dict]]:
    """``{hash: (run dir, registration)}`` of the runs already in ``target``."""
    runs = sorted(p for p in target.iterdir() if p.is_dir()) if multirun else [target]
    found: dict[str, tuple[Path, dict]] = {}
    for run in runs:
        try:
            record = read_json(run / "run.json")
            h = record.get("registration_hash") if isinstance(record, dict) else None
            if h and h not in found:
                found[h] = (run, read_json(run / "registration.json") or {})
        except (OSError, ValueError):
            continue
    return found


def check_output_dir(plan: Plan) -> int | None:
    """Check where the planned command would write, before Hydra starts.

    The output directory must take a file (else ``error: cannot write to <path>: <cause>``,
    status 1), and a directory that already holds runs only takes runs of the same
    registration (else ``error: registration: ...`` naming the changed constants with old
    and new values, status 2); either way nothing is written.  None when all is well.
    """
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from prereg.sweep import precheck

    loader, multirun = plan.loader, plan.multirun
    mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    try:
        cfg = loader.load_configuration(plan.config_name, plan.hydra_overrides, mode)
        node = "sweep" if multirun else "run"
        raw = str(OmegaConf.to_container(cfg.hydra[node], resolve=False)["dir"])
    except Exception:  # noqa: BLE001 - a config Hydra cannot compose: Hydra says why
        return None
    directory, fixed = output_location(raw)
    problem = probe_writable(directory)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    existing = _recorded_registrations(directory, multirun) if fixed else {}
    if not existing:
        return None
    for job in precheck.covering_jobs(plan.probes):
        job_cfg = loader.load_configuration(plan.config_name, plan.hydra_job(job), RunMode.RUN)
        reg = registration_of(job_cfg)
        if reg is None or registration_hash(reg) in existing:
            continue
        old_hash, (run, old) = next(iter(existing.items()))
        held = f"runs of registration {old.get('name', '?')} (hash {old_hash}, e.g. {run.name})"
        if not multirun:
            held = f"a run of registration {old.get('name', '?')} (hash {old_hash})"
        err = ConfigError(
            "registration",
            f"{directory} holds {held}; this command's (hash {registration_hash(reg)}) differs "
            f"in {describe_changes(old, reg)}; use a new output directory",
        )
        print(f"error: {err}", file=sys.stderr)
        return 2
    return None

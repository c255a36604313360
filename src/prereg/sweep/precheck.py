"""Check a ``run.py`` command line before Hydra starts any job.

Hydra would compose each job only when it launches it and report a bad override as
several lines (or a stack trace).  Here the whole sweep is expanded and jobs covering
every swept value are composed and validated up front, so a bad sweep stops before any
compute with exit status 2 and one line ``error: <key>: <problem> (allowed: ...)``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prereg.core.errors import ConfigError
from prereg.core.errors import simplify_message as _simplify
from prereg.core.rundir import one_line
from prereg.core.signals import interrupt_behind, interrupts_raised, raised_interrupt
from prereg.sweep.overrides import (  # noqa: F401 - _loader, expand_jobs: used by tests too
    _groups,
    _loader,
    _options,
    expand_jobs,
    parse_args,
    typed_key,
)
from prereg.sweep.preflight import registered_options

# flags that make Hydra print something instead of running jobs: leave those to Hydra
_INFO_FLAGS = (
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--cfg",
    "-c",
    "--shell-completion",
    "-sc",
    "--version",
)


def first_unknown(cfg: DictConfig, key: str) -> ConfigError | None:
    """``a.b: unknown key (allowed: <siblings>)`` for the first part of ``key`` not in ``cfg``."""
    node: object = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return ConfigError(key, "unknown key")
        if part not in node:
            allowed = sorted(k for k in node.keys() if i or k != "hydra")
            return ConfigError(".".join(parts[: i + 1]), "unknown key", allowed, near=part)
        node = node._get_node(part)  # noqa: SLF001 - no interpolation is resolved
    return None


def _unknown_key_error(loader, config_name: str, job: list[str], key: str) -> ConfigError:
    """``key: unknown key (allowed: <siblings>)`` from the config composed without it.

    A top-level key that is another study's section says which studies have it.
    """
    from hydra.types import RunMode

    rest = [o for o in job if typed_key(o) != key and not typed_key(o).startswith(key + ".")]
    try:
        base = loader.load_configuration(config_name, rest, run_mode=RunMode.RUN)
        err = first_unknown(base, key)
    except Exception:  # noqa: BLE001 - fall back to the plain message
        err = None
    err = err or ConfigError(key, "unknown key")
    top = key.split(".")[0]
    if "." in key and err.key == top and loader.repository.group_exists(top):
        # under a config group this study has no section for: name the key as typed
        return ConfigError(key, f"unknown key (this study has no {top} section)")
    if "." not in err.key:
        owners = _studies_with_section(err.key)
        if owners:
            problem = f"unknown key here (a section of experiment={'|'.join(owners)})"
            return ConfigError(err.key, problem, err.allowed)
    return err


def _studies_with_section(section: str) -> list[str]:
    """The studies whose config schema has a top-level ``section``."""
    import dataclasses

    from prereg.core.experiments import experiments

    return sorted(
        name
        for name, exp in experiments().items()
        if section in {f.name for f in dataclasses.fields(exp.config)}
    )


#: Free-form parts of Hydra's config (logging dictConfigs, env vars, callbacks): ``++`` may add.
FREE_HYDRA = (
    "hydra.job_logging",
    "hydra.hydra_logging",
    "hydra.callbacks",
    "hydra.job.env_set",
    "hydra.launcher.additional_parameters",  # any sbatch flag: `key: value` -> `--key=value`
)


def check_forced_hydra_keys(loader, config_name: str, job: list[str]) -> None:
    """``+hydra.<key>=...`` adds a key Hydra does not know without complaint: refuse it.

    (prereg's own keys are checked against its schema by :func:`validate.known_keys`.)
    """
    from hydra.types import RunMode

    for override in job:
        key = typed_key(override)
        if not (override.startswith("+") and key.startswith("hydra.")) or key.startswith(
            FREE_HYDRA
        ):
            continue
        rest = [o for o in job if o != override]
        base = loader.load_configuration(config_name, rest, run_mode=RunMode.RUN)
        err = first_unknown(base, key)
        if err is not None:
            raise err


def _override_key(text: str) -> str | None:
    m = re.search(r"(?:Could not override|Error merging override) '?([^'= ]+)", text)
    return m.group(1) if m else None


def _override_containing(job: list[str], fragment: str) -> str | None:
    """The key of the (first) override whose value contains ``fragment``."""
    for override in job:
        if fragment in override.partition("=")[2]:
            return typed_key(override)
    return None


def _unselected_group_error(loader, config_name: str, job: list[str]) -> ConfigError | None:
    """``eval.n_seeds=3`` where no eval is selected: Hydra says only 'Unexpected type'."""
    from hydra.types import RunMode

    for i, override in enumerate(job):
        key = typed_key(override)
        group = key.split(".")[0]
        if "." not in key or not loader.repository.group_exists(group):
            continue
        try:
            base = loader.load_configuration(
                config_name, job[:i] + job[i + 1 :], run_mode=RunMode.RUN
            )
        except Exception:  # noqa: BLE001 - something else is wrong too
            continue
        if OmegaConf.select(base, group) is None:
            return ConfigError(
                key,
                f"no {group} is selected here, so it has no keys; select one with {group}=<option>",
                _options(loader, group),
            )
    return None


def explain(exc: BaseException, loader, config_name: str, job: list[str]) -> ConfigError:
    """Turn Hydra/OmegaConf composition errors into a one-line :class:`ConfigError`."""
    if isinstance(exc, ConfigError):
        return exc
    text = " ".join(str(exc).split())
    m = re.search(r"Could not (?:find|load) '([\w/.\-]+)/([^'/]*)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        problem = f"unknown option {option!r}" if option else "no option given"
        allowed = registered_options(loader, config_name, job, group)  # the study's own
        return ConfigError(group, problem, allowed, near=option or None)
    m = re.search(r"Could not delete from config\. '([^']+)' does not exist", text)
    if m:
        return _unknown_key_error(loader, config_name, job, m.group(1))
    m = re.search(r"An item is already at '([^']+)'", text)
    if m:
        return ConfigError(m.group(1), "is already set; drop the '+' to override it (or use '++')")
    m = re.search(r"Multiple values for ([\w/.\-]+)", text)
    if m:
        group = m.group(1).rstrip(".")
        return ConfigError(
            group, "is already selected; drop the '+' to change it", _options(loader, group)
        )
    m = re.search(r"Cannot find primary config '([^']*)'", text)
    if m:
        return ConfigError("--config-name", f"unknown primary config {m.group(1)!r}", ["config"])
    m = re.search(
        r"In '([\w/]+)/[^'/]*': ConfigKeyError raised while composing config: "
        r"Key '(\w+)' not in",
        text,
    )
    if m and m.group(1) == m.group(2):  # a group option selected for a study without that section
        group, owners = m.group(1), _studies_with_section(m.group(1))
        where = f" (a group of experiment={'|'.join(owners)})" if owners else ""
        return ConfigError(group, f"this study has no {group} section{where}")
    if re.search(r"Unexpected type(?: for root)?: None", text):
        err = _unselected_group_error(loader, config_name, job)
        if err is not None:
            return err
    m = re.search(r"Error resolving interpolation '([^']+)'", text)
    key = _override_containing(job, m.group(1)) if m else None
    if m and key:
        return ConfigError(
            key, f"cannot resolve {m.group(1)!r} (a config group option must be a name)"
        )
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    for e in chain:
        msg = str(getattr(e, "msg", e))
        if re.search(r"Key '[^']+' (?:is )?not in", msg):
            err = _unselected_group_error(loader, config_name, job)
            if err is not None:  # a key under a config group this study has no section for
                return err
            key = getattr(e, "full_key", None) or _override_key(text) or "command line"
            override = _override_key(text)
            if override and override.endswith(str(key)):
                key = override
            return _unknown_key_error(loader, config_name, job, str(key))
    for e in chain:
        if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None):
            key = _override_key(text) or str(e.full_key)
            return ConfigError(key, _simplify(e.msg))
    return ConfigError(_override_key(text) or "command line", _simplify(one_line(exc)))


def covering_jobs(jobs: list[list[str]]) -> list[list[str]]:
    """A few of the jobs in which every override (key=value) of the sweep appears.

    Composing a Hydra config costs ~0.3 s; checking every value of every swept key (4 jobs
    for 3 arms x 4 cells instead of 12) finds the same bad values, and each job validates
    its own full config again when it starts.  Greedy: each pick is the first job with the
    most overrides not yet covered (3 arms x 4 cells: 4 jobs, where taking every job that
    adds something took 6).
    """
    seen: set[str] = set()
    chosen = []
    while True:
        best, new = None, 0
        for job in jobs:
            count = len(set(job) - seen)
            if count > new:
                best, new = job, count
        if best is None:
            return chosen or jobs[:1]
        chosen.append(best)
        seen.update(best)


def _compose_and_validate(loader, config_name: str, job: list[str]) -> None:
    from hydra.types import RunMode

    from prereg.sweep.validate import validate

    validate(loader.load_configuration(config_name, job, run_mode=RunMode.RUN))
    check_forced_hydra_keys(loader, config_name, job)


def blame(loader, config_name: str, job: list[str], err: ConfigError) -> ConfigError:
    """For an error that names no key: the override without which the job is valid."""
    for i, override in enumerate(job):
        try:
            _compose_and_validate(loader, config_name, job[:i] + job[i + 1 :])
        except Exception:  # noqa: BLE001 - still failing without it: not this one
            continue
        return ConfigError(typed_key(override), err.problem, err.allowed)
    return err


def check(
    argv: list[str],
    conf_dir: Path | str,
    config_name: str = "config",
    prepare: Callable[[Any], object] | None = None,
):
    """Plan and validate the command line: ``(status, plan)``.

    On bad input one line is printed and the status is 2 (plan None); a command line that only
    asks Hydra for information (``--help``, ``--cfg``...) gives ``(None, None)``; otherwise
    ``(None, plan)``: the :class:`~prereg.sweep.preflight.Plan` every later check uses.
    ``prepare(plan)`` runs before the jobs are composed (the default launcher, which changes
    Hydra's overrides); each job is composed as Hydra will compose it (:meth:`Plan.hydra_job`),
    so Hydra reuses the composition instead of repeating it.
    """
    from prereg.sweep import preflight

    if any(a.split("=")[0] in _INFO_FLAGS for a in argv):
        return None, None
    job: list[str] = [a for a in argv if not a.startswith("-")]
    loader, signals_before = None, interrupts_raised()
    try:
        args = parse_args(argv)
        if args.config_name:
            config_name = args.config_name
        loader = _loader(conf_dir)
        job = list(args.overrides)
        plan = preflight.plan_from(argv, args, loader, config_name)
        probes = plan.probes
        if not probes:
            raise ConfigError("command line", "the sweep expands to no job")
        if prepare is not None:
            prepare(plan)
        jobs = covering_jobs(probes)
        for job in jobs:
            if any(preflight.is_hydra_override(o) for o in set(job) - set(plan.overrides)):
                # a swept hydra/... value (Hydra sweeps none): each composed as written first,
                # so a bad option is named (unknown option, allowed: ...), not Hydra's wording
                _compose_and_validate(loader, config_name, job)
        for job in jobs:
            _compose_and_validate(loader, config_name, plan.hydra_job(job))
    except Exception as exc:  # noqa: BLE001 - every problem becomes one line
        interrupt = interrupt_behind(exc) or raised_interrupt(signals_before)
        if interrupt is not None:  # a signal, not bad input: stop as the signal says
            raise interrupt from None
        err = explain(exc, loader, config_name, job)
        if err.key == "command line" and loader is not None:
            err = blame(loader, config_name, job, err)
        print(f"error: {err}", file=sys.stderr)
        return 2, None
    interrupt = raised_interrupt(signals_before)  # one a library swallowed
    if interrupt is not None:
        raise interrupt
    return None, plan

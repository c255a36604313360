"""Check a ``run.py`` command line before Hydra starts any job.

Hydra would compose each job only when it launches it and report a bad override as
several lines (or a stack trace).  Here the whole sweep is expanded and jobs covering
every swept value are composed and validated up front, so a bad sweep stops before any
compute with exit status 2 and one line ``error: <key>: <problem> (allowed: ...)``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prereg.sweep.errors import ConfigError
from prereg.sweep.errors import simplify_message as _simplify
from prereg.sweep.rundir import one_line

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
)


def _loader(conf_dir: Path):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf_dir)))


def _unknown_key_error(loader, config_name: str, job: list[str], key: str) -> ConfigError:
    """``key: unknown key (allowed: <siblings>)`` from the config composed without it."""
    parent, _, leaf = key.rpartition(".")
    rest = [o for o in job if not o.lstrip("+~").startswith(key + "=")]
    try:
        from hydra.types import RunMode

        base = loader.load_configuration(config_name, rest, run_mode=RunMode.RUN)
        node = OmegaConf.select(base, parent) if parent else base
        if isinstance(node, DictConfig):
            allowed = sorted(k for k in node.keys() if k != "hydra")
            return ConfigError(key, "unknown key", allowed)
    except Exception:  # noqa: BLE001 - fall back to the plain message
        pass
    return ConfigError(key, "unknown key")


def _override_key(text: str) -> str | None:
    m = re.search(r"(?:Could not override|Error merging override) '?([^'= ]+)", text)
    return m.group(1) if m else None


def explain(exc: BaseException, loader, config_name: str, job: list[str]) -> ConfigError:
    """Turn Hydra/OmegaConf composition errors into a one-line :class:`ConfigError`."""
    if isinstance(exc, ConfigError):
        return exc
    text = str(exc)
    m = re.search(r"Could not (?:find|load) '([\w/.\-]+)/([^'/]+)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        try:
            allowed = loader.get_group_options(group)
        except Exception:  # noqa: BLE001
            allowed = None
        return ConfigError(group, f"unknown option {option!r}", allowed)
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    for e in chain:
        msg = str(getattr(e, "msg", e))
        if re.search(r"Key '[^']+' (?:is )?not in", msg):
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


def expand_jobs(loader, overrides: list[str], multirun: bool) -> list[list[str]]:
    """The list of per-job override lists Hydra's basic sweeper would launch."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=loader)
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as exc:  # noqa: BLE001 - syntax errors
        raise ConfigError("command line", one_line(exc)) from None
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not multirun:
        key = sweeps[0].get_key_element()
        raise ConfigError(key, "is a sweep; add -m (--multirun) to run one job per value")
    if not multirun:
        return [overrides]
    for o in sweeps:
        key = o.get_key_element()
        values = list(o.sweep_string_iterator())
        if not values:
            allowed = None
            if key.lstrip("+~") in _groups(loader):
                allowed = loader.get_group_options(key.lstrip("+~"))
            raise ConfigError(key, f"the sweep {o.input_line!r} selects no value", allowed)
    batches = BasicSweeper.split_arguments(parsed, None)
    return [job for batch in batches for job in batch]


def _groups(loader) -> list[str]:
    try:
        return loader.list_groups("")
    except Exception:  # noqa: BLE001
        return []


def covering_jobs(jobs: list[list[str]]) -> list[list[str]]:
    """A subset of the jobs in which every override (key=value) of the sweep appears.

    Composing a Hydra config costs ~0.3 s; checking every value of every swept key (4 jobs
    for 3 arms x 4 cells instead of 12) finds the same bad values, and each job validates
    its own full config again when it starts.
    """
    seen: set[str] = set()
    chosen = []
    for job in jobs:
        if not set(job) <= seen:
            chosen.append(job)
            seen.update(job)
    return chosen or jobs[:1]


def check(argv: list[str], conf_dir: Path, config_name: str = "config") -> int | None:
    """Validate the command line; print one line and return 2 on bad input, else None."""
    from hydra._internal.utils import get_args_parser
    from hydra.types import RunMode

    from prereg.sweep.validate import validate

    if any(a.split("=")[0] in _INFO_FLAGS for a in argv):
        return None
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return None  # let Hydra print its own usage message
    if args.config_name:
        config_name = args.config_name
    loader = _loader(conf_dir)
    multirun = bool(args.multirun) or any(
        o.strip() == "hydra.mode=MULTIRUN" for o in args.overrides
    )
    job: list[str] = list(args.overrides)
    try:
        jobs = expand_jobs(loader, list(args.overrides), multirun)
        if not jobs:
            raise ConfigError("command line", "the sweep expands to no job")
        for job in covering_jobs(jobs):
            cfg = loader.load_configuration(config_name, job, run_mode=RunMode.RUN)
            validate(cfg)
    except Exception as exc:  # noqa: BLE001 - every problem becomes one line
        err = explain(exc, loader, config_name, job)
        print(f"error: {err}", file=sys.stderr)
        return 2
    return None

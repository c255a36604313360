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

from prereg.core.errors import ConfigError
from prereg.core.errors import simplify_message as _simplify
from prereg.core.rundir import one_line

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


def _loader(conf_dir: Path):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf_dir)))


def typed_key(override: str) -> str:
    """The key an override names as typed (``+a.b=1`` -> ``a.b``); the text itself if none."""
    key = override.split("=", 1)[0].lstrip("+~").strip()
    return key or override


def first_unknown(cfg: DictConfig, key: str) -> ConfigError | None:
    """``a.b: unknown key (allowed: <siblings>)`` for the first part of ``key`` not in ``cfg``."""
    node: object = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return ConfigError(key, "unknown key")
        if part not in node:
            allowed = sorted(k for k in node.keys() if i or k != "hydra")
            return ConfigError(".".join(parts[: i + 1]), "unknown key", allowed)
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
FREE_HYDRA = ("hydra.job_logging", "hydra.hydra_logging", "hydra.callbacks", "hydra.job.env_set")


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


def _options(loader, group: str) -> list[str] | None:
    try:
        return loader.get_group_options(group)
    except Exception:  # noqa: BLE001
        return None


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
        return ConfigError(group, problem, _options(loader, group))
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


def expand_jobs(loader, overrides: list[str], multirun: bool) -> list[list[str]]:
    """The list of per-job override lists Hydra's basic sweeper would launch."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=loader)
    parsed = []
    for text in overrides:  # one at a time, to name the override that does not parse
        try:
            parsed.extend(parser.parse_overrides([text]))
        except Exception as exc:  # noqa: BLE001 - syntax errors
            raise ConfigError(typed_key(text), parse_problem(text, exc)) from None
    check_group_values(loader, parsed)
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


def parse_problem(text: str, exc: BaseException) -> str:
    """Hydra's override-grammar error, short: what is wrong with ``text``."""
    if "=" not in text and not text.startswith("~"):
        return f"{text!r} is not key=value (missing '=')"
    msg = " ".join(str(exc).split())
    if "LexerNoViableAltException" in msg:
        if text.count("'") % 2 or text.count('"') % 2:
            return f"cannot parse {text!r}: a quote is not closed"
        return f"cannot parse {text!r}: quote a value with special characters: \"key='...'\""
    msg = msg.replace(f"Error parsing override '{text}'", "")
    msg = re.sub(r"See https?://\S+ for details\.?", "", msg)
    msg = re.sub(r"expecting (\{[^}]*\}|\S+)", "", msg)
    msg = re.sub(r"^\w*Exception: ", "", msg.strip()).strip(" .")
    return f"cannot parse {text!r}: {msg[:160]}" if msg else f"cannot parse {text!r}"


def check_group_values(loader, parsed: list) -> None:
    """A config group override names one option (text) or null (none).

    Hydra itself fails on ``cell=range(1,3)`` or ``arm=`` without naming the group, and
    would merge ``cell=[n4m2,n4m3]`` into one job that silently runs the last cell.
    """
    from hydra.core.override_parser.types import Glob

    for o in parsed:
        key = o.key_or_group
        if not key:
            raise ConfigError(o.input_line, "no key before '='")
        if not loader.repository.group_exists(key):
            continue
        value = o.value()
        if isinstance(value, Glob):
            continue
        values = list(o.sweep_iterator()) if o.is_sweep_override() else [value]
        for v in values:
            if isinstance(v, list) and len(v) == 1:
                v = v[0]
            if isinstance(v, list) and v:
                names = ",".join(str(x) for x in v)
                raise ConfigError(
                    key,
                    f"selects one option, got a list; for one job each use -m {key}={names}",
                    _options(loader, key),
                )
            if v is None:
                raise ConfigError(
                    key, f"null is not an option name (~{key} selects none)", _options(loader, key)
                )
            if not isinstance(v, (str, list)):
                raise ConfigError(key, f"{v!r} is not an option name", _options(loader, key))
            if v == "":
                raise ConfigError(key, "no option given", _options(loader, key))


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


def parse_args(argv: list[str]):
    """Hydra's own argument parser, raising :class:`ConfigError` instead of printing usage."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str) -> None:
        m = re.match(r"argument ([^\s:/]+)[^:]*: (.*)", message)
        if m:
            raise ConfigError(m.group(1), m.group(2))
        m = re.match(r"unrecognized arguments: (\S+)", message)
        if m and m.group(1).startswith("-"):
            raise ConfigError(m.group(1), "unknown flag (python run.py --help lists them)")
        if m:  # argparse takes overrides only before the first flag
            raise ConfigError(
                typed_key(m.group(1)), "comes after a flag; put flags such as -m before overrides"
            )
        raise ConfigError("command line", message)

    parser.error = error  # type: ignore[method-assign]
    return parser.parse_args(argv)


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


def check(argv: list[str], conf_dir: Path, config_name: str = "config") -> int | None:
    """Validate the command line; print one line and return 2 on bad input, else None."""
    if any(a.split("=")[0] in _INFO_FLAGS for a in argv):
        return None
    job: list[str] = [a for a in argv if not a.startswith("-")]
    loader = None
    try:
        args = parse_args(argv)
        if args.config_name:
            config_name = args.config_name
        loader = _loader(conf_dir)
        multirun = bool(args.multirun) or any(
            o.strip() == "hydra.mode=MULTIRUN" for o in args.overrides
        )
        job = list(args.overrides)
        jobs = expand_jobs(loader, list(args.overrides), multirun)
        if not jobs:
            raise ConfigError("command line", "the sweep expands to no job")
        for job in covering_jobs(jobs):
            _compose_and_validate(loader, config_name, job)
    except Exception as exc:  # noqa: BLE001 - every problem becomes one line
        err = explain(exc, loader, config_name, job)
        if err.key == "command line" and loader is not None:
            err = blame(loader, config_name, job, err)
        print(f"error: {err}", file=sys.stderr)
        return 2
    return None

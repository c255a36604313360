"""The command line as Hydra reads it: arguments, overrides, config groups, the jobs of a sweep.

Each failure is a :class:`ConfigError` naming the override's key (one line), so the preflight
(:mod:`prereg.sweep.preflight`) and the checks (:mod:`prereg.sweep.precheck`) share one parser.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl

from prereg.core.errors import ConfigError


def _loader(conf_dir: Path):
    """Hydra's config loader over ``conf_dir``, composing each job once (:class:`ComposeOnce`)."""
    from hydra._internal.utils import create_config_search_path

    return ComposeOnce(create_config_search_path(str(conf_dir)))


class ComposeOnce(ConfigLoaderImpl):
    """Hydra's config loader, composing each (config, overrides, mode) once per process.

    The preflight's steps (precheck, output dir, sweep order, default launcher), Hydra's
    master config, its sweeper's check of every job and the launcher all ask for the same
    configs; a composition costs a noticeable part of a short sweep (0.2-0.6 s here), a copy
    10 ms.  Each caller gets its own copy; a failure is not kept (it is raised again).
    ``run.py`` hands this loader to Hydra (:func:`prereg.sweep.app.hydra_uses`).
    """

    def __init__(self, config_search_path: Any) -> None:
        super().__init__(config_search_path=config_search_path)
        self._composed: dict[tuple, Any] = {}

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: Any,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> Any:
        key = (config_name, tuple(overrides), run_mode, from_shell)
        checked = (*key, True)  # a config whose sweeps were checked serves one without the check
        found = self._composed.get(checked, self._composed.get((*key, validate_sweep_overrides)))
        if found is None:
            found = super().load_configuration(
                config_name, list(overrides), run_mode, from_shell, validate_sweep_overrides
            )
            self._composed[(*key, validate_sweep_overrides)] = found
        return copy.deepcopy(found)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a launcher sends it to its job processes) without the composed configs."""
        return {**self.__dict__, "_composed": {}}


def typed_key(override: str) -> str:
    """The key an override names as typed (``+a.b=1`` -> ``a.b``); the text itself if none."""
    key = override.split("=", 1)[0].lstrip("+~").strip()
    return key or override


def _options(loader, group: str) -> list[str] | None:
    try:
        return loader.get_group_options(group)
    except Exception:  # noqa: BLE001
        return None


def parse_overrides(loader, overrides: list[str], multirun: bool) -> list:
    """Hydra's parse of each override, checked: syntax, config group values, sweeps need -m,
    and no sweep that selects nothing (each failure a :class:`ConfigError` naming the key)."""
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
    for o in sweeps:
        if not o.is_discrete_sweep():
            continue  # interval(...): for a sweeper that samples it (not the basic one)
        key = o.get_key_element()
        if not list(o.sweep_string_iterator()):
            allowed = None
            if key.lstrip("+~") in _groups(loader):
                allowed = loader.get_group_options(key.lstrip("+~"))
            raise ConfigError(key, f"the sweep {o.input_line!r} selects no value", allowed)
    return parsed


def split_jobs(parsed: list, overrides: list[str], multirun: bool) -> list[list[str]]:
    """The per-job override lists Hydra's basic sweeper launches, in its order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if not multirun:
        return [list(overrides)]
    for o in parsed:
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise ConfigError(
                o.get_key_element(),
                f"{o.input_line!r} is sampled by a sweeper, not enumerated; add "
                "hydra/sweeper=<a sampling sweeper> or list the values",
            )
    batches = BasicSweeper.split_arguments(parsed, None)
    return [job for batch in batches for job in batch]


def expand_jobs(loader, overrides: list[str], multirun: bool) -> list[list[str]]:
    """The list of per-job override lists Hydra's basic sweeper would launch."""
    return split_jobs(parse_overrides(loader, overrides, multirun), overrides, multirun)


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

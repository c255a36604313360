"""The table of studies: prereg's own, those of installed plug-ins, and named modules.

Sources, in order (a later definition of the same name is refused, not silently replaced):

1. prereg's own studies (:data:`BUILTIN_MODULES`);
2. the entry-point group ``prereg.experiments`` of installed distributions: each entry point
   names a module (or an :class:`Experiment`, or a list of them);
3. modules named in the environment variable ``PREREG_EXPERIMENTS`` (comma-separated), for a
   study that is not installed: ``PREREG_EXPERIMENTS=my_study python run.py ...``.

A module contributes the :class:`Experiment` objects in its ``EXPERIMENTS`` list (or every
module-level ``Experiment``).  Loading is lazy and cached: nothing is imported at import time.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from prereg.core.errors import ConfigError
from prereg.core.experiment import Experiment

BUILTIN_MODULES = (
    "prereg.exp9.experiment",
    "prereg.exp9_estimator.experiment",
    "prereg.ppo.experiment",
)
ENTRY_POINT_GROUP = "prereg.experiments"
ENV_VAR = "PREREG_EXPERIMENTS"


def _from_object(obj: Any, where: str) -> list[Experiment]:
    if isinstance(obj, Experiment):
        return [obj]
    if isinstance(obj, ModuleType):
        listed = getattr(obj, "EXPERIMENTS", None)
        if listed is None:
            listed = [v for v in vars(obj).values() if isinstance(v, Experiment)]
        return _from_object(list(listed), where)
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        found = [e for e in obj if isinstance(e, Experiment)]
        if found:
            return found
    raise TypeError(f"{where} defines no prereg Experiment")


def _sources() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [(m, m) for m in BUILTIN_MODULES]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.append((f"entry point {ep.name} ({ep.value})", ep))
    for name in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        out.append((f"{ENV_VAR} module {name}", name))
    return out


@lru_cache(maxsize=1)
def _table(env: str) -> dict[str, Experiment]:
    del env  # part of the cache key only: a changed PREREG_EXPERIMENTS reloads
    table: dict[str, Experiment] = {}
    seen_modules: set[str] = set()
    for where, source in _sources():
        if isinstance(source, str):
            if source in seen_modules:
                continue
            seen_modules.add(source)
            obj = importlib.import_module(source)
        else:
            if source.value.partition(":")[0] in seen_modules and ":" not in source.value:
                continue
            obj = source.load()
            if isinstance(obj, ModuleType):
                seen_modules.add(obj.__name__)
        for exp in _from_object(obj, where):
            if exp.name in table and table[exp.name] is not exp:
                raise ValueError(f"experiment {exp.name!r} is defined twice (again by {where})")
            table[exp.name] = exp
    return table


def experiments() -> dict[str, Experiment]:
    """Every known study by name."""
    return dict(_table(os.environ.get(ENV_VAR, "")))


def get_experiment(name: str, key: str = "experiment") -> Experiment:
    """The study called ``name``, or a ConfigError naming the known ones."""
    table = experiments()
    if name not in table:
        raise ConfigError(key, f"unknown experiment {name!r}", sorted(table))
    return table[name]


def experiment_or_none(name: str | None) -> Experiment | None:
    """The study called ``name``, or None (no such study, or no name)."""
    return experiments().get(name or "")

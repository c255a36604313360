"""The one definition of a study: what prereg needs to configure, run, judge and compare it.

A study (prereg's own exp9 and PPO ones, or a user's) is an :class:`Experiment`.  Every part
of prereg that used to keep its own table per study (the runner, the validator, the verdict,
the registration schema, the compare figures) reads it from here, through
:mod:`prereg.core.experiments`.  Callables may be given as ``"module:attribute"`` strings so
that defining a study imports nothing heavy (no JAX until a run starts).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


class Choice(str, Enum):
    """Base of the closed sets of options in config schemas: prints and compares as its value.

    OmegaConf checks an Enum-typed field while Hydra composes (``allowed: ...`` in the error);
    the ``str`` mix-in lets code compare it with plain strings (``mode == "parallel"``).
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class LoggerName(Choice):
    """Where per-step figures also go (changes no result)."""

    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"  # needs the wandb extra


@dataclass
class LoggerConf:
    """The ``logger`` group: one of :class:`LoggerName`."""

    name: LoggerName = LoggerName.none


@dataclass
class StudyConfig:
    """The keys every study's config has; a study's schema subclasses it with its own sections.

    ``runner`` names the study (its :attr:`Experiment.name`); ``registration`` is narrowed by
    each study to its registration dataclass, so a registration is typed while Hydra composes.
    """

    runner: str = MISSING
    registration: Any = None
    logger: LoggerConf = field(default_factory=LoggerConf)


def resolve(target: Any) -> Any:
    """``"pkg.module:attr"`` -> the attribute (imported now); anything else is returned as is."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Experiment:
    """One study, defined once.

    - ``name``: the ``experiment=`` option and the ``runner`` its config sets.
    - ``config``: its structured config (a :class:`StudyConfig` subclass holding only its own
      sections); stored in Hydra's ConfigStore as ``schema/<name>``.
    - ``registration``: the dataclass its registration YAML is typed against (None: the study
      has no registration).
    - ``run``: ``(cfg, run_dir) -> summary dict``; one job.
    - ``validate``: ``(cfg) -> None``, raising :class:`~prereg.core.errors.ConfigError` on the
      first problem, before any compute.
    - ``verdict``: ``(sweep_dir) -> markdown`` writing ``verdict.json``/``verdict.md`` at the
      end of a multirun (None: the sweep ends with its status table).
    - ``figures``: ``(summary) -> {column: value}``, the columns ``compare`` shows for its runs.
    - ``sweep_order``: ``(cfg, key, values) -> values or None``: the order a swept key's
      values must run in (None: as the command line lists them); the ladder puts
      ``candidate=`` in registered order.
    - ``conf``: a config directory (``pkg://package.conf`` or an absolute path) holding the
      study's config groups (``experiment/<name>.yaml``, its registration, its own option
      groups), appended to prereg's config search path by the ``hydra_plugins.prereg_studies``
      plugin (None: prereg's own studies, whose groups are in ``prereg/conf``).
    - ``headline``: ``(summary) -> str``, the run's headline figures, closing the one line a
      single run prints at its end (``run <dir>: completed — <headline>``; None: the
      directory and status only).
    - ``audit``: ``(registration, sweep_dir or None) -> text``: how much the study's verdict
      can be trusted (``python -m prereg audit``): its gates' operating characteristics at the
      registered sample sizes, and with a sweep dir what its runs' figures show (None: the
      study has no audit).
    - ``registration_schemas``: ``(name, dataclass)`` pairs of further registration schemas
      (subclasses of ``registration``) that a registration YAML selects with
      ``defaults: [/registration_schema/<name>@_here_, _self_]``, for a registration whose
      constants differ in kind from the first (``ppo_pathb_v2``).
    - ``one_core_jobs``: each job uses one core (exp9: single-threaded solves), so a multirun
      runs its jobs in ``hydra/launcher=pool``'s workers by default when more than one CPU is
      available (:mod:`prereg.sweep.default_launcher`); False keeps Hydra's in-process one.
    - ``preload``: modules a ``hydra/launcher=pool`` worker imports before its first job,
      while the sweep process still composes the jobs (the study's maths and JAX, which the
      run function imports lazily so that ``run.py`` starts fast): the first job of each
      worker no longer pays them.
    """

    name: str
    config: type
    run: Callable[..., dict[str, Any]] | str
    registration: type | None = None
    validate: Callable[..., None] | str | None = None
    verdict: Callable[..., str] | str | None = None
    figures: Callable[[dict[str, Any]], dict[str, Any]] | str | None = None
    sweep_order: Callable[[Any, str, Sequence[str]], list[str] | None] | str | None = None
    conf: str | None = None
    description: str = ""
    headline: Callable[[dict[str, Any]], str] | str | None = None
    audit: Callable[..., str] | str | None = None
    registration_schemas: tuple[tuple[str, type], ...] = ()
    one_core_jobs: bool = False
    preload: tuple[str, ...] = ()

    def runner(self) -> Callable[..., dict[str, Any]]:
        """The run function, imported now."""
        return resolve(self.run)

    def import_for_jobs(self) -> None:
        """Import what a job will: the run function and the ``preload`` modules."""
        import importlib

        self.runner()
        for module in self.preload:
            importlib.import_module(module)

    def validator(self) -> Callable[..., None] | None:
        return resolve(self.validate) if self.validate is not None else None

    def verdict_writer(self) -> Callable[..., str] | None:
        return resolve(self.verdict) if self.verdict is not None else None

    def figure_function(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        return resolve(self.figures) if self.figures is not None else None

    def order_function(self) -> Callable[..., list[str] | None] | None:
        return resolve(self.sweep_order) if self.sweep_order is not None else None

    def headline_function(self) -> Callable[[dict[str, Any]], str] | None:
        return resolve(self.headline) if self.headline is not None else None

    def audit_function(self) -> Callable[..., str] | None:
        return resolve(self.audit) if self.audit is not None else None

"""One preflight: the command line parsed and the jobs expanded ONCE, for everything before Hydra.

:func:`plan` turns ``argv`` into a :class:`Plan`; the same object feeds validation
(:mod:`prereg.sweep.precheck`), the output-directory check (:mod:`prereg.sweep.outputdir`),
the study's sweep order (:mod:`prereg.sweep.order`) and the sweep manifest ``sweep.json``
(:mod:`prereg.sweep.callbacks`, through :func:`current`).

Hydra's basic sweeper launches the cartesian product of the swept values, so its jobs are known
up front.  Another sweeper (Optuna, a random search...) decides its jobs while it runs: then
``jobs`` is None and :attr:`Plan.probes` stands in for them, one config per end of every
``interval(...)`` and per value of every discrete sweep, so bad values are still refused
before any compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prereg.sweep.overrides import typed_key

#: The plan of the command line this process is running (set by :func:`remember`).
_CURRENT: Plan | None = None


@dataclass
class Plan:
    """What a command line will do: its overrides, mode, sweeper and jobs."""

    argv: list[str]
    overrides: list[str]
    config_name: str
    multirun: bool
    sweeper: str  # the hydra/sweeper choice ("basic" unless the command line picks another)
    loader: Any = field(repr=False)
    parsed: list[Any] = field(repr=False, default_factory=list)
    jobs: list[list[str]] | None = None  # None: the sweeper decides its jobs at run time

    @property
    def basic(self) -> bool:
        return self.sweeper == "basic"

    @property
    def hydra_overrides(self) -> list[str]:
        """The overrides Hydra composes this command's own config with: the command line's, and
        the ``hydra.mode`` Hydra adds unless the command line sets it (:func:`hydra_job`)."""
        if any(typed_key(o) == "hydra.mode" for o in self.overrides):
            return list(self.overrides)
        return [*self.overrides, f"hydra.mode={'MULTIRUN' if self.multirun else 'RUN'}"]

    def hydra_job(self, job: list[str]) -> list[str]:
        """``job``'s overrides in the form Hydra composes the job with (its sweeper's check and
        its launcher: the command's ``hydra...`` overrides, then the job's others), so the
        preflight's composition of it is the one Hydra's config loader reuses."""
        if not self.multirun:
            return self.hydra_overrides
        own = [o for o in self.hydra_overrides if is_hydra_override(o)]
        return [*own, *(o for o in job if not is_hydra_override(o))]

    @property
    def sweeps(self) -> list[Any]:
        """The parsed sweep overrides (``a=1,2``, ``glob(*)``, ``interval(0,1)``...)."""
        return [o for o in self.parsed if o.is_sweep_override()]

    @property
    def probes(self) -> list[list[str]]:
        """Job override lists that together take every value a sweep can take at its ends.

        The jobs themselves for the basic sweeper; for another sweeper, each sweep override
        replaced in turn by each of its discrete values or interval ends (the others by their
        first value), which checks every bound without launching anything.
        """
        if self.jobs is not None:
            return self.jobs
        firsts = {o.input_line: _probe_values(o)[0] for o in self.sweeps}
        base = [firsts.get(text, text) for text in self.overrides]
        probes = [base]
        for o in self.sweeps:
            for value in _probe_values(o)[1:]:
                probes.append(
                    [value if t == o.input_line else firsts.get(t, t) for t in self.overrides]
                )
        return probes


def is_hydra_override(override: str) -> bool:
    """Whether Hydra files ``override`` under ``hydra.overrides.hydra`` (not the task's)."""
    return typed_key(override).startswith(("hydra.", "hydra/"))


def _probe_values(override: Any) -> list[str]:
    """``key=value`` texts for each discrete value, or both ends of an interval."""
    key = override.get_key_element()
    if override.is_discrete_sweep():
        return [f"{key}={v}" for v in override.sweep_string_iterator()]
    value = override.value()
    return [f"{key}={value.start!r}", f"{key}={value.end!r}"]


def sweeper_choice(overrides: list[str]) -> str:
    """The ``hydra/sweeper`` option the command line selects ("basic" by default)."""
    choice = "basic"
    for text in overrides:
        key, _, value = text.partition("=")
        if key.lstrip("+~") == "hydra/sweeper" and value:
            choice = value
    return choice


def plan(argv: list[str], conf_dir: Path | str, config_name: str = "config") -> Plan:
    """Parse ``argv`` (Hydra's own parser) and expand its jobs; raises ConfigError on bad input."""
    from prereg.sweep import overrides as ov

    args = ov.parse_args(argv)
    return plan_from(argv, args, ov._loader(conf_dir), config_name)


def plan_from(argv: list[str], args: Any, loader: Any, config_name: str = "config") -> Plan:
    """:func:`plan` from Hydra's parsed arguments and a config loader already made."""
    from prereg.sweep import overrides as ov

    overrides = list(args.overrides)
    multirun = bool(args.multirun) or any(o.strip() == "hydra.mode=MULTIRUN" for o in overrides)
    sweeper = sweeper_choice(overrides)
    parsed = ov.parse_overrides(loader, overrides, multirun)
    if multirun and sweeper == "basic":
        argv, overrides, parsed = registered_globs(argv, overrides, parsed, loader, config_name)
    jobs = ov.split_jobs(parsed, overrides, multirun) if sweeper == "basic" else None
    return Plan(
        argv=list(argv),
        overrides=overrides,
        config_name=args.config_name or config_name,
        multirun=multirun,
        sweeper=sweeper,
        loader=loader,
        parsed=parsed,
        jobs=jobs,
    )


def study_filter(loader: Any, config_name: str, job: list[str]) -> tuple[Any, Any] | None:
    """``(cfg, sweep_order)`` of the study ``job`` composes to, or None (no study function, or
    the job does not compose: the precheck reports that)."""
    from hydra.types import RunMode

    from prereg.core.experiments import experiment_or_none

    try:
        cfg = loader.load_configuration(config_name, job, RunMode.RUN)
    except Exception:  # noqa: BLE001
        return None
    exp = experiment_or_none(str(cfg.get("runner")))
    order = exp.order_function() if exp is not None else None
    return (cfg, order) if order is not None else None


def registered_options(loader: Any, config_name: str, job: list[str], group: str) -> list[str]:
    """The options of ``group`` the study of ``job`` (composed without ``group``'s override)
    registers: what an unknown option's error lists (exp9_v1's arms, not every arm file)."""
    from prereg.sweep.overrides import _options, typed_key

    options = _options(loader, group)
    found = study_filter(loader, config_name, [o for o in job if typed_key(o) != group])
    if options is None or found is None:
        return options
    chosen = found[1](found[0], group, options)
    return options if chosen is None else [v for v in options if v in chosen]


def registered_globs(
    argv: list[str], overrides: list[str], parsed: list[Any], loader: Any, config_name: str
) -> tuple[list[str], list[str], list[Any]]:
    """A ``glob(...)`` over a config group selects only the options the study registers.

    The study's ``sweep_order`` may drop values its registration does not register (exp9:
    ``'arm=glob(*)'`` under ``registration=exp9_v2`` is that registration's five arms, not
    every file in ``conf/arm``); each such glob becomes the explicit list, in ``argv`` too, so
    Hydra launches exactly those jobs.  A value named explicitly is left for the study's
    validation to refuse (one line naming the allowed values).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    from prereg.core.errors import ConfigError

    parser = OverridesParser.create(config_loader=loader)
    globs = [
        o
        for o in parsed
        if o.is_sweep_override()
        and isinstance(o.value(), Glob)
        and loader.repository.group_exists(o.key_or_group)
    ]
    if not globs or not all(o.is_discrete_sweep() for o in parsed if o.is_sweep_override()):
        return argv, overrides, parsed  # (an interval without a sampling sweeper: refused later)
    first = [
        f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()), '')}"
        if o.is_sweep_override()
        else o.input_line
        for o in parsed
    ]
    found = study_filter(loader, config_name, first)
    if found is None:
        return argv, overrides, parsed
    cfg, order = found
    argv, overrides, parsed = list(argv), list(overrides), list(parsed)
    for o in globs:
        key, values = o.get_key_element(), list(o.sweep_string_iterator())
        chosen = order(cfg, key.lstrip("+"), values)
        kept = [v for v in values if chosen is None or v in chosen]  # filtered, never reordered
        if kept == values:
            continue
        if not kept:
            allowed = order(cfg, key.lstrip("+"), loader.get_group_options(o.key_or_group))
            problem = f"the sweep {o.input_line!r} selects no registered value"
            raise ConfigError(key, problem, allowed)
        new = f"{key}={','.join(kept)}"
        argv = [new if a == o.input_line else a for a in argv]
        overrides = [new if a == o.input_line else a for a in overrides]
        parsed = [parser.parse_overrides([new])[0] if x is o else x for x in parsed]
    return argv, overrides, parsed


def remember(p: Plan | None) -> None:
    """Keep ``p`` as this process's plan (the sweep manifest reads it)."""
    global _CURRENT
    _CURRENT = p


def current_plan() -> Plan | None:
    """This process's plan (:func:`remember`), whatever its jobs."""
    return _CURRENT


def task_overrides(overrides: list[str]) -> list[str]:
    """The overrides Hydra hands the job (``hydra.overrides.task``): all but ``hydra...`` ones."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra")]


def current(task: list[str]) -> Plan | None:
    """This process's plan if it is for the job overrides ``task`` (else None: plan again)."""
    if _CURRENT is not None and task_overrides(_CURRENT.overrides) == list(task):
        return _CURRENT
    return None

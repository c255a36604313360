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


def remember(p: Plan | None) -> None:
    """Keep ``p`` as this process's plan (the sweep manifest reads it)."""
    global _CURRENT
    _CURRENT = p


def task_overrides(overrides: list[str]) -> list[str]:
    """The overrides Hydra hands the job (``hydra.overrides.task``): all but ``hydra...`` ones."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra")]


def current(task: list[str]) -> Plan | None:
    """This process's plan if it is for the job overrides ``task`` (else None: plan again)."""
    if _CURRENT is not None and task_overrides(_CURRENT.overrides) == list(task):
        return _CURRENT
    return None

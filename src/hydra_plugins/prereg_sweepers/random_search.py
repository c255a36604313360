"""``hydra/sweeper=prereg_random``: a seeded random search, for exploring before registering.

Each job draws every swept key independently: ``interval(a, b)`` uniformly (log-uniformly
under ``tag(log, interval(a, b))``), ``choice(...)``/``a,b,c``/``range(...)``/``glob(...)``
uniformly from its values; keys that are not swept are passed through.  ``n_trials`` jobs are
launched as one batch (so a SLURM launcher runs them as one array); the draws depend only on
``seed``, so re-running the same command line reproduces the same jobs (and prereg resumes
them).  A registration is frozen afterwards from what the search found, never from the search.

    prereg run -m hydra/sweeper=prereg_random hydra.sweeper.n_trials=8 \\
        experiment=ppo 'ppo.lr=tag(log, interval(1e-5, 1e-3))' 'ppo.clip_range=0.1,0.2,0.3'

(No ``from __future__ import annotations`` here: Hydra's plugin scan runs this module before
it is registered in ``sys.modules``, which breaks dataclasses with string annotations.)
"""

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

from hydra_plugins.prereg_sweepers.base import LaunchingSweeper

log = logging.getLogger(__name__)


@dataclass
class RandomSearchConf:
    _target_: str = "hydra_plugins.prereg_sweepers.random_search.RandomSearchSweeper"
    n_trials: int = 10
    seed: int = 0


ConfigStore.instance().store(
    group="hydra/sweeper", name="prereg_random", node=RandomSearchConf, provider="prereg"
)


def _draw(override: Any, rng: random.Random) -> str:
    """One value of a swept override, as text."""
    if override.is_discrete_sweep():
        return rng.choice(list(override.sweep_string_iterator()))
    value = override.value()  # IntervalSweep
    lo, hi = float(value.start), float(value.end)
    if "log" in (value.tags or set()):
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        x = rng.uniform(lo, hi)
    return repr(x)  # Hydra's intervals are float ranges


def draw_jobs(overrides: Sequence[Any], n_trials: int, seed: int) -> list[list[str]]:
    """``n_trials`` override lists, each swept key drawn independently (seeded)."""
    rng = random.Random(seed)
    jobs = []
    for _ in range(n_trials):
        job = []
        for o in overrides:
            if o.is_sweep_override():
                job.append(f"{o.get_key_element()}={_draw(o, rng)}")
            else:
                job.append(o.input_line)
        jobs.append(job)
    return jobs


class RandomSearchSweeper(LaunchingSweeper):
    """Launch ``n_trials`` jobs whose swept keys are drawn at random (see the module doc)."""

    def __init__(self, n_trials: int, seed: int) -> None:
        super().__init__()
        if n_trials < 1:
            raise ValueError(f"hydra.sweeper.n_trials must be >= 1, got {n_trials}")
        self.n_trials = n_trials
        self.seed = seed

    def sweep(self, arguments: list[str]) -> Any:
        jobs = draw_jobs(self.prepare(arguments), self.n_trials, self.seed)
        self.validate_batch_is_legal(jobs)
        log.info("prereg_random: %d trials (seed %d)", len(jobs), self.seed)
        return [self.launcher.launch(jobs, initial_job_idx=0)]

"""The ``logger`` group's common part: what a run's logger does, whichever it is.

A runner hands its logger the rows it has just written to ``metrics.csv`` (:meth:`log_frame`)
and single records such as PPO's periodic eval (:meth:`log_values`), each at its step.
``logger=none`` (the default) is this base class: it logs nothing.  ``logger=tensorboard``
(:mod:`prereg.training.tensorboard_log`) and ``logger=wandb`` (:mod:`prereg.training.wandb_log`)
stream the same numbers.  Logging never changes a result, so the logger is not part of a run's
directory name or its registration hash.  :func:`prereg.training.tensorboard_log.for_run` picks
the logger of a run (the one call the runners make).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prereg.core.errors import ConfigError
from prereg.core.experiment import LoggerName

if TYPE_CHECKING:
    import pandas as pd

# numpy and pandas are imported where used: the preflight imports this module (for
# check_available) and must stay light

#: ``logger=<name>`` -> the module it needs (an optional extra: ``pip install -e '.[wandb]'``)
OPTIONAL_MODULES = {"wandb": "wandb"}


class RunLogger:
    """A run's logger; this base logs nothing (``logger=none``).

    Use as a context manager (or call :meth:`close`) so what is buffered is written at the end
    of a run and when it fails.
    """

    enabled = False

    def log_values(self, values: Mapping[str, Any], step: int, prefix: str) -> None:
        """Log the numeric entries of ``values`` at ``step`` as ``<prefix>/<key>``."""

    def log_frame(self, frame: pd.DataFrame, step_column: str, prefix: str = "metrics") -> None:
        """Log every numeric column of every row at the row's ``step_column``."""

    def flush(self) -> None:
        """Make what was logged visible now (where the backend buffers)."""

    def close(self, failed: bool = False) -> None:
        """Write what is still buffered and end the log (idempotent)."""

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)


def is_number(value: Any) -> bool:
    """A real number (not a bool): what a logger records."""
    import numpy as np

    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of ``values`` as floats."""
    return {k: float(v) for k, v in values.items() if is_number(v)}


def numeric_columns(frame: pd.DataFrame, step_column: str) -> list[str]:
    """The numeric columns of ``frame`` other than its step column ([] if there is none)."""
    import pandas as pd

    if frame.empty or step_column not in frame:
        return []
    return [
        c for c in frame.columns if c != step_column and pd.api.types.is_numeric_dtype(frame[c])
    ]


def check_available(name: str) -> None:
    """Refuse ``logger=<name>`` in one line, before any compute, when its package is missing."""
    module = OPTIONAL_MODULES.get(str(name))
    if module is not None and importlib.util.find_spec(module) is None:
        usable = [n.value for n in LoggerName if n.value not in OPTIONAL_MODULES]
        problem = f"{name} is not installed: pip install -e '.[{name}]', or use another"
        raise ConfigError("logger", problem, usable)

"""What prereg's sampling sweepers share: the launcher, the parsed command line, multirun.yaml.

(No ``from __future__ import annotations``: see :mod:`.random_search`.)
"""

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf


class LaunchingSweeper(Sweeper):
    """A Sweeper that draws its jobs itself and hands batches of them to Hydra's launcher."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    @property
    def sweep_dir(self) -> Path:
        assert self.config is not None
        return Path(self.config.hydra.sweep.dir)

    def prepare(self, arguments: list[str]) -> list[Any]:
        """The parsed overrides of the command line; writes ``<sweep dir>/multirun.yaml``."""
        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(arguments)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        return overrides

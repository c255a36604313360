"""Puts the packaged launcher profiles on Hydra's config search path."""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: The profiles are ``<this package>/conf/hydra/launcher/*.yaml``.
PROFILES = "pkg://hydra_plugins.prereg_launchers.conf"


class PreregLaunchersSearchPathPlugin(SearchPathPlugin):
    """Appends :data:`PROFILES`: ``hydra/launcher=local|slurm`` work from any directory, and an
    app's own ``hydra/launcher/<name>.yaml`` (earlier in the search path) takes precedence."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="prereg-launchers", path=PROFILES)

"""Each study's config groups (:attr:`prereg.core.experiment.Experiment.conf`) on the search path.

A study written outside prereg keeps its groups (``experiment/<name>.yaml``, its registration,
its own option groups) in a ``conf/`` folder of its own; this plugin appends that folder to the
search path of prereg's app (and only of prereg's app: other Hydra apps in the same process are
left alone), so ``prereg run experiment=<name>`` finds them from any directory.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "prereg-studies"


def _is_prereg_app(search_path: ConfigSearchPath) -> bool:
    """Whether the app's primary config is prereg's (``prereg/conf``); imports nothing, so
    other Hydra apps in the process never load prereg through this plugin."""
    for element in search_path.get_path():
        path = str(element.path).removeprefix("file://").rstrip("/")
        if path == "pkg://prereg.conf" or path.replace("\\", "/").endswith("/prereg/conf"):
            return True
    return False


class PreregStudiesSearchPathPlugin(SearchPathPlugin):
    """Appends the ``conf`` of every study that names one (prereg's own use the main config)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not _is_prereg_app(search_path):
            return
        from prereg.core.experiments import experiments

        seen: set[str] = set()
        for exp in experiments().values():
            if exp.conf and exp.conf not in seen:
                seen.add(exp.conf)
                path = exp.conf if "://" in exp.conf else f"file://{exp.conf}"
                search_path.append(provider=PROVIDER, path=path)

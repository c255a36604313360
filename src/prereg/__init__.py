"""prereg: Hydra-configured sweeps for pre-registered machine-learning experiments.

Importing prereg (or any of its modules) has no side effects: the command-line entry points
(:mod:`prereg.sweep.app`, :mod:`prereg.__main__`) set up threads, signals and Hydra's stores
when they run, the exp9 runner switches on float64, and the MesaDock env registers itself with
Gymnasium when ``prereg.ppo.env`` is imported (as ``gymnasium.make`` does for
``"prereg.ppo.env:prereg/MesaDock-v0"``).
"""

from importlib.metadata import PackageNotFoundError, version

try:  # one version source: pyproject.toml, as installed (pip install -e . included)
    __version__ = version("prereg")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

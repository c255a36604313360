"""Job directory names: the ``${prereg_dirname:...}`` resolver of ``conf/config.yaml`` (registered
by :func:`prereg.sweep.app.setup`) and the keys left out of those names."""

from __future__ import annotations

import functools
import hashlib

from omegaconf import OmegaConf

MAX_DIRNAME = 120


def job_dirname(overrides: str) -> str:
    """A job directory name from Hydra's ``override_dirname``: safe and short enough.

    Path separators in override values (``ppo.init_from=/a/b``) would nest directories,
    and file systems refuse names over 255 bytes, so '/' becomes '%' and a long name is
    cut and given a hash suffix; the same overrides always give the same name, so a
    re-run still finds its job's directory.
    """
    name = overrides.replace("/", "%") or "default"
    if len(name.encode()) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name.encode()[: MAX_DIRNAME - 13].decode(errors='ignore')}~{digest}"


@functools.lru_cache(maxsize=1)
def dirname_excluded_keys() -> tuple[str, ...]:
    """Keys left out of job directory names (``conf/config.yaml``, override_dirname)."""
    from prereg.core.registration import CONF_DIR

    cfg = OmegaConf.load(CONF_DIR / "config.yaml")
    return tuple(cfg.hydra.job.config.override_dirname.exclude_keys)


def register_resolvers() -> None:
    """Register ``${prereg_dirname:...}`` (idempotent)."""
    if not OmegaConf.has_resolver("prereg_dirname"):
        OmegaConf.register_new_resolver("prereg_dirname", job_dirname)

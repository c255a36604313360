"""Structured configs in Hydra's ConfigStore: one ``schema/<experiment>`` node per study.

``conf/config.yaml`` lists ``schema: ${experiment}`` first in its defaults, so the composed
config is typed by the chosen study's own schema (its :attr:`Experiment.config`, a
``StudyConfig`` subclass with only its sections): Hydra rejects unknown keys and values of the
wrong type, and a registration is typed against the study's registration dataclass, while it
composes.  Range checks live in each study's validator.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from prereg.core.experiments import experiments

GROUP = "schema"


def register_schemas() -> None:
    """Store every known study's schema as ``schema/<name>`` (package ``_global_``); idempotent."""
    cs = ConfigStore.instance()
    for name, exp in experiments().items():
        cs.store(group=GROUP, name=name, node=exp.config, package="_global_")
        for reg_name, reg_schema in exp.registration_schemas:  # e.g. ppo_pathb_v2's
            cs.store(group="registration_schema", name=reg_name, node=reg_schema)

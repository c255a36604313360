"""Registrations: frozen, pre-registered constants and their canonical hash.

A registration is one YAML file in a ``registration/`` config group (prereg's own:
``src/prereg/conf/registration/``).  Its canonical form is the
JSON of the resolved mapping with sorted keys and no whitespace; the hash is the first
16 hex digits of its SHA-256.  Every run stores the hash of the registration it actually
ran with (command-line overrides included), and verdicts refuse to pool runs whose
hashes differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

#: prereg's own config groups (package data: ``prereg/conf``).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def to_plain(reg: Mapping | DictConfig | ListConfig) -> dict[str, Any]:
    """A resolved, plain-Python copy of a registration node."""
    if isinstance(reg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(reg, resolve=True)  # type: ignore[return-value]
    return json.loads(json.dumps(reg))


def canonical_json(reg: Mapping | DictConfig) -> str:
    """Canonical text of a registration: sorted keys, no whitespace, floats as Python repr."""
    return json.dumps(to_plain(reg), sort_keys=True, separators=(",", ":"))


def registration_hash(reg: Mapping | DictConfig) -> str:
    """First 16 hex digits of the SHA-256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(reg).encode()).hexdigest()[:16]


def load_registered(name: str, conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The registration as frozen on disk in ``conf/registration/<name>.yaml`` (without a
    Hydra ``defaults`` list, which only selects its schema)."""
    path = conf_dir / "registration" / f"{name}.yaml"
    reg = to_plain(OmegaConf.load(path))
    reg.pop("defaults", None)
    return reg


def differing_constants(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain registrations."""
    keys = sorted(set(a) | set(b))
    out: list[str] = []
    for k in keys:
        dotted = f"{prefix}{k}"
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(differing_constants(va, vb, dotted + "."))
        elif va != vb:
            out.append(dotted)
    return out


def registration_status(
    reg: Mapping, reg_hash: str, schema: type, conf_dir: Path | str = CONF_DIR
) -> dict[str, Any]:
    """Whether a run's registration is the frozen file's: name, hashes, differing constants.

    The frozen file is ``<conf_dir>/registration/<name>.yaml`` (a study outside prereg passes
    its own ``conf`` folder).
    """
    try:
        frozen = to_plain(
            OmegaConf.merge(
                OmegaConf.structured(schema), load_registered(reg["name"], Path(conf_dir))
            )
        )
    except OSError:
        frozen = None
    differing = differing_constants(frozen, reg) if frozen is not None else ["<no frozen file>"]
    return {
        "name": reg["name"],
        "hash": reg_hash,
        "frozen_hash": registration_hash(frozen) if frozen is not None else None,
        "registered": not differing,
        "differing_constants": differing,
    }


def registration_line(status: Mapping[str, Any]) -> str:
    """One Markdown line: the registration matches the frozen file, or which constants differ."""
    if status["registered"]:
        return f"Registration {status['name']} (hash {status['hash']}): matches the frozen file."
    return (
        f"Registration {status['name']} (hash {status['hash']}, frozen {status['frozen_hash']}): "
        f"**NOT the registered constants** — differs in {', '.join(status['differing_constants'])}."
    )

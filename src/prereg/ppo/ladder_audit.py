"""``python -m prereg audit`` for the Path-B ladder: the trust section, before or after a sweep.

With a registration only, the gates' operating characteristics at the registered sample sizes
(:func:`prereg.ppo.ladder_trust.registration_trust`); with a sweep dir, the verdict's whole
"How much this verdict can be trusted" section, read from its runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prereg.ppo.ladder_trust import render, trust_section
from prereg.ppo.ladder_verdict import compute_verdict


def audit(registration: Mapping[str, Any], sweep_dir: Path | None = None) -> str:
    """The trust section of a registration, or (with ``sweep_dir``) of that sweep's verdict."""
    if sweep_dir is None:
        return "\n".join(render(trust_section(registration)))
    v = compute_verdict(Path(sweep_dir))
    if "trust" not in v:
        return f"{sweep_dir}: {v.get('refused', 'no ladder verdict')}"
    return "\n".join(render(v["trust"]))

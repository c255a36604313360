"""exp9_v1's verdict stays what it is: verdict.md and verdict.json of a fixed fabricated sweep
(the registered step cap, no training) equal the committed golden files, except for the one
addition made since, the trust section appended at the end ("How much this verdict can be
trusted" in verdict.md, the ``trust`` key in verdict.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from helpers import REPO, sibling_module

from prereg.exp9.verdict import compute_verdict, render_markdown

PLOTS = sibling_module(str(REPO / "tests" / "reports" / "test_plots.py"), "test_plots")
GOLDEN = Path(__file__).with_name("golden")
TRUST_HEADING = "\n## How much this verdict can be trusted"


def _close(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON trees, floats to 1e-12 relative (libm's last bits may differ by platform)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), where
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300), (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_the_v1_verdict_of_a_fixed_sweep_is_unchanged_but_for_the_appended_trust_section(
    tmp_path,
):
    sweep = PLOTS.make_exp9_sweep(tmp_path / "sw", steps=2000)
    v = compute_verdict(sweep)
    md = render_markdown(v).replace(str(sweep), "<SWEEP>")
    before, _, trust = md.partition(TRUST_HEADING)
    assert before == (GOLDEN / "exp9_v1_verdict.md").read_text()
    got = json.loads(json.dumps(v).replace(str(sweep), "<SWEEP>"))
    got.pop("trust", None)
    _close(got, json.loads((GOLDEN / "exp9_v1_verdict.json").read_text()))

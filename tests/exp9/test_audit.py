"""``python -m prereg audit`` for exp9: the consistency gate's chance pass is exact (9/256 for
7 of 8 coin flips), a generalised registration counts its arms, and a sweep adds its verdict's
trust section."""

from __future__ import annotations

from helpers import REPO, prereg_cli, sibling_module

from prereg.core.registration import load_registered
from prereg.exp9.audit import audit, chance_pass

PLOTS = sibling_module(str(REPO / "tests" / "reports" / "test_plots.py"), "test_plots")


def test_the_consistency_gate_passes_by_chance_with_the_exact_binomial_tail():
    assert abs(chance_pass(8, 7) - 9 / 256) < 1e-15  # C(8,7) + C(8,8) = 9 of 2^8
    assert abs(chance_pass(8, 8) - 1 / 256) < 1e-15
    assert chance_pass(8, 0) == 1.0
    v1, v2 = audit(load_registered("exp9_v1")), audit(load_registered("exp9_v2"))
    assert "with probability 0.0352 (exact binomial)" in v1
    assert "Arms tested against the baseline: 1 (primary)." in v1
    any_arm = 1 - (1 - 9 / 256) ** 4
    want = (
        "4 (rho0_01, rho0_1, rho1, noise0_1); by chance at least one passes the count gate "
        f"with probability {any_arm:.4f}"
    )
    assert want in v2


def test_audit_of_a_sweep_adds_its_trust_section(tmp_path):
    sweep = PLOTS.make_exp9_sweep(tmp_path / "sw", steps=2000)
    text = audit(load_registered("exp9_v1"), sweep)
    assert "## How much this verdict can be trusted\n" in text
    assert "| primary | 4 of 8 (n4m2@0.5, n5m2@0.5, n4m3@0.5, n5m3@0.5) |" in text
    proc = prereg_cli("audit", "exp9_v2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("## How much this verdict can be trusted — exp9_v2")

"""exp9_v2's arms are the registration's: ``'arm=glob(*)'`` selects exactly the registration's
arms, an arm it does not register is refused in one line naming the allowed ones (before any
compute), and each arm carries its own form (the noise-only arm's is ``noise``)."""

from __future__ import annotations

import pytest

from prereg.core.registration import CONF_DIR, load_registered
from prereg.exp9.arms import arm_spec, augmented, generalised
from prereg.sweep import app, precheck, preflight
from prereg.sweep.order import study_sweep_order

V2_ARMS = ["baseline", "rho0_01", "rho0_1", "rho1", "noise0_1"]


@pytest.fixture(scope="module", autouse=True)
def _stores():
    app.setup()  # resolvers and schemas, as `prereg run` does first


def _arms(plan: preflight.Plan) -> list[str]:
    return sorted({o.split("=", 1)[1] for job in plan.jobs for o in job if o.startswith("arm=")})


def test_a_glob_under_a_registration_selects_exactly_its_arms():
    v2 = preflight.plan(["-m", "registration=exp9_v2", "arm=glob(*)", "cell=glob(*)"], CONF_DIR)
    assert _arms(v2) == sorted(V2_ARMS) and len(v2.jobs) == 20
    assert "arm=baseline,noise0_1,rho0_01,rho0_1,rho1" in v2.argv  # what Hydra launches
    v1 = preflight.plan(["-m", "arm=glob(*)", "cell=n4m2"], CONF_DIR)  # exp9_v1, the default
    assert _arms(v1) == ["baseline", "primary", "secondary"] and len(v1.jobs) == 3
    part = preflight.plan(["-m", "registration=exp9_v2", "arm=glob(rho*)"], CONF_DIR)
    assert _arms(part) == ["rho0_01", "rho0_1", "rho1"]
    # then the jobs run in the registration's order, baseline first; exp9_v1's are already so
    assert "arm=baseline,rho0_01,rho0_1,rho1,noise0_1" in study_sweep_order(v2)
    assert [job[1] for job in v2.jobs[::4]] == [f"arm={a}" for a in V2_ARMS]
    assert study_sweep_order(v1) == ["-m", "arm=baseline,primary,secondary", "cell=n4m2"]


def test_a_sweep_runs_the_largest_cells_first_so_side_by_side_jobs_end_together():
    plan = preflight.plan(["-m", "arm=baseline,primary", "cell=glob(*)"], CONF_DIR)
    assert study_sweep_order(plan) == ["-m", "arm=baseline,primary", "cell=n5m3,n4m3,n5m2,n4m2"]
    largest_first = ("n5m3", "n4m3", "n5m2", "n4m2")
    assert [job[1] for job in plan.jobs[:4]] == [f"cell={c}" for c in largest_first]
    one = preflight.plan(["-m", "arm=primary", "cell=n4m2,n5m3"], CONF_DIR)  # as typed, reordered
    assert study_sweep_order(one) == ["-m", "arm=primary", "cell=n5m3,n4m2"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["registration=exp9_v2", "arm=primary"],
            "error: arm: unknown option 'primary' (registration exp9_v2 does not register it) "
            "(allowed: baseline, rho0_01, rho0_1, rho1, noise0_1)",
        ),
        (
            ["-m", "registration=exp9_v2", "arm=baseline,secondary"],
            "error: arm: unknown option 'secondary' (registration exp9_v2 does not register it) "
            "(allowed: baseline, rho0_01, rho0_1, rho1, noise0_1)",
        ),
        (
            ["arm=rho1"],  # a v2 arm under exp9_v1
            "error: arm: unknown option 'rho1' (registration exp9_v1 does not register it) "
            "(allowed: baseline, primary, secondary)",
        ),
        (
            ["-m", "registration=exp9_v2", "arm=glob(prim*)"],
            "error: arm: the sweep 'arm=glob(prim*)' selects no registered value "
            "(allowed: baseline, rho0_01, rho0_1, rho1, noise0_1)",
        ),
        (
            ["registration=exp9_v2", "arm=noise0_1", "registration.lambdas.noise0_1.form=x"],
            "error: registration.lambdas.noise0_1.form: unknown value 'x' (allowed: rho, noise)",
        ),
        (
            ["registration.verdict_arm=all"],  # exp9_v1 with the generalised verdict half-set
            "error: registration.verdict_arm: 'all' (every augmented arm) needs dose_arm: all too",
        ),
        (
            ["registration=exp9_v2", "registration.dose_arm=rho1"],
            "error: registration.dose_arm: must be 'all': verdict_arm is 'all'",
        ),
        (
            ["registration=exp9_v2", "registration.lambdas.noise0_1.lambda=2"],
            "error: registration.lambdas.noise0_1.lambda: must lie in [0, 1], got 2",
        ),
    ],
)
def test_an_arm_the_registration_does_not_register_is_refused_in_one_line(argv, expected, capsys):
    status, plan = precheck.check(argv, CONF_DIR)
    assert status == 2 and plan is None
    assert capsys.readouterr().err.strip() == expected


def test_each_v2_arm_carries_its_registered_lambda_and_form():
    reg = load_registered("exp9_v2")
    specs = {a: tuple(arm_spec(reg, a)) for a in reg["lambdas"]}
    assert specs == {
        "baseline": (0.0, "rho"),
        "rho0_01": (0.01, "rho"),
        "rho0_1": (0.1, "rho"),
        "rho1": (1.0, "rho"),
        "noise0_1": (0.1, "noise"),
    }
    assert generalised(reg) and augmented(reg) == V2_ARMS[1:]
    v1 = load_registered("exp9_v1")
    assert not generalised(v1) and augmented(v1) == ["primary"]
    assert tuple(arm_spec(v1, "primary")) == (0.01, "rho")

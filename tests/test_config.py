"""Composition, sweeps and bad input: what a user typing run.py overrides sees."""

from __future__ import annotations

import pytest
from helpers import run_cli
from omegaconf import OmegaConf

from prereg.core.registration import CONF_DIR, load_registered, registration_hash
from prereg.sweep.app import setup as register_schemas
from prereg.sweep.precheck import _loader, expand_jobs

register_schemas()


def test_glob_cell_sweep_composes_exactly_the_twelve_registered_jobs():
    loader = _loader(CONF_DIR)
    jobs = expand_jobs(loader, ["arm=baseline,primary,secondary", "cell=glob(*)"], multirun=True)
    assert len(jobs) == 12
    cells = {o.split("=")[1] for job in jobs for o in job if o.startswith("cell=")}
    assert cells == set(load_registered("exp9_v1")["cells"])
    arms = {o.split("=")[1] for job in jobs for o in job if o.startswith("arm=")}
    assert arms == {"baseline", "primary", "secondary"}


def test_every_cell_option_is_a_registered_cell_and_vice_versa():
    loader = _loader(CONF_DIR)
    assert sorted(loader.get_group_options("cell")) == sorted(load_registered("exp9_v1")["cells"])
    # every arm file is an arm of an exp9 registration, and every registered arm has its file
    arms = {a for r in ("exp9_v1", "exp9_v2") for a in load_registered(r)["lambdas"]}
    assert sorted(loader.get_group_options("arm")) == sorted(arms)


def test_frozen_exp9_v1_registration_hash_is_pinned():
    # exp9_v1 is frozen: changing any constant must be a new registration (exp9_v2).
    reg = OmegaConf.load(CONF_DIR / "registration" / "exp9_v1.yaml")
    from prereg.core.registration import to_plain
    from prereg.exp9.config import Exp9Registration

    typed = to_plain(OmegaConf.merge(OmegaConf.structured(Exp9Registration), reg))
    assert registration_hash(typed) == FROZEN_EXP9_V1_HASH


FROZEN_EXP9_V1_HASH = "686086af64d61f4a"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["arm=foo"], "error: arm: unknown option 'foo' (allowed: baseline, primary, secondary)"),
        (["cell=n9m9"], "error: cell: unknown option 'n9m9' (allowed: n4m2, n4m3, n5m2, n5m3)"),
        (["bogus=1"], "error: bogus: unknown key (allowed: "),
        (["+bogus=1"], "error: bogus: unknown key (allowed: "),
        (["exp9.bogus=1"], "error: exp9.bogus: unknown key (allowed: chunk_steps)"),
        (["registration.lr=-0.01"], "error: registration.lr: must be > 0, got -0.01"),
        (["registration.lambdas.primary=abc"], "error: registration.lambdas.primary: 'abc' is not"),
        (["registration.step_cap=0"], "error: registration.step_cap: must be an integer >= 1"),
        (["arm=baseline,primary"], "error: arm: is a sweep; add -m"),
        (["-m", "cell=glob(zz*)"], "error: cell: the sweep 'cell=glob(zz*)' selects no value"),
    ],
)
def test_bad_input_stops_before_compute_with_one_line(tmp_path, args, expected):
    out = tmp_path / "run"
    proc = run_cli(*args, f"hydra.run.dir={out}", f"hydra.sweep.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(expected), lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing was started

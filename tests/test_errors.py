"""Bad input names the key, what is allowed, and the closest allowed name (edit similarity)."""

from __future__ import annotations

import pytest

from prereg.core.errors import ConfigError, did_you_mean, simplify_message
from prereg.sweep import app


def test_did_you_mean_picks_the_close_names_only():
    assert did_you_mean("cel", ["arm", "cell", "exp9"]) == "cell"
    assert did_you_mean("primay", ["baseline", "primary", "secondary"]) == "primary"
    assert did_you_mean("n4m", ["n4m2", "n4m3", "n5m2"]) == "n4m2 or n4m3"  # a tie: both
    assert did_you_mean("zzz", ["baseline", "primary"]) is None
    assert did_you_mean("mixed_2", ["mixed_0_90", "mixed_0_95", "mixed_0_97"]) is None  # 3 alike
    assert did_you_mean("cell", ["cell"]) is None  # the name itself is no suggestion


def test_config_error_puts_the_hint_before_the_allowed_values():
    err = ConfigError("arm", "unknown option 'primay'", ["baseline", "primary"], near="primay")
    assert str(err) == (
        "arm: unknown option 'primay' (did you mean primary?) (allowed: baseline, primary)"
    )
    assert "did you mean" not in str(ConfigError("arm", "x", ["baseline"], near="zzz"))


def test_an_enum_field_names_its_values_and_the_closest():
    msg = simplify_message("Invalid value 'rh', expected one of [rho, noise]")
    assert msg == "unknown value 'rh' (did you mean rho?) (allowed: rho, noise)"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["cel=n4m2"], "error: cel: unknown key (did you mean cell?) (allowed: arm, cell, "),
        (["arm=primay"], "error: arm: unknown option 'primay' (did you mean primary?) (allowed: "),
        (["exp9.chunk_step=3"], "error: exp9.chunk_step: unknown key (did you mean chunk_steps?)"),
        (
            ["experiment=ppo_ladr"],
            "error: experiment: unknown option 'ppo_ladr' (did you mean ppo_ladder?)",
        ),  # fmt: skip
    ],
)
def test_the_preflight_suggests_the_closest_key_or_option(argv, line, capsys):
    app.setup()
    assert app.preflight(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(line) and "\n" not in err

"""Many seeds in one jitted program (``ppo.num_seeds``): seed k of a vmapped run is the single
run with that seed, and the members' hyper-parameters are traced values."""

from __future__ import annotations

import functools

import jax
import numpy as np
from helpers import sibling_module

from prereg.ppo.trainer import METRIC_NAMES, PPOConfig, hypers_of, make_trainer, member

_toy = sibling_module(__file__, "test_trainer")
N, FIRST = 3, 5


@functools.cache
def many_trainer():
    return make_trainer(_toy.PointMassEnv(), None, PPOConfig(**_toy.TINY, num_seeds=N, seed=FIRST))


def test_seed_k_of_a_vmapped_run_equals_the_single_run_with_that_seed():
    tr, one = many_trainer(), _toy.tiny_trainer()
    assert tr.seeds() == [5, 6, 7]
    state, metrics = tr.run_chunk(tr.init(), 2)
    assert metrics["update"].shape == (N, 2)
    for k, seed in enumerate(tr.seeds()):
        single, m1 = one.run_chunk(one.init(seed), 2)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(
                metrics[name][k], m1[name], rtol=2e-4, atol=1e-6, err_msg=f"{name} seed {seed}"
            )
        mine = member(state, k)
        leaves = zip(*map(jax.tree_util.tree_leaves, (mine, single)), strict=True)
        for x, y in leaves:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=1e-5)
    # the members differ (independent seeds), so the equality above is not vacuous
    assert not np.allclose(metrics["value_loss"][0], metrics["value_loss"][1])


def test_members_may_train_with_their_own_traced_hyper_parameters():
    tr = many_trainer()
    hp = hypers_of(tr.cfg, N)._replace(lr=np.asarray([3e-4, 0.0, 3e-4], np.float32))
    s0 = tr.init()
    state, _ = tr.run_chunk(s0, 2, hp)
    kernel = np.asarray(state.params["actor"]["out"]["kernel"])
    start = np.asarray(s0.params["actor"]["out"]["kernel"])
    np.testing.assert_array_equal(kernel[1], start[1])  # lr 0: the member's actor never moved
    assert not np.array_equal(kernel[0], start[0])
    assert set(tr._chunk_fns) == {2}  # one compiled program, whatever the members' values


def test_many_members_at_the_large_tier_initialise_and_each_is_its_single_init():
    """Four members of the large tier's networks start (a vmapped init batched the orthogonal
    initialisers' QR, which jaxlib split over XLA's thread pool and waited for on it: on a
    2-core machine the process hung for good, every thread idle); member k is seed k's init.
    In a subprocess with a time limit, so that a hang fails the test instead of the suite."""
    import subprocess
    import sys

    code = """
import jax, numpy as np
from prereg.ppo.env import MesaDockFuncEnv
from prereg.ppo.env.mesadock import DEFAULT_PARAMS
from prereg.ppo.trainer import PPOConfig, make_trainer
tr = make_trainer(MesaDockFuncEnv(), DEFAULT_PARAMS, PPOConfig(tier="large", num_seeds=4))
stack = jax.block_until_ready(tr.init_members([0, 1, 2, 3]))
single = jax.jit(tr._init)(2)  # seed 2 alone
for x, y in zip(jax.tree_util.tree_leaves(stack), jax.tree_util.tree_leaves(single)):
    np.testing.assert_array_equal(np.asarray(x)[2], np.asarray(y))
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]

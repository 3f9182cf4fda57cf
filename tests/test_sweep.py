"""Parameter sweeps (`sweep_gas`): every point is `simulate_gas` at that point with the same key
(the same encounters; equal to rounding, see `assert_same_to_rounding`). Sharding the sweep axis
across 8 devices is tested in `test_sharding.py`."""

import jax
import numpy as np
import pytest

import oile_jax as oj

from .conftest import assert_same_to_rounding, interrupt_after_checkpoints, run_options

GAS = oj.Gas((30, 20), (0.1, 0.2), [[0.1, 0, 0.99], [-0.1, 0, -0.99]])


@pytest.mark.long  # 15-20 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_every_point_is_the_single_run(key):
    kw = dict(
        schedule=oj.Stochastic(dt=0.02),
        sampling=oj.Sampling(key=key, t_max=2.0, n_realizations=2),
        saveat=oj.SaveAt(every=10, state=True, chunk=3),
    )
    gammas, mus = [0.05, 0.1, 0.4], [1.0, 2.0, 1.0]
    system = lambda gamma, mu: oj.System(gamma=gamma, mu=mu, angles="fixed-velocities")
    sols = oj.sweep_gas(GAS, **kw, system=system(gammas, mus))
    assert len(sols) == 3
    for gamma, mu, sol in zip(gammas, mus, sols, strict=True):
        ref = oj.simulate_gas(GAS, **kw, system=system(gamma, mu))
        for name in (
            "ts",
            "group_mean",
            "group_std",
            "group_entropy",
            "lepton",
            "encounters",
            "final_state",
            "state",
            "velocities",
        ):
            # The sweep is another XLA program (vmapped over its points): the same encounters,
            # the same numbers to rounding.
            assert_same_to_rounding(getattr(sol, name), getattr(ref, name), f"{gamma} {name}")
    # The points differ: stronger coupling moves the group means further.
    assert not np.allclose(sols[0].group_mean[:, -1], sols[2].group_mean[:, -1])


def test_deterministic_rounds_need_n_steps(key):
    with pytest.raises(ValueError, match="pass n_steps for a sweep"):
        oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[0.1, 0.2]),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=key, t_max=1.0),
        )
    sols = oj.sweep_gas(
        GAS,
        system=oj.System(gamma=[0.1, 0.2]),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(key=key, n_steps=4),
    )
    assert np.allclose(sols[1].ts, 2 * sols[0].ts)  # a round lasts gamma / mu
    with pytest.raises(ValueError, match="gamma must be > 0|gamma"):
        oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[0.1, -0.2]),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=key, n_steps=4),
        )
    with pytest.raises(ValueError, match="scalars or 1-d arrays"):
        oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[[0.1]]),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=key, n_steps=4),
        )
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        oj.sweep_gas(
            GAS,
            system=oj.System(gamma=[0.1, 0.2, 0.3]),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=key, n_steps=4),
            sharding=oj.Sharding(devices=[jax.devices()[0]] * 2),
        )


def test_interrupted_sweep_resumes_exactly(key, tmp_path, monkeypatch):
    """A sweep stopped (Ctrl-C) after its 2nd checkpoint and resumed gives exactly the numbers of
    the uninterrupted sweep; the checkpoint refuses another sweep (other gammas)."""
    kw = dict(
        schedule=oj.Stochastic(dt=0.02),
        key=key,
        angles="fixed-velocities",
        n_steps=40,
        save_every=4,
        n_realizations=2,
        chunk_saves=3,
        save_state=True,
    )
    gammas = [0.05, 0.1]
    full = oj.sweep_gas(GAS, **run_options(gamma=gammas, **kw))
    path = tmp_path / "sweep.ckpt.h5"
    restore = interrupt_after_checkpoints(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        oj.sweep_gas(GAS, **run_options(gamma=gammas, checkpoint=path, **kw))
    restore()
    data, _ = oj.read_h5(path)
    assert int(data["step"]) == 24  # 2 chunks of 3 saves of 4 steps
    assert data["state"].shape == (2, 2, GAS.n, 3)
    with pytest.raises(FileExistsError, match="resume=True"):
        oj.sweep_gas(GAS, **run_options(gamma=gammas, checkpoint=path, **kw))
    with pytest.raises(ValueError, match="differs in gamma"):
        oj.sweep_gas(GAS, **run_options(gamma=[0.05, 0.2], checkpoint=path, resume=True, **kw))
    resumed = oj.sweep_gas(GAS, **run_options(gamma=gammas, checkpoint=path, resume=True, **kw))
    # Resuming runs the very same compiled chunks on the saved state: exact on any machine.
    for a, b in zip(resumed, full, strict=True):
        for name in ("group_mean", "group_std", "lepton", "encounters", "final_state", "state"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name

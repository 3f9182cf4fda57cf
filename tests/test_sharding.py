"""Realizations sharded across devices: 8 CPU devices in a subprocess
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`, set before JAX starts)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from .conftest import assert_same_to_rounding, xla_flags

SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import oile_jax as oj

    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 8, jax.devices()
    gas = oj.Gas((30, 20), (0.1, 0.2), [[0.1, 0, 0.99], [-0.1, 0, -0.99]])
    def diff(a, b):
        # Largest difference relative to the largest magnitude (see the test's docstring).
        a, b = np.asarray(a), np.asarray(b)
        return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))

    runs, shardings = {}, {}
    for devices in (1, 2, 8):
        sol = oj.simulate_gas(
            gas, oj.System(gamma=0.1, angles="fixed-velocities"), oj.Stochastic(dt=0.05),
            oj.Sampling(jax.random.key(1), n_steps=60, n_realizations=8),
            saveat=oj.SaveAt(every=10, chunk=3), sharding=oj.Sharding(devices=devices),
        )
        runs[devices] = sol
    out = {}
    for devices in (2, 8):
        out[devices] = {
            name: diff(getattr(runs[devices], name), getattr(runs[1], name))
            for name in ("group_mean", "group_std", "lepton", "encounters", "final_state")
        }
    # One gas sharded along the neutrino axis: 8 shards on 1, 2 and 8 devices.
    big = oj.Gas((96, 32), (0.1, 0.2), [[0.1, 0, 0.99], [-0.1, 0, -0.99]])
    sharded = {
        devices: oj.simulate_gas(
            big, oj.System(gamma=0.1, angles="fixed-velocities"), oj.Stochastic(dt=0.05),
            oj.Sampling(jax.random.key(2), n_steps=24, n_realizations=2),
            saveat=oj.SaveAt(every=4, state=True, chunk=2),
            sharding=oj.Sharding(devices=devices, shards=8, exchange_every=2),
        )
        for devices in (1, 2, 8)
    }
    out["shards"] = {
        devices: {
            name: diff(getattr(sharded[devices], name), getattr(sharded[1], name))
            for name in ("group_mean", "group_std", "group_entropy", "lepton", "encounters",
                         "final_state", "state", "velocities")
        }
        for devices in (2, 8)
    }
    # A parameter sweep, its 8 points sharded over 8 devices.
    gammas = [0.02 * (k + 1) for k in range(8)]
    sweeps = [
        oj.sweep_gas(
            gas, oj.System(gamma=gammas), oj.Stochastic(dt=0.01),
            oj.Sampling(jax.random.key(3), n_steps=20, n_realizations=2),
            saveat=oj.SaveAt(every=5), sharding=oj.Sharding(devices=devices),
        )
        for devices in (None, 8)
    ]
    out["sweep"] = max(diff(a.group_mean, b.group_mean) for a, b in zip(*sweeps))
    out["shards_moved"] = float(np.max(np.abs(sharded[8].final_state - sharded[8].state[:, 0])))
    try:
        oj.simulate_gas(gas, oj.System(gamma=0.1), oj.Stochastic(dt=0.05),
                        oj.Sampling(jax.random.key(1), n_steps=10, n_realizations=6),
                        sharding=oj.Sharding(devices=8))
        out["error"] = None
    except ValueError as error:
        out["error"] = str(error)
    # The command line: the same run on 1 and on 4 devices.
    import sys
    import tempfile
    from pathlib import Path
    from oile_jax._app import cli as _cli
    folder = Path(tempfile.mkdtemp())
    small = ["--set", "gas.counts=[60, 40]", "--set", "run.t_max=5", "--set", "run.n_saves=6",
             "--set", "run.n_realizations=4"]
    assert _cli.main(["run", "two-groups", "--out", str(folder / "a.h5"), *small]) == 0
    assert _cli.main(["run", "two-groups", "--out", str(folder / "b.h5"), "--devices", "4",
                      *small]) == 0
    a, b = oj.read_h5(folder / "a.h5")[0], oj.read_h5(folder / "b.h5")[0]
    out["cli"] = diff(a["group_mean"], b["group_mean"])

    print("RESULT" + json.dumps(out))
    """
)


# Another device count is another XLA program (partitioned, or vmapped over another local
# batch): the encounters are the same by construction (encounter counts compared exactly), the
# floating-point numbers agree to rounding only, as XLA promises no fusion, multiply-add
# contraction or reduction order across programs. Bound: 1000 ulps (float64) of the largest
# magnitude, where another pairing or angle would differ by O(0.01).
ROUNDING = 1000 * np.finfo(np.float64).eps


def _same_to_rounding(diffs: dict) -> bool:
    return diffs["encounters"] == 0.0 and all(v <= ROUNDING for v in diffs.values())


@pytest.mark.long  # 54 s on 2 cores: make test-long, in CI
def test_sharded_realizations_give_the_unsharded_numbers():
    env = dict(
        os.environ,
        XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=8"),
        JAX_PLATFORMS="cpu",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    for devices in ("2", "8"):
        # Realization r uses fold_in(key, r) wherever it runs: the same encounters.
        assert set(result[devices]) == {
            "group_mean",
            "group_std",
            "lepton",
            "encounters",
            "final_state",
        }
        assert _same_to_rounding(result[devices]), result[devices]
    assert "n_realizations=6 must be a multiple of the number of devices (8)" in result["error"]
    assert result["cli"] <= ROUNDING
    # Neutrino-axis shards: the pairing is defined per shard, so any device count gives the
    # same numbers, and the neutrinos did move.
    for devices in ("2", "8"):
        assert _same_to_rounding(result["shards"][devices]), result["shards"]
    assert result["shards_moved"] > 1e-3
    assert result["sweep"] <= ROUNDING


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.long  # 35 s: two processes; make test-long, in CI
def test_two_processes_give_the_one_process_numbers(tmp_path):
    """Multi-host use as documented in the README: two processes (4 CPU devices each) started
    with --coordinator/--num-processes/--process-id, one gas in 8 neutrino shards across all 8
    devices; process 0 writes the file, with the numbers of a one-process run."""
    from oile_jax._app import cli as _cli

    small = [
        "--set",
        "gas.counts=[96, 32]",
        "--set",
        "gas.shards=8",
        "--set",
        "run.t_max=2",
        "--set",
        "run.n_saves=3",
        "--set",
        "run.n_realizations=2",
        "--no-progress",
    ]
    port = _free_port()
    env = dict(
        os.environ,
        XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=4"),
        JAX_PLATFORMS="cpu",
    )
    code = "import sys; from oile_jax._app.cli import main; sys.exit(main(sys.argv[1:]))"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "run",
                "two-groups",
                "--out",
                str(tmp_path / "d.h5"),
                "--devices",
                "all",
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                *small,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    assert "process 1 of 2: done" in outputs[1][0]
    assert _cli.main(["run", "two-groups", "--out", str(tmp_path / "one.h5"), *small]) == 0
    import oile_jax as oj

    (multi, attrs), (one, _) = oj.read_h5(tmp_path / "d.h5"), oj.read_h5(tmp_path / "one.h5")
    assert int(attrs["n_devices"]) == 8
    for name in ("group_mean", "group_std", "lepton", "encounters"):
        assert_same_to_rounding(multi[name], one[name], name)

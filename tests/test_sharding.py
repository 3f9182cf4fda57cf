"""Realizations sharded across devices: 8 CPU devices in a subprocess
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`, set before JAX starts)."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import oile_jax as oj

    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 8, jax.devices()
    gas = oj.Gas((30, 20), (0.1, 0.2), [[0.1, 0, 0.99], [-0.1, 0, -0.99]])
    runs, shardings = {}, {}
    for devices in (None, 1, 2, 8):
        sol = oj.simulate_gas(
            gas, gamma=0.1, schedule=oj.Stochastic(dt=0.05), key=jax.random.key(1),
            angles="fixed-velocities", n_steps=60, save_every=10, n_realizations=8,
            devices=devices, chunk_saves=3,
        )
        runs[devices] = sol
    out = {}
    for devices in (1, 2, 8):
        out[devices] = {
            name: float(np.max(np.abs(getattr(runs[devices], name) - getattr(runs[None], name))))
            for name in ("group_mean", "group_std", "lepton", "encounters", "final_state")
        }
    try:
        oj.simulate_gas(gas, gamma=0.1, schedule=oj.Stochastic(dt=0.05), key=jax.random.key(1),
                        n_steps=10, n_realizations=6, devices=8)
        out["error"] = None
    except ValueError as error:
        out["error"] = str(error)
    # The command line: the same run on 1 and on 4 devices.
    import sys
    import tempfile
    from pathlib import Path
    from oile_jax import _cli
    folder = Path(tempfile.mkdtemp())
    small = ["--set", "gas.counts=[60, 40]", "--set", "run.t_max=5", "--set", "run.n_saves=6",
             "--set", "run.n_realizations=4"]
    assert _cli.main(["run", "two-groups", "--out", str(folder / "a.h5"), *small]) == 0
    assert _cli.main(["run", "two-groups", "--out", str(folder / "b.h5"), "--devices", "4",
                      *small]) == 0
    a, b = oj.read_h5(folder / "a.h5")[0], oj.read_h5(folder / "b.h5")[0]
    out["cli"] = float(np.max(np.abs(a["group_mean"] - b["group_mean"])))
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_realizations_give_the_unsharded_numbers():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    for devices in ("1", "2", "8"):
        # Realization r uses fold_in(key, r) wherever it runs: identical numbers.
        assert result[devices] == {
            "group_mean": 0.0,
            "group_std": 0.0,
            "lepton": 0.0,
            "encounters": 0.0,
            "final_state": 0.0,
        }
    assert "n_realizations=6 must be a multiple of the number of devices (8)" in result["error"]
    assert result["cli"] == 0.0

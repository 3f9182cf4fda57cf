"""Exact many-body engine: pair encounters per second on the 2^N state vector, against a NumPy
baseline measured in the same run (the state as an array of shape (2,) * N, `S_ij` applied with
`np.swapaxes`, `U = cos c - i sin c S_ij`, one random pair at a time).

    python experiments/benchmark_manybody.py                 # N = 16, 20, 24 on this machine
    python experiments/benchmark_manybody.py --sizes 24 26 28 --json gpu.json
"""

import argparse
import json
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import oile_jax as oj


def numpy_rate(n: int, encounters: int, rng) -> float:
    psi = (rng.normal(size=(2,) * n) + 1j * rng.normal(size=(2,) * n)).astype(np.complex64)
    psi /= np.linalg.norm(psi)
    start = time.perf_counter()
    for _ in range(encounters):
        i, j = rng.choice(n, size=2, replace=False)
        c = rng.uniform(0, 0.2)
        psi = np.cos(c) * psi - 1j * np.sin(c) * np.swapaxes(psi, i, j)
    return encounters / (time.perf_counter() - start)


def jax_rate(n: int, rounds: int, n_realizations: int, key) -> float:
    """`simulate_manybody` (deterministic schedule, isotropic angles, vacuum on, float32): the
    exact engine and, alongside, OILE for the same encounters."""
    up = [0.6, 0.0, 0.8]
    gas = oj.Gas((n // 2, n - n // 2), (0.1, 0.2), [up, [0.0, 0.6, -0.8]])
    run = lambda gamma: oj.simulate_manybody(
        gas,
        system=oj.System(gamma=gamma),
        schedule=oj.Deterministic(),
        sampling=oj.Sampling(
            key=key, n_steps=rounds, n_realizations=n_realizations, dtype=jnp.float32
        ),
        saveat=oj.SaveAt(every=rounds),
    ).norm.block_until_ready()
    run(0.1)
    start = time.perf_counter()
    run(0.11)
    return n_realizations * rounds * (n // 2) / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 20, 24])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    key = jax.random.key(0)
    device = jax.devices()[0]
    print(
        f"# {platform.machine()} | {device.platform}:{device.device_kind} | jax {jax.__version__}"
    )
    print(
        f"{'N':>4}{'NumPy enc/s':>14}{'oile_jax enc/s':>16}{'ratio':>8}"
        f"{'ensemble R':>12}{'enc/s':>12}"
    )
    rows = []
    rng = np.random.default_rng(0)
    for n in args.sizes:
        base = numpy_rate(n, max(5, int(2e8 / 2**n)), rng)
        # Enough rounds that the one-body reductions at the two saves are a small part.
        rounds = max(4, int(2e8 / 2**n / (n // 2)))
        rate = jax_rate(n, rounds, 1, key)
        R = max(1, 2 ** max(0, 20 - n))
        ens = jax_rate(n, rounds, R, key) if R > 1 else rate
        rows.append(
            {
                "n": n,
                "numpy": base,
                "jax": rate,
                "ratio": rate / base,
                "realizations": R,
                "ensemble": ens,
            }
        )
        print(f"{n:>4}{base:>14.1f}{rate:>16.1f}{rate / base:>8.1f}{R:>12}{ens:>12.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

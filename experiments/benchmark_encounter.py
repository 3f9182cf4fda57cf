"""Throughput of the encounter kernel and of the foreground simulation, in encounters per second,
against a baseline measured in the same run.

Baseline: the research prototype's algorithm (`prototype.py`): NumPy, one random pair at a
time, 2x2 density matrices built into the 4x4 pair state, `U = cos c - i sin c SWAP`, both
partial traces.

    python experiments/benchmark_encounter.py            # prints a table
    python experiments/benchmark_encounter.py --json out.json
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prototype  # noqa: E402

import oile_jax as oj  # noqa: E402


def baseline_rate(n_pairs: int, rng) -> float:
    """Prototype algorithm: encounters per second, one pair at a time (`prototype.py`)."""
    return prototype.gas_encounters_per_second(1000, n_pairs, rng)


def timed(fn, *args, repeats: int) -> float:
    """Best wall time of `repeats` calls, after one warm-up (compilation) call."""
    jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def kernel_rate(n_pairs: int, dtype, key, sweeps: int = 20) -> float:
    """`sweeps` encounters of each of `n_pairs` pairs inside one jitted scan."""
    k1, k2 = jax.random.split(key)
    P = jax.random.uniform(k1, (2, n_pairs, 3), dtype=dtype, minval=-0.5, maxval=0.5)
    c = jax.random.uniform(k2, (n_pairs,), dtype=dtype, maxval=0.2)

    @jax.jit
    def run(P, c):
        def sweep(P, _):
            P_i, P_j = oj.encounter(P[0], P[1], c)
            # Swap partners between sweeps so no sweep can be folded into the next.
            return jnp.stack([P_j, P_i]), None

        return jax.lax.scan(sweep, P, None, length=sweeps)[0]

    return n_pairs * sweeps / timed(run, P, c, repeats=3)


def foreground_rate(n_realizations: int, key) -> float:
    """Steps per second of `simulate_foreground` (stochastic, p = 1: every step an encounter)."""
    schedule = oj.Stochastic(dt=0.05)
    run = lambda: (
        oj.simulate_foreground(
            jnp.asarray([0.0, 0.0, 1.0], jnp.float32),
            [0.6, 0.0, 0.6],
            system=oj.System(gamma=0.05),
            schedule=schedule,
            sampling=oj.Sampling(key=key, n_steps=1000, n_realizations=n_realizations),
            saveat=oj.SaveAt(every=100),
            omega=0.3,
        ).mean
    )
    return n_realizations * 1000 / timed(run, repeats=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--baseline-pairs", type=int, default=20_000)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    key = jax.random.key(0)
    device = jax.devices()[0]
    print(
        f"# {platform.node()} | {platform.processor() or platform.machine()} | "
        f"{device.platform}:{device.device_kind} | jax {jax.__version__}"
    )
    base = baseline_rate(args.baseline_pairs, np.random.default_rng(0))
    print(
        "baseline (prototype, NumPy, one pair at a time, 4x4 + partial trace): "
        f"{base:.3e} encounters/s"
    )
    rows = []
    print(f"{'what':<34}{'N pairs':>10}{'encounters/s':>16}{'x baseline':>12}")
    for dtype in (jnp.float32,):
        for n in args.sizes:
            rate = kernel_rate(n, dtype, key)
            rows.append(
                {
                    "what": f"encounter kernel ({jnp.dtype(dtype).name})",
                    "n": n,
                    "rate": rate,
                    "ratio": rate / base,
                }
            )
    for R in (1024, 16384):
        rate = foreground_rate(R, key)
        rows.append(
            {"what": "simulate_foreground (float32)", "n": R, "rate": rate, "ratio": rate / base}
        )
    for row in rows:
        print(f"{row['what']:<34}{row['n']:>10}{row['rate']:>16.3e}{row['ratio']:>12.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"baseline": base, "device": str(device), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

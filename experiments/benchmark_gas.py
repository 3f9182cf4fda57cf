"""Gas throughput in encounters per second: `simulate_gas` (stochastic schedule, vacuum on,
fixed velocities, float32) against the research prototype's algorithm measured in the same run
(`prototype.py`: NumPy, one random pair at a time, 4x4 pair state, partial traces).

    python experiments/benchmark_gas.py                      # N = 1e3, 1e5, 1e6 on this machine
    python experiments/benchmark_gas.py --sizes 1000000 100000000 --json gpu.json
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


def gas_rate(
    n: int, steps: int, key, p: float = 1.0, n_realizations: int = 1
) -> tuple[float, float]:
    """Encounters per second of a run of `steps` steps (after a warm-up run that compiles).
    Two groups (60% / 40%, omega = 0.1, 0.2), gamma = 0.01, dt = p gamma / mu."""
    gas = oj.Gas(
        (6 * n // 10, n - 6 * n // 10),
        (0.1, 0.2),
        [[1e-3, 0.0, np.sqrt(1 - 1e-6)], [-1e-3, 0.0, -np.sqrt(1 - 1e-6)]],
    )
    run = lambda gamma: oj.simulate_gas(
        gas,
        gamma=gamma,
        schedule=oj.Stochastic(dt=p * 0.01),
        key=key,
        angles="fixed-velocities",
        n_steps=steps,
        save_every=steps,
        n_realizations=n_realizations,
        dtype=jnp.float32,
    )
    start = time.perf_counter()
    run(0.01)
    compile_and_run = time.perf_counter() - start
    start = time.perf_counter()
    sol = run(0.0100001)  # another gamma: no recompilation
    elapsed = time.perf_counter() - start
    return float(sol.encounters[:, -1].sum()) / elapsed, compile_and_run - elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument(
        "--p", type=float, default=1.0, help="meeting probability per step (default 1)"
    )
    parser.add_argument("--baseline-encounters", type=int, default=20_000)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    key = jax.random.key(0)
    device = jax.devices()[0]
    print(
        f"# {platform.processor() or platform.machine()} | "
        f"{device.platform}:{device.device_kind} | jax {jax.__version__}"
    )
    base = prototype.gas_encounters_per_second(
        1000, args.baseline_encounters, np.random.default_rng(0)
    )
    print(f"baseline (prototype algorithm, NumPy, N = 1000): {base:.3e} encounters/s")
    print(f"{'N':>12}{'steps':>8}{'encounters/s':>16}{'x baseline':>12}{'compile s':>11}")
    rows = []
    for n in args.sizes:
        steps = int(min(2000, max(20, 2e8 / n)))
        rate, compile_s = gas_rate(n, steps, key, p=args.p)
        rows.append(
            {
                "n": n,
                "steps": steps,
                "p": args.p,
                "rate": rate,
                "ratio": rate / base,
                "compile_s": compile_s,
            }
        )
        print(f"{n:>12}{steps:>8}{rate:>16.3e}{rate / base:>12.0f}{compile_s:>11.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"baseline": base, "device": str(device), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

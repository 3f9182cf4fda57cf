"""Gas throughput in encounters per second: `simulate_gas` (stochastic schedule, vacuum on,
fixed velocities, float32) against the research prototype's algorithm measured in the same run
(NumPy, one random pair at a time, 4x4 pair state, partial traces). Same as `oile bench`.

    python experiments/benchmark_gas.py                      # N = 1e3, 1e5, 1e6 on this machine
    python experiments/benchmark_gas.py --sizes 1000000 100000000 --json gpu.json
"""

import argparse
import json
import sys

from oile_jax.bench import benchmark


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument(
        "--p", type=float, default=1.0, help="meeting probability per step (default 1)"
    )
    parser.add_argument("--baseline-encounters", type=int, default=20_000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per entry, the best kept (default 3)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    result = benchmark(
        args.sizes,
        p=args.p,
        baseline_encounters=args.baseline_encounters,
        repeats=args.repeats,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

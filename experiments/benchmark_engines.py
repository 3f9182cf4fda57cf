"""The gas engines against an earlier commit, measured in the same run: encounters per second
of the dense gas at N = 1e6 and of the sharded gas at N = 1.024e6 in 8 shards on one device
(stochastic schedule with p = 1, vacuum on, fixed velocities, float32), for this working tree
and for a baseline checkout, alternating between the two, each entry the median of `--rounds`
measurements (each the best of `--repeats` timed runs after a compile).

    git worktree add /tmp/baseline <commit>
    python experiments/benchmark_engines.py --baseline /tmp/baseline --json engines.json
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CASES = {"dense": dict(n=1_000_000, steps=200), "sharded": dict(n=1_024_000, steps=100, shards=8)}
MEASURE = """
import importlib, json, sys, jax
gas_rate = importlib.import_module(sys.argv[2]).gas_rate
case = json.loads(sys.argv[1])
rate, _ = gas_rate(case.pop("n"), case.pop("steps"), jax.random.key(0), **case)
print(json.dumps(rate))
"""


def measure(tree: Path, case: dict, repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # Commits before the benchmark was public kept it in `oile_jax._bench`.
    public = (tree / "oile_jax" / "bench.py").exists()
    module = "oile_jax.bench" if public else "oile_jax._bench"
    args = [sys.executable, "-c", MEASURE, json.dumps({**case, "repeats": repeats}), module]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tree)
    if done.returncode:
        raise SystemExit(f"the measurement in {tree} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per entry (median)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    if args.baseline is not None and not (args.baseline / "oile_jax").is_dir():
        parser.error(f"--baseline {args.baseline} is not a checkout of oile_jax")
    trees = {"this tree": HERE} | ({"baseline": args.baseline} if args.baseline else {})
    rates = {(case, name): [] for case in args.cases for name in trees}
    for _ in range(args.rounds):
        for case in args.cases:
            for name, tree in trees.items():  # alternating: drifts of the machine hit both
                rates[case, name].append(measure(tree, CASES[case], args.repeats))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{'case':>8}{'tree':>11}{'encounters/s (median)':>24}{'range':>24}")
    result = {"machine": platform.processor() or platform.machine(), "rows": []}
    for (case, name), values in rates.items():
        median = statistics.median(values)
        span = f"{min(values):.3e}-{max(values):.3e}"
        print(f"{case:>8}{name:>11}{median:>24.3e}{span:>24}")
        result["rows"].append({"case": case, "tree": name, "median": median, "all": values})
    if args.baseline:
        for case in args.cases:
            ratio = statistics.median(rates[case, "this tree"]) / statistics.median(
                rates[case, "baseline"]
            )
            print(f"{case}: this tree / baseline = {ratio:.2f}")
            result[f"{case}_ratio"] = ratio
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

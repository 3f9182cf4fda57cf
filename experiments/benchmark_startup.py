"""Start-up time of the `oile` commands with the persistent compilation cache: each command in
a fresh process with an empty cache directory (it compiles and writes the cache), then in a
second process with that cache (it reads it), and with the cache off; the best of `--repeats`
second processes. Times are whole processes, from start to exit (the first and only result of
each command), measured in the same run.

    python experiments/benchmark_startup.py
    python experiments/benchmark_startup.py --json startup.json
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = "{tmp}/out.h5"
COMMANDS = {
    "oile run foreground": ["run", "foreground", "--out", OUT, "--force", "--no-progress"],
    "oile run two-groups (N = 1000, mu t = 200)": [
        "run", "two-groups", "--set", "gas.counts=[600, 400]", "--set", "run.t_max=200.0",
        "--set", "run.n_saves=21", "--out", OUT, "--force", "--no-progress",
    ],
    "oile equilibrium": [
        "equilibrium", "--fractions", "0.6", "0.4", "--omegas", "0.1", "0.2", "--lengths", "1",
        "-1", "--Pz", "0.2",
    ],
    "oile path": [
        "path", "--fractions", "0.6", "0.4", "--omegas", "0.1", "0.2", "--lengths", "0.9",
        "-0.9", "--Pz", "0.2", "--gamma", "0.01", "--t-max", "100", "--out", OUT, "--force",
    ],
}  # fmt: skip
CODE = "import sys; from oile_jax._cli import main; sys.exit(main(sys.argv[1:]))"


def timed(argv, env) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CODE, *argv], env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed: {result.stderr.decode()[-2000:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="second processes (best kept)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    print(f"# {platform.processor() or platform.machine()} | python {platform.python_version()}")
    print(f"{'command':<44}{'no cache s':>11}{'first s':>9}{'second s':>10}{'speed-up':>10}")
    for name, template in COMMANDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            command = [a.format(tmp=tmp) for a in template]
            cache = Path(tmp) / "cache"
            env = {**os.environ, "OILE_COMPILE_CACHE_DIR": str(cache)}
            env.pop("OILE_NO_COMPILE_CACHE", None)
            off = min(timed(command, {**env, "OILE_NO_COMPILE_CACHE": "1"})
                      for _ in range(args.repeats))  # fmt: skip
            shutil.rmtree(cache, ignore_errors=True)
            first = timed(command, env)
            second = min(timed(command, env) for _ in range(args.repeats))
        row = {"command": name, "no_cache_s": off, "first_s": first, "second_s": second,
               "speedup": off / second}  # fmt: skip
        rows.append(row)
        print(f"{name:<44}{off:>11.2f}{first:>9.2f}{second:>10.2f}{off / second:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.processor(), "repeats": args.repeats, "rows": rows},
                      f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

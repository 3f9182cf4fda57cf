"""Start-up time of the `oile` commands and of two library calls with the persistent compilation
cache: each in a fresh process with the cache off, then with an empty cache directory (it
compiles and writes the cache), then in second processes with that cache (they read it); the
best of `--repeats` processes with the cache off and of the second processes, measured in the
same run. Three times a process: `import` (Python, JAX and the library), `result` (from the
command's start, after the imports, to its first result: the moment its results are complete and
handed to the HDF5 writer, or printed), and `process` (the whole process, start to exit, the
figure and files included).

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
# The command, with the time its results reach the HDF5 writer recorded (the first result).
COMMAND = """
import json, sys, time
start = time.perf_counter()
try:  # the layout by concept; commits before it kept these at the top level
    from oile_jax._output import io as _io
    from oile_jax._app import runner as _runner
    from oile_jax._app.cli import main
except ImportError:
    from oile_jax import _io, _runner
    from oile_jax._cli import main
imported = time.perf_counter()
first = []
def recorded(write):
    def write_h5(*args, **kwargs):
        first.append(time.perf_counter())
        return write(*args, **kwargs)
    return write_h5
_io.write_h5, _runner.write_h5 = recorded(_io.write_h5), recorded(_runner.write_h5)
code = main(sys.argv[1:])
end = time.perf_counter()
times = {"import": imported - start, "result": (first[0] if first else end) - imported}
print("TIMES" + json.dumps(times), file=sys.stderr)
sys.exit(code)
"""
# Library calls: the first call's time, in a script that turns the cache on.
LIBRARY = """
import json, sys, time
start = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", {x64})
import numpy as np
import oile_jax as oj
oj.use_compilation_cache()
imported = time.perf_counter()
{call}
jax.block_until_ready(result)
times = {{"import": imported - start, "result": time.perf_counter() - imported}}
print("TIMES" + json.dumps(times), file=sys.stderr)
"""
CALLS = {
    "miscidynamic_path (two groups, float64)": (True, (
        "result = oj.miscidynamic_path([1.0, -1.0], [0.6, 0.4], [0.1, 0.2], 0.2, "
        "np.linspace(0.0, 100.0, 3), gamma=0.01).Q"
    )),
    "simulate_gas (N = 1000, two groups)": (False, (
        "gas = oj.Gas(counts=(600, 400), omegas=[0.1, 0.2], "
        "P0=[[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])\n"
        "result = oj.simulate_gas(gas, gamma=0.1, schedule=oj.Deterministic(), "
        "key=jax.random.key(0), n_steps=200, save_every=20).group_mean"
    )),
}  # fmt: skip


def timed(argv, env) -> dict:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", *argv], env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[1:]} failed: {result.stderr.decode()[-2000:]}")
    line = [x for x in result.stderr.decode().splitlines() if x.startswith("TIMES")][-1]
    return {**json.loads(line[5:]), "process": elapsed}


def best(runs: list[dict]) -> dict:
    return {name: min(run[name] for run in runs) for name in runs[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="second processes (best kept)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    print(f"# {platform.processor() or platform.machine()} | python {platform.python_version()}")
    print("# seconds: import / first result / whole process")
    print(f"{'':<44}{'cache off':>20}{'first process':>20}{'second process':>20}{'result x':>9}")
    programs = {name: [COMMAND, *argv] for name, argv in COMMANDS.items()}
    for name, (x64, call) in CALLS.items():
        programs[name] = [LIBRARY.format(x64=x64, call=call)]
    for name, template in programs.items():
        with tempfile.TemporaryDirectory() as tmp:
            command = [a.replace("{tmp}", tmp) for a in template]
            cache = Path(tmp) / "cache"
            env = {**os.environ, "OILE_COMPILE_CACHE_DIR": str(cache)}
            env.pop("OILE_NO_COMPILE_CACHE", None)
            off = best([timed(command, {**env, "OILE_NO_COMPILE_CACHE": "1"})
                        for _ in range(args.repeats)])  # fmt: skip
            shutil.rmtree(cache, ignore_errors=True)
            first = timed(command, env)
            second = best([timed(command, env) for _ in range(args.repeats)])
        row = {"command": name, "off": off, "first": first, "second": second,
               "speedup": off["result"] / second["result"]}  # fmt: skip
        rows.append(row)
        show = lambda t: f"{t['import']:.2f}/{t['result']:.2f}/{t['process']:.2f}"
        print(f"{name:<44}{show(off):>20}{show(first):>20}{show(second):>20}"
              f"{row['speedup']:>9.1f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.processor(), "repeats": args.repeats, "rows": rows},
                      f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

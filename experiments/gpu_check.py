"""The accelerator check in one command (`make gpu-check`): the tests that exercise the engines,
then the benchmarks (gas N = 1e6, 1e7, 1e8; the sharded gas across every available device;
the exact many-body engine at N = 24 and at the largest N that fits), written as JSON and as a
Markdown table. On a machine without an accelerator it runs the same steps at small sizes, so
the check itself is tested wherever the suite runs.

    make gpu-check                       # -> results/gpu-check/gpu_check.{json,md}
    python experiments/gpu_check.py --out /tmp/check --budget 240

Every benchmark entry is encounters per second, the best of `--repeats` timed runs after a
compile, with its ratio against the baseline measured in the same run (the research
prototype's NumPy algorithm for the gas, a NumPy state-vector loop for the many-body engine).
Entries that would start after `--budget` seconds are recorded as skipped, not run.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from benchmark_manybody import jax_rate, numpy_rate  # noqa: E402

from oile_jax.bench import default_steps, gas_rate, prototype_rate  # noqa: E402

# The tests that run the gas engines, the encounter and the many-body engine on the device
# (160 s serially on the project's 2-core CPU); without an accelerator, a quick part of them,
# to check the check.
TESTS = ["test_encounter.py", "test_gas.py", "test_sharded_gas.py", "test_manybody.py"]
CPU_TESTS = ["test_encounter.py", "test_manybody.py"]
# Where `make gpu-check-deps` puts pytest for a machine that has JAX but no pytest.
DEPS = ROOT / ".gpu-check-deps"
MAX_QUBITS = 30  # simulate_manybody's limit
STATE_COPIES = 6  # state vectors alive at once in one many-body step (psi, gathered, phases...)


def sizes(accelerated: bool) -> dict:
    if accelerated:
        return dict(gas=[10**6, 10**7, 10**8], sharded=10_240_000, manybody=[24, "largest"])
    return dict(gas=[10**4, 10**5], sharded=102_400, manybody=[12, 16])


def run_tests(names, budget: float) -> dict:
    """The engine tests in a subprocess (pytest, serial: one process owns the device)."""
    # The optimized code, as users run it (the suite's default is XLA's quick code generation).
    path = os.pathsep.join([str(ROOT), str(DEPS)])
    env = dict(os.environ, PYTHONPATH=path, OILE_TEST_OPTIMIZED="1")
    probe = subprocess.run([sys.executable, "-c", "import pytest"], env=env, capture_output=True)
    if probe.returncode:
        return {"status": "skipped: pytest is not installed (make gpu-check-deps carries it)"}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    args += ["-m", "not slow"] + [str(ROOT / "tests" / name) for name in names]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, cwd=ROOT, timeout=budget
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {budget:.0f} s", "seconds": budget}
    seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors)", summary)}
    status = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    result = {"status": status, "seconds": seconds, "summary": summary, **counts}
    if done.returncode:
        result["tail"] = (done.stdout + done.stderr)[-4000:]
    return result


def largest_manybody(device) -> int:
    """The largest N whose `STATE_COPIES` complex64 state vectors fit in the device memory."""
    stats = device.memory_stats() or {}
    limit = stats.get("bytes_limit")
    if limit is None:
        return 20
    return int(min(MAX_QUBITS, np.floor(np.log2(limit / (8 * STATE_COPIES)))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/gpu-check"))
    parser.add_argument("--budget", type=float, default=280.0, help="seconds (default 280)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per entry (best)")
    parser.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.repeats < 1:
        parser.error("--budget must be positive and --repeats at least 1")
    start = time.perf_counter()
    left = lambda: args.budget - (time.perf_counter() - start)
    devices = jax.devices()
    device = devices[0]
    accelerated = device.platform != "cpu"
    size = sizes(accelerated)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "cpus": os.cpu_count(),
        "device": f"{len(devices)} x {device.platform}:{device.device_kind}",
        "jax": jax.__version__,
        "repeats": args.repeats,
        "rows": [],
    }
    print(f"# {result['date']} | {result['device']} | jax {result['jax']}", flush=True)
    # The tests get at most half of the budget; the benchmarks the rest.
    result["test_files"] = TESTS if accelerated else CPU_TESTS
    if args.skip_tests:
        result["tests"] = {"status": "skipped (--skip-tests)"}
    else:
        result["tests"] = run_tests(result["test_files"], 0.5 * args.budget)
    print(f"tests: {result['tests']['status']} {result['tests'].get('summary', '')}", flush=True)

    key = jax.random.key(0)
    gas_base = prototype_rate(1000, 5000, np.random.default_rng(0), repeats=args.repeats)
    result["gas_baseline"] = gas_base

    def row(name, n, baseline, measure, *values, **options):
        entry = {"benchmark": name, "n": n}
        if left() <= 0:
            entry["status"] = "skipped (budget)"
        else:
            try:
                entry["rate"] = measure(*values, **options)
                entry["status"] = "ok"
                if baseline:
                    entry["baseline"] = baseline
                    entry["ratio"] = entry["rate"] / baseline
            except Exception as error:  # noqa: BLE001 - recorded, the check goes on
                entry["status"] = f"failed: {type(error).__name__}: {str(error)[:300]}"
        result["rows"].append(entry)
        print(json.dumps(entry), flush=True)
        return entry

    rate = lambda *a, **k: gas_rate(*a, key, repeats=args.repeats, **k)[0]
    for n in size["gas"]:
        row("gas", n, gas_base, rate, n, default_steps(n))
    n, shards = size["sharded"], 8 * len(devices)
    where = f"gas, {shards} shards on {len(devices)} device(s)"
    row(where, n, gas_base, rate, n, 50, shards=shards, devices=devices)
    rng = np.random.default_rng(0)
    for n in size["manybody"]:
        if n == "largest":
            for n in range(largest_manybody(device), 24, -1):
                done = row("many-body", n, None, jax_rate, n, 4, 1, key)
                if done["status"] == "ok" or done["status"].startswith("skipped"):
                    break
            continue
        base = numpy_rate(n, max(5, int(2e7 / 2**n)), rng) if left() > 0 else None
        rounds = max(4, int(2e8 / 2**n / (n // 2)))
        row("many-body", n, base, jax_rate, n, rounds, 1, key)
    result["seconds"] = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    (args.out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    tests_ok = result["tests"]["status"] == "passed" or result["tests"]["status"].startswith(
        "skipped"
    )
    bench_ok = all(not r["status"].startswith("failed") for r in result["rows"])
    return 0 if tests_ok and bench_ok else 1


def markdown(result: dict) -> str:
    tests = result["tests"]
    lines = [
        f"{result['date']}, {result['device']}, host {result['machine']} ({result['cpus']} "
        f"cores), jax {result['jax']}; each rate the best of {result['repeats']} timed runs "
        f"after a compile; check took {result['seconds']:.0f} s.",
        "",
        f"Tests ({', '.join(result['test_files'])}): {tests['status']}"
        + (f", {tests['summary']}" if tests.get("summary") else ""),
        "",
        "| benchmark | N | encounters/s | baseline encounters/s | ratio | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        rate = f"{r['rate']:.3e}" if "rate" in r else ""
        base = f"{r['baseline']:.3e}" if "baseline" in r else ""
        ratio = f"{r['ratio']:.0f}" if "ratio" in r else ""
        lines.append(f"| {r['benchmark']} | {r['n']} | {rate} | {base} | {ratio} | {r['status']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

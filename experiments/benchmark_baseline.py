"""This working tree against a baseline checkout, measured in the same run, alternating between
the two: the throughput of the dense and the sharded gas, of the foreground model and of the
mean field, and the first call of each (compile included) in a fresh process.

Each entry is the median of `--rounds` measurements; a throughput measurement is the best of
`--repeats` timed runs after a compile, each in a fresh process.

    git worktree add /tmp/baseline <commit>
    python experiments/benchmark_baseline.py --baseline /tmp/baseline --json baseline.json
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

# The same public calls in both trees (the run options as objects where the tree has them,
# `OBJECTS`, else as keywords). Each prints {"first": s, "rate": per s}.
PRELUDE = """
import json, time, jax, jax.numpy as jnp, numpy as np
import oile_jax as oj
OBJECTS = hasattr(oj, "Sampling")
def options(gamma, key, n_steps, save_every=None, n_realizations=1, **physics):
    if not OBJECTS:
        return dict(gamma=gamma, key=key, n_steps=n_steps, save_every=save_every or 1,
                    n_realizations=n_realizations, **physics)
    return dict(system=oj.System(gamma=gamma, **physics),
                sampling=oj.Sampling(key, n_steps=n_steps, n_realizations=n_realizations),
                saveat=oj.SaveAt(every=save_every or 1))
def group_field(fractions, omegas, mu, gamma, B, collision, dt=None, antineutrino=None,
                **physics):
    if not OBJECTS:
        return oj.GroupField(fractions, omegas, mu, gamma, B, collision, dt=dt,
                             antineutrino=antineutrino, **physics)
    system = oj.System(gamma=gamma, mu=mu, B=B, **physics)
    return oj.GroupField(fractions, omegas, system, collision, dt=dt, antineutrino=antineutrino)
def timed(run, repeats):
    start = time.perf_counter(); jax.block_until_ready(run()); first = time.perf_counter() - start
    best = min(_time(run) for _ in range(repeats))
    return first, best
def _time(run):
    start = time.perf_counter(); jax.block_until_ready(run()); return time.perf_counter() - start
"""
CASES = {
    # Encounters per second: the bench module's own measurement (fixed velocities, p = 1).
    "dense gas": """
from oile_jax.bench import gas_rate
start = time.perf_counter()
rate, _ = gas_rate(200_000, 100, jax.random.key(0), repeats=REPEATS)
print(json.dumps({"rate": rate, "first": None}))
""",
    "sharded gas": """
from oile_jax.bench import gas_rate
rate, _ = gas_rate(204_800, 50, jax.random.key(0), shards=8, repeats=REPEATS)
print(json.dumps({"rate": rate, "first": None}))
""",
    # Foreground steps per second: 4096 foreground neutrinos, 16 realizations, 400 steps,
    # matter and vacuum on (float32).
    "foreground": """
P0 = jnp.tile(jnp.asarray([0.0, 0.0, 1.0]), (4096, 1))
run = lambda: oj.simulate_foreground(
    P0, jnp.asarray([0.6, 0.0, 0.6]), schedule=oj.Stochastic(dt=0.05), omega=0.3,
    **options(0.1, jax.random.key(1), 400, 400, 16, matter=0.2, B=oj.mixing_vector(0.3))).mean
first, best = timed(run, REPEATS)
print(json.dumps({"rate": 4096 * 16 * 400 / best, "first": first}))
""",
    # Mean-field right-hand sides per second: the two-group field with its collision term,
    # matter and antineutrinos, 2e5 evaluations (jitted scan), float32.
    "mean field": """
field = group_field(jnp.asarray([0.6, 0.4]), jnp.asarray([0.1, 0.2]), jnp.asarray(1.0),
    jnp.asarray(0.01), jnp.asarray([0.0, 0.0, -1.0]), "stochastic", dt=jnp.asarray(0.01),
    antineutrino=(False, True), ordering="inverted", matter=0.3,
    L=jnp.asarray([0.6, 0.0, 0.8]))
P0 = jnp.asarray([[0.1, 0.0, 0.99], [0.0, 0.1, -0.99]])
@jax.jit
def evaluations(field, P):
    step = lambda P, t: (P + 1e-3 * field(t, P), None)
    return jax.lax.scan(step, P, jnp.arange(200_000, dtype=P.dtype) * 1e-3)[0]
first, best = timed(lambda: evaluations(field, P0), REPEATS)
print(json.dumps({"rate": 200_000 / best, "first": first}))
""",
    # First calls only: a small gas run and a mean-field solve (compile included).
    "first gas run": """
gas = oj.Gas([500, 500], jnp.asarray([0.1, 0.2]), jnp.asarray([[0.0, 0, 1], [0, 0, -1.0]]))
run = lambda: oj.simulate_gas(gas, schedule=oj.Stochastic(dt=0.01),
    **options(0.01, jax.random.key(2), 20, matter=0.1, B=oj.mixing_vector(0.2))).lepton
first, best = timed(run, 1)
print(json.dumps({"rate": None, "first": first}))
""",
    "first mean-field solve": """
field = group_field(jnp.asarray([0.6, 0.4]), jnp.asarray([0.1, 0.2]), jnp.asarray(1.0),
    jnp.asarray(0.01), jnp.asarray([0.0, 0.0, -1.0]), "stochastic")
P0 = jnp.asarray([[0.1, 0.0, 0.99], [0.0, 0.1, -0.99]])
run = lambda: oj.solve_meanfield(field, P0, jnp.linspace(0.0, 50.0, 11)).P
first, best = timed(run, 1)
print(json.dumps({"rate": None, "first": first}))
""",
}


def measure(tree: Path, case: str, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OILE_NO_COMPILE_CACHE": "1"}
    code = PRELUDE + CASES[case].replace("REPEATS", str(repeats))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tree
    )
    if done.returncode:
        raise SystemExit(f"{case} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout to compare")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per entry (median)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not (args.baseline / "oile_jax").is_dir():
        parser.error(f"--baseline {args.baseline} is not a checkout of oile_jax")
    trees = {"this tree": HERE, "baseline": args.baseline}
    runs = {(case, name): [] for case in args.cases for name in trees}
    for _ in range(args.rounds):
        for case in args.cases:
            for name, tree in trees.items():  # alternating: drifts of the machine hit both
                runs[case, name].append(measure(tree, case, args.repeats))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result = {"machine": machine, "rows": []}
    print(f"# {machine}; medians of {args.rounds} rounds")
    print(f"{'case':>24}{'quantity':>12}{'this tree':>14}{'baseline':>14}{'ratio':>8}")
    for case in args.cases:
        for quantity in ("rate", "first"):
            values = {name: [r[quantity] for r in runs[case, name]] for name in trees}
            if any(v is None for v in values["this tree"]):
                continue
            new, old = (statistics.median(values[name]) for name in trees)
            print(f"{case:>24}{quantity:>12}{new:>14.4g}{old:>14.4g}{new / old:>8.3f}")
            result["rows"].append(
                {
                    "case": case,
                    "quantity": quantity,
                    "this tree": values["this tree"],
                    "baseline": values["baseline"],
                    "ratio": new / old,
                }  # fmt: skip
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

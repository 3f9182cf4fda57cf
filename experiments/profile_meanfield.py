"""Where a mean-field solve's time goes on a CPU: microseconds per accepted step of the same
`GroupField` (NuGas's spectral split of `benchmark_meanfield.py`, its first 20 time units, rtol
= atol = 1e-8, float64), solved by diffrax's `diffeqsolve` with

- `layout`: the states as `(G, 3)` (each Bloch vector contiguous; the field called on them, as
  before) or component-major `(3, G)` (`AbstractMeanField.major`, each component contiguous);
- `solver`: diffrax's `Tsit5` (stages in a buffer, combined in a loop) or its tableau with the
  stages fused (`FusedTsit5`), and `FusedDopri8` (the default, eighth order).

Each entry is the median over `--rounds` rounds of one timed solve after a first (compiling)
one; the steps taken are printed beside it.

    python experiments/profile_meanfield.py --sizes 1001 10001
"""

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import oile_jax as oj  # noqa: E402
from oile_jax._meanfield.solver import FusedDopri8, FusedTsit5  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_meanfield  # noqa: E402
import common  # noqa: E402

SOLVERS = {"Tsit5": diffrax.Tsit5, "FusedTsit5": FusedTsit5, "FusedDopri8": FusedDopri8}


def solve(field, P0, *, ts, solver, layout):
    """The split through `diffeqsolve` in `layout`, saving at `ts` (steps landing on them)."""
    major = layout == "(3, G)"
    term = diffrax.ODETerm(field.major if major else (lambda t, P, args: field(t, P)))
    solution = diffrax.diffeqsolve(
        term,
        solver,
        ts[0],
        ts[-1],
        None,
        P0.T if major else P0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8, step_ts=ts),
        max_steps=1_000_000,
    )
    return solution.ys, solution.stats["num_steps"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1001, 10_001])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    args.repeats = 1
    common.benchmark_record(args)
    print(f"{'G':>6} {'layout':>7} {'solver':>12} {'us/step':>9} {'steps':>6}")
    for G in args.sizes:
        problem = benchmark_meanfield.split_problem(G)
        value, scale = problem["mu"]
        system = oj.System(gamma=0.0, mu=oj.Exponential(value, scale), B=jnp.asarray(problem["B"]))
        field = oj.GroupField(
            jnp.asarray(problem["weights"]), jnp.asarray(problem["omegas"]), system
        )
        P0, ts = jnp.asarray(problem["P0"]), jnp.linspace(0.0, 20.0, 3)
        for layout in ("(G, 3)", "(3, G)"):
            for name, solver in SOLVERS.items():
                run = jax.jit(
                    functools.partial(solve, field, ts=ts, solver=solver(), layout=layout)
                )
                steps = int(jax.block_until_ready(run(P0))[1])
                times = []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    jax.block_until_ready(run(P0))
                    times.append(time.perf_counter() - start)
                per_step = statistics.median(times) / steps * 1e6
                print(f"{G:>6} {layout:>7} {name:>12} {per_step:>9.1f} {steps:>6}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`GroupField` evaluations per second with its sums over the groups linear in their number
(`group_sums`) against the dense `G x G` weights it formed before (`group_weights`, the
baseline, measured in the same run): G groups of isotropic angles, frequencies spread over
[-1, 1], with the stochastic collision term, float64. Each entry is the median over `--rounds`
rounds (the variants alternating) of the best of `--repeats` timed runs of `--steps`
evaluations in one jitted loop, after a first run (compilation).

    python experiments/benchmark_group_field.py                   # G = 201, 1001, 4001
    python experiments/benchmark_group_field.py --sizes 201 --json group_field.json
"""

import statistics
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import oile_jax as oj  # noqa: E402
from oile_jax._sampling.angles import AbstractFreshAngleModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


class DenseIsotropic(AbstractFreshAngleModel):
    """Isotropic angles whose sums over the groups multiply by the dense `G x G` weights: the
    algorithm `GroupField` used before `group_sums` (the baseline)."""

    def from_uniform(self, u):
        return oj.Isotropic().from_uniform(u)

    def mean_x(self):
        return oj.Isotropic().mean_x()

    def mean_x2(self):
        return oj.Isotropic().mean_x2()

    def group_sums(self, fractions, values, power):
        W = self.group_weights(fractions)[power - 1]
        return values @ (W.astype(values.dtype) * fractions).T


def field(G: int, angles):
    fractions = jnp.full((G,), 1.0 / G)
    omegas = jnp.linspace(-1.0, 1.0, G)
    system = oj.System(gamma=0.01, mu=1.0, B=oj.mixing_vector(0.1), angles=angles)
    return oj.GroupField(fractions, omegas, system, "stochastic")


def timed(f, P, steps: int, repeats: int) -> float:
    run = jax.jit(lambda f, P: jax.lax.fori_loop(0, steps, lambda i, P: P + 1e-4 * f(0.0, P), P))
    run(f, P).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(f, P).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return steps / best


def main(argv=None) -> int:
    args = common.rounds_arguments(__doc__, argv, sizes=(201, 1001, 4001), steps=100)
    result = common.benchmark_record(args)
    print(f"{'G':>6} {'linear (eval/s)':>16} {'dense (eval/s)':>15} {'ratio':>7}")
    for G in args.sizes:
        rng = np.random.default_rng(0)
        P = jnp.asarray(np.tile([0.0, 0.0, 1.0], (G, 1)) + 0.01 * rng.normal(size=(G, 3)))
        linear, dense = field(G, oj.Isotropic()), field(G, DenseIsotropic())
        # The same right-hand side, by both algorithms.
        difference = float(jnp.max(jnp.abs(linear(0.0, P) - dense(0.0, P))))
        rates = {"linear": [], "dense": []}
        for _ in range(args.rounds):
            rates["linear"].append(timed(linear, P, args.steps, args.repeats))
            rates["dense"].append(timed(dense, P, args.steps, args.repeats))
        row = {name: statistics.median(values) for name, values in rates.items()}
        row.update(G=G, ratio=row["linear"] / row["dense"], difference=difference, rounds=rates)
        result["rows"].append(row)
        print(f"{G:>6} {row['linear']:>16.3e} {row['dense']:>15.3e} {row['ratio']:>7.1f}")
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

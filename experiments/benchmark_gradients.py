"""Cost of a gradient through the gas (`evolve_gas`) against the forward run, same N and steps.

Two groups (N/2 each, omega = +1 and -0.7, a 1e-3 seed), Deterministic rounds with the vacuum
split, gamma = 0.1, float32, one realization. The loss is the final group means weighted by
fixed numbers. Variants, alternated in rounds: the forward run (`jit` of the loss);
`jax.value_and_grad` with respect to the initial states P0 with the checkpointed scans
(`remat=True`, the default) and without; and with respect to every parameter (P0, omegas,
gamma, mu), checkpointed. Each entry: the best of `--repeats` calls over all rounds; the
ratio is that best time over the forward run's best; "median" and "max": of the ratios of
each round's best to the forward run's best in the same round (the spread on a shared
machine). Memory: the
temporary bytes of each compiled program (XLA's buffer assignment, `memory_analysis()`), in gas
states of `N x 3` floats.

    python experiments/benchmark_gradients.py                       # N = 1e4, 1e5; 256 steps
    python experiments/benchmark_gradients.py --sizes 100000 --steps 1024 --json grad.json
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import oile_jax as oj

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

WEIGHTS = np.asarray([[0.3, -0.5, 1.0], [0.2, 0.7, -1.0]], np.float32)


def problem(n: int, n_steps: int):
    P0 = jnp.asarray([[1e-3, 0.0, 1.0], [0.0, 1e-3, 1.0]], jnp.float32)
    P0 = P0 / jnp.linalg.norm(P0, axis=-1, keepdims=True)
    params = (P0, jnp.asarray([1.0, -0.7], jnp.float32), jnp.asarray(0.1, jnp.float32))
    params = params + (jnp.asarray(1.0, jnp.float32),)

    def loss(P0, omegas, gamma, mu, remat=True):
        run = oj.evolve_gas(
            oj.Gas((n // 2, n // 2), omegas, P0),
            system=oj.System(gamma=gamma, mu=mu),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=jax.random.key(0), n_steps=n_steps, dtype=jnp.float32),
            remat=remat,
        )
        return jnp.sum(run.group_mean[0, -1] * WEIGHTS)

    every = (0, 1, 2, 3)
    variants = {
        "forward": jax.jit(loss),
        "grad P0 (remat)": jax.jit(jax.value_and_grad(loss)),
        "grad P0 (no remat)": jax.jit(jax.value_and_grad(lambda *p: loss(*p, remat=False))),
        "grad all (remat)": jax.jit(jax.value_and_grad(loss, every)),
    }
    return variants, params


def main(argv=None) -> int:
    args = common.rounds_arguments(__doc__, argv, sizes=(10_000, 100_000), steps=256)
    result = common.benchmark_record(args)
    result["steps"] = args.steps
    print(
        f"{'N':>8} {'variant':<22}{'s':>9}{'enc/s':>11}{'x forward':>11}{'median':>8}"
        f"{'max':>8}{'temp MiB':>10}{'states':>8}"
    )
    for n in args.sizes:
        variants, params = problem(n, args.steps)
        state_bytes = n * 3 * 4
        memory = {}
        for name, f in variants.items():
            compiled = f.lower(*params).compile()
            memory[name] = compiled.memory_analysis().temp_size_in_bytes
            jax.block_until_ready(f(*params))  # compile and run once
        per_round = {name: [] for name in variants}  # the best of each round
        for _ in range(args.rounds):
            for name, f in variants.items():
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    jax.block_until_ready(f(*params))
                    times.append(time.perf_counter() - start)
                per_round[name].append(min(times))
        best = {name: min(t) for name, t in per_round.items()}
        forward = np.asarray(per_round["forward"])
        for name in variants:
            rate = n / 2 * args.steps / best[name]
            round_ratios = np.asarray(per_round[name]) / forward
            row = {
                "n": n,
                "variant": name,
                "best_s": best[name],
                "encounters_per_s": rate,
                "ratio_to_forward": best[name] / best["forward"],
                "round_ratio_median": float(np.median(round_ratios)),
                "round_ratio_max": float(round_ratios.max()),
                "temp_bytes": memory[name],
                "temp_states": memory[name] / state_bytes,
            }
            result["rows"].append(row)
            print(
                f"{n:>8} {name:<22}{best[name]:>9.3f}{rate:>11.3e}{row['ratio_to_forward']:>11.2f}"
                f"{row['round_ratio_median']:>8.2f}{row['round_ratio_max']:>8.2f}"
                f"{memory[name] / 2**20:>10.1f}{memory[name] / state_bytes:>8.0f}"
            )
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

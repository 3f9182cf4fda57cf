"""The cost of collisions with the medium (physics.md section 14), measured in the same run as
the same model without them, variants alternated in rounds:

- the OILE gas: `oile_jax.bench.gas_rate` (two groups, stochastic schedule at `p = 1`, fixed
  velocities, float32) without opacities, with `Reemission` (each step two exact per-group
  affine maps instead of the carried vacuum's one turn) and with its scattering too (paired
  neutrinos of a group exchanging velocities: a draw and a select of the indices per pair);
  encounters per second, the median over rounds of the best of `--repeats` runs;
- the mean field: an axisymmetric gas of `--modes` modes (8 energies x rings, neutrinos and
  antineutrinos, float64), one evaluation of its vector field (`major`, jitted) and one step of
  `solve_meanfield` (a solve over a fixed interval divided by its steps), without opacities,
  with `Opacities` (emission, absorption and isotropic scattering: states `(K, 4)`) and with
  `Reemission`; microseconds, the median over rounds of the best of `--repeats` (100
  evaluations in one program; a solve to t = 20 at mu = 10 divided by its steps).

    python experiments/benchmark_collisions.py
    python experiments/benchmark_collisions.py --sizes 1000000 --modes 1024 16384 --json c.json
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import oile_jax as oj
from oile_jax.bench import default_steps, gas_rate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

jax.config.update("jax_enable_x64", True)

EVALUATIONS = 100

GAS_VARIANTS = {
    "gas, no opacities": None,
    "gas, Reemission": oj.Reemission([[0.5, 0.1], [0.3, 0.05]], [[0.8, 0.2], [0.4, 0.6]]),
    "gas, Reemission + scattering": oj.Reemission(
        [[0.5, 0.1], [0.3, 0.05]], [[0.8, 0.2], [0.4, 0.6]], scattering=0.2
    ),
}


def meanfield_variants(K: int, rings: int) -> dict:
    """The opacities of the mean-field variants for `K` classes (`rings` per energy)."""
    rate = np.tile([[0.5, 0.1]], (K, 1))
    feq = np.tile([[0.8, 0.2]], (K, 1))
    return {
        "mean field, no opacities": None,
        "mean field, Opacities + scattering": oj.Opacities(rate, feq, scattering=0.2),
        "mean field, Reemission": oj.Reemission(rate, feq),
    }


def meanfield_setup(modes: int, opacities):
    """`(field, state, ts)`: `modes` classes, half neutrinos and half antineutrinos, 8
    energies times Gauss-Legendre rings, an ELN crossing, in the flavour basis."""
    energies, rings = 8, modes // 16
    u, w = oj.angle_grid(rings)
    spectrum = np.linspace(0.1, 1.0, energies), np.full(energies, 1.0 / energies)
    omegas, weights, uu = oj.mode_grid(*spectrum, u, w)
    omegas = np.concatenate([omegas, omegas])
    fractions = np.concatenate([0.55 * weights, 0.45 * weights * (1 + 0.5 * uu)])
    fractions /= fractions.sum()
    anti = np.repeat([False, True], omegas.size // 2)
    system = oj.System(
        gamma=0.1, mu=10.0, B=oj.mixing_vector(0.1), angles=oj.Axisymmetric(np.tile(uu, 2)),
        opacities=opacities,
    )  # fmt: skip
    field = oj.GroupField(jnp.asarray(fractions), jnp.asarray(omegas), system, antineutrino=anti)
    P = np.tile([0.0, 0.0, 1.0], (omegas.size, 1))
    state = P if field.components == 3 else np.c_[np.ones(omegas.size), P]
    return field, jnp.asarray(state), jnp.linspace(0.0, 20.0, 3)


def time_best(f, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f())
        best = min(best, time.perf_counter() - start)
    return best


def meanfield_costs(modes: int, opacities, repeats: int) -> tuple[float, float, int]:
    """`(us per evaluation, us per solver step, steps)`."""
    field, state, ts = meanfield_setup(modes, opacities)
    Q = state.T
    # 100 evaluations in one program (a step of Euler each), so that no dispatch is timed.
    evaluate = jax.jit(
        lambda f, Q: jax.lax.fori_loop(0, EVALUATIONS, lambda i, Q: Q + 1e-9 * f.major(0.0, Q), Q)
    )
    evaluate(field, Q).block_until_ready()
    per_eval = time_best(lambda: evaluate(field, Q), repeats) / EVALUATIONS * 1e6
    solve = jax.jit(lambda f, s: oj.solve_meanfield(f, s, ts, rtol=1e-8, atol=1e-10))
    sol = solve(field, state)
    steps = int(sol.stats["num_steps"])
    per_step = time_best(lambda: solve(field, state).P, repeats) / steps * 1e6
    return per_eval, per_step, steps


def main(argv=None) -> int:
    modes = lambda p: p.add_argument(
        "--modes", type=int, nargs="+", default=[1024, 16384], help="mean-field modes"
    )
    args = common.rounds_arguments(__doc__, argv, extra=modes)
    result = common.benchmark_record(args)
    print(f"{'size':>8}  {'variant':<36}{'rate or us':>14}{'x without':>11}")
    for n in args.sizes:
        steps = default_steps(n)
        rates = {name: [] for name in GAS_VARIANTS}
        for _ in range(args.rounds):
            for name, ops in GAS_VARIANTS.items():
                rate, _ = gas_rate(n, steps, jax.random.key(0), repeats=args.repeats,
                                   opacities=ops)  # fmt: skip
                rates[name].append(rate)
        base = float(np.median(rates["gas, no opacities"]))
        for name in GAS_VARIANTS:
            rate = float(np.median(rates[name]))
            result["rows"].append({"n": n, "steps": steps, "variant": name, "rate": rate,
                                   "ratio": base / rate, "rounds": rates[name]})  # fmt: skip
            print(f"{n:>8}  {name:<36}{rate:>14.3e}{base / rate:>11.2f}  (encounters/s)")
    for K in args.modes:
        variants = meanfield_variants(2 * (K // 2), K // 16)
        costs = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, ops in variants.items():
                costs[name].append(meanfield_costs(K, ops, args.repeats))
        base = np.median([c[0] for c in costs["mean field, no opacities"]])
        base_step = np.median([c[1] for c in costs["mean field, no opacities"]])
        for name in variants:
            per_eval = float(np.median([c[0] for c in costs[name]]))
            per_step = float(np.median([c[1] for c in costs[name]]))
            steps = costs[name][0][2]
            result["rows"].append({"modes": K, "variant": name, "us_per_evaluation": per_eval,
                                   "us_per_step": per_step, "steps": steps,
                                   "evaluation_ratio": per_eval / base,
                                   "step_ratio": per_step / base_step})  # fmt: skip
            print(f"{K:>8}  {name:<36}{per_eval:>14.1f}{per_eval / base:>11.2f}  (us/evaluation)")
            print(f"{K:>8}  {'':<36}{per_step:>14.1f}{per_step / base_step:>11.2f}  (us/step, "
                  f"{steps} steps)")  # fmt: skip
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time of `linear_stability` on multi-angle fields: N fixed isotropic velocities (half `nu_e`,
half `nubar_e`, inverted ordering, omega = 1, mu = 10), about the flavour state, float64. Each
entry: the best of `--repeats` calls after a first one (compilation), with its largest growth
rate, by the dense method (up to `MAX_DENSE` components) and the matrix-free one (`modes=2`);
and a growth-rate map of two groups over a (mu, omega) grid in one vmapped call.

    python experiments/benchmark_stability.py                 # N = 100, 1000, 10000
    python experiments/benchmark_stability.py --sizes 100 1000 --json stability.json
"""

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import oile_jax as oj  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

Z = jnp.asarray([0.0, 0.0, 1.0])


def angles_field(n: int):
    v = np.random.default_rng(0).normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    anti = jnp.asarray(np.arange(n) >= n // 2)
    field = oj.MultiAngleField(
        jnp.ones(n),
        jnp.asarray(v),
        oj.System(gamma=jnp.asarray(0.0), mu=jnp.asarray(10.0), B=-Z, ordering="inverted"),
        antineutrino=anti,
    )
    return field, jnp.tile(Z, (n, 1))


def timed(call, repeats: int) -> tuple[float, float, object]:
    start = time.perf_counter()
    out = jax.block_until_ready(call())
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(call())
        best = min(best, time.perf_counter() - start)
    return first, best, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--modes", type=int, default=2, help="modes of the matrix-free method")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per entry")
    parser.add_argument("--grid", type=int, default=32, help="points per axis of the map")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.grid < 1:
        parser.error("--repeats and --grid must be at least 1")
    args.rounds = 1
    result = common.benchmark_record(args)
    print(f"{'N angles':>10} {'method':<14}{'first s':>10}{'best s':>10}{'growth rate':>14}")
    for n in args.sizes:
        field, state = angles_field(n)
        methods = {"matrix-free": dict(modes=args.modes)}
        if 3 * n <= oj.MAX_DENSE:
            methods = {"dense": {}, **methods}
        for method, options in methods.items():
            call = lambda f=field, s=state, o=options: oj.linear_stability(f, s, **o)
            first, best, out = timed(call, args.repeats)
            rate = float(out.growth_rate)
            row = {"n": n, "method": method, "first_s": first, "best_s": best}
            result["rows"].append({**row, "growth_rate": rate})
            print(f"{n:>10} {method:<14}{first:>10.2f}{best:>10.3f}{rate:>14.5f}")
    mus, omegas = jnp.linspace(1.0, 20.0, args.grid), jnp.linspace(0.1, 12.0, args.grid)
    flavour_state = jnp.stack([Z, Z])  # concrete: the tangent spaces are fixed before tracing

    def rate(mu, omega):
        field = oj.GroupField(
            jnp.asarray([0.5, 0.5]),
            jnp.stack([omega, omega]),
            oj.System(gamma=jnp.asarray(0.0), mu=mu, B=-Z, ordering="inverted"),
            antineutrino=jnp.asarray([False, True]),
        )
        return oj.linear_stability(field, flavour_state).growth_rate

    grid = jax.jit(jax.vmap(jax.vmap(rate, (None, 0)), (0, None)))
    first, best, out = timed(lambda: grid(mus, omegas), args.repeats)
    result["map"] = {"points": args.grid**2, "first_s": first, "best_s": best}
    print(f"growth-rate map of {args.grid**2} points (two groups): first {first:.2f} s, "
          f"best {best * 1e3:.1f} ms; largest rate {float(out.max()):.4f}")  # fmt: skip
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gas throughput in three flavours against two, measured in the same run:
`oile_jax.bench.gas_rate` (two groups, stochastic schedule at `p = 1`, fixed velocities,
float32) with `n_flavours = 2` and `3`, in vacuum and with antineutrinos in matter (the
nu-nubar map's extra term and the 8 x 8 matter turns), alternated in rounds so that a slow
moment of a shared machine falls on every variant alike. Each entry: the median over rounds of
the best of `--repeats` timed runs; the ratio is the two-flavour rate of the same physics over
the three-flavour one (the cost per encounter of the third flavour; target <= 3).

    python experiments/benchmark_flavours.py                       # N = 1e6 on this machine
    python experiments/benchmark_flavours.py --sizes 1000000 10000000 --json flavours.json
"""

import sys
from pathlib import Path

import jax
import numpy as np

from oile_jax.bench import default_steps, gas_rate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PHYSICS = {
    "neutrinos, vacuum": {},
    "nu + nubar, constant matter": {"antineutrino": True, "matter": 0.3},
}


def main(argv=None) -> int:
    args = common.rounds_arguments(__doc__, argv)
    result = common.benchmark_record(args)
    header = f"{'N':>10}  {'physics':<30}{'2 flavours /s':>15}{'3 flavours /s':>15}"
    print(header + f"{'cost ratio':>12}{'compile s (2, 3)':>18}")
    for n in args.sizes:
        steps = default_steps(n)
        variants = [(name, k) for name in PHYSICS for k in (2, 3)]
        rates = {v: [] for v in variants}
        compile_s = {}
        for _ in range(args.rounds):
            for name, k in variants:
                options = PHYSICS[name]
                rate, c = gas_rate(
                    n, steps, jax.random.key(0), repeats=args.repeats, n_flavours=k, **options
                )
                rates[(name, k)].append(rate)
                compile_s.setdefault((name, k), c)
        for name in PHYSICS:
            two, three = (float(np.median(rates[(name, k)])) for k in (2, 3))
            row = {"n": n, "steps": steps, "physics": name, "rate_2": two, "rate_3": three,
                   "cost_ratio": two / three, "rounds_2": rates[(name, 2)],
                   "rounds_3": rates[(name, 3)], "compile_s_2": compile_s[(name, 2)],
                   "compile_s_3": compile_s[(name, 3)]}  # fmt: skip
            result["rows"].append(row)
            print(
                f"{n:>10}  {name:<30}{two:>15.3e}{three:>15.3e}{two / three:>12.2f}"
                f"{compile_s[(name, 2)]:>9.1f}{compile_s[(name, 3)]:>9.1f}"
            )
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

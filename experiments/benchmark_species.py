"""Gas throughput with antineutrinos, matter and a changing density against a neutrino gas in
vacuum, measured in the same run: `oile_jax.bench.gas_rate` (two groups, stochastic schedule
at `p = 1`, fixed velocities, float32) in four variants, alternated in rounds so that a slow
moment of a shared machine falls on every variant alike. Each entry: the median over rounds of
the best of `--repeats` timed runs.

    python experiments/benchmark_species.py                       # N = 1e6 on this machine
    python experiments/benchmark_species.py --sizes 1000000 10000000 --json species.json
"""

import sys
from pathlib import Path

import jax
import numpy as np

import oile_jax as oj
from oile_jax.bench import default_steps, gas_rate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

VARIANTS = {
    "neutrinos, vacuum": {},
    "nu + nubar, vacuum": {"antineutrino": True},
    "nu + nubar, constant matter": {"antineutrino": True, "matter": 0.3},
    "nu + nubar, lambda(t), mu(t)": {
        "antineutrino": True,
        "matter": oj.Exponential(0.3, 50.0),
        "mu": oj.Exponential(1.0, 100.0),
    },
}


def main(argv=None) -> int:
    args = common.rounds_arguments(__doc__, argv)
    result = common.benchmark_record(args)
    print(f"{'N':>10}  {'variant':<32}{'encounters/s':>14}{'x vacuum nu':>13}{'compile s':>11}")
    for n in args.sizes:
        steps = default_steps(n)
        rates = {name: [] for name in VARIANTS}
        compile_s = {}
        for _ in range(args.rounds):
            for name, options in VARIANTS.items():
                rate, c = gas_rate(n, steps, jax.random.key(0), repeats=args.repeats, **options)
                rates[name].append(rate)
                compile_s.setdefault(name, c)
        base = float(np.median(rates["neutrinos, vacuum"]))
        for name in VARIANTS:
            rate = float(np.median(rates[name]))
            row = {"n": n, "steps": steps, "variant": name, "rate": rate, "ratio": rate / base,
                   "rounds": rates[name], "compile_s": compile_s[name]}  # fmt: skip
            result["rows"].append(row)
            print(f"{n:>10}  {name:<32}{rate:>14.3e}{rate / base:>13.2f}{compile_s[name]:>11.1f}")
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gas throughput with antineutrinos, matter and a changing density against a neutrino gas in
vacuum, measured in the same run: `oile_jax.bench.gas_rate` (two groups, stochastic schedule
at `p = 1`, fixed velocities, float32) in four variants, alternated in rounds so that a slow
moment of a shared machine falls on every variant alike. Each entry: the median over rounds of
the best of `--repeats` timed runs.

    python experiments/benchmark_species.py                       # N = 1e6 on this machine
    python experiments/benchmark_species.py --sizes 1000000 10000000 --json species.json
"""

import argparse
import json
import platform
import sys

import jax
import numpy as np

import oile_jax as oj
from oile_jax.bench import default_steps, gas_rate

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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all variants (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per entry (default 3)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    device = jax.devices()[0]
    result = {
        "machine": platform.processor() or platform.machine(),
        "device": f"{device.platform}:{device.device_kind}",
        "jax": jax.__version__,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "rows": [],
    }
    print(f"# {result['machine']} | {result['device']} | jax {result['jax']}")
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale-out throughput: one gas sharded along the neutrino axis (`simulate_gas(...,
shards=S)`) on 1 ... D devices, against the unsharded gas on one device measured in the same run;
achieved bandwidth against the measured copy bandwidth of a device.

Bandwidth model: an encounter reads and writes the two Bloch vectors (2 x 2 x 12 bytes in
float32 = 48 bytes, the minimum); `bandwidth = 48 B x encounters/s`, compared with the copy
bandwidth of one device times the devices used. Stochastic schedule with p = 1, vacuum on, fixed
velocities, float32, one realization.

    python experiments/benchmark_scaling.py                    # N = 102400, 1024000 here
    python experiments/benchmark_scaling.py --sizes 1024000 102400000 1024000000 --shards 8
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python experiments/benchmark_scaling.py
"""

import argparse
import json
import platform
import sys

import jax

from oile_jax.bench import copy_bandwidth, default_steps, gas_rate

BYTES_PER_ENCOUNTER = 48


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[102_400, 1_024_000])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--exchange-every", type=int, default=1)
    parser.add_argument(
        "--devices", type=int, nargs="+", help="device counts (default 1, 2, .. all)"
    )
    parser.add_argument("--steps", type=int, help="steps per run (default: about 2e8 / N)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per entry, the best kept (default 3)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    n_all = len(jax.devices())
    counts = args.devices or sorted({1, *[d for d in (2, 4, 8) if d <= n_all], n_all})
    device = jax.devices()[0]
    bandwidth = copy_bandwidth()
    result = {
        "machine": platform.processor() or platform.machine(),
        "device": f"{device.platform}:{device.device_kind}",
        "jax": jax.__version__,
        "copy_bandwidth": bandwidth,
        "repeats": args.repeats,
        "rows": [],
    }
    print(f"# {result['machine']} | {n_all} x {result['device']} | jax {result['jax']}")
    print(f"copy bandwidth of one device: {bandwidth / 1e9:.1f} GB/s")
    print(
        f"{'N':>12}{'layout':>16}{'devices':>8}{'encounters/s':>15}{'x unsharded':>12}"
        f"{'GB/s':>8}{'of copy':>9}"
    )
    for n in args.sizes:
        steps = args.steps or default_steps(n)
        steps -= steps % args.exchange_every  # whole exchange periods
        base, _ = gas_rate(n, steps, jax.random.key(0), repeats=args.repeats)
        runs = [("unsharded", None, 1, base)]
        for d in counts:
            rate, _ = gas_rate(
                n,
                steps,
                jax.random.key(0),
                shards=args.shards,
                exchange_every=args.exchange_every,
                devices=d,
                repeats=args.repeats,
            )
            runs.append((f"{args.shards} shards/K={args.exchange_every}", args.shards, d, rate))
        for layout, shards, d, rate in runs:
            achieved = BYTES_PER_ENCOUNTER * rate
            row = {
                "n": n,
                "steps": steps,
                "layout": layout,
                "shards": shards,
                "devices": d,
                "rate": rate,
                "ratio": rate / base,
                "bandwidth": achieved,
                "fraction": achieved / (bandwidth * d),
            }
            result["rows"].append(row)
            print(
                f"{n:>12}{layout:>16}{d:>8}{rate:>15.3e}{rate / base:>12.2f}"
                f"{achieved / 1e9:>8.2f}{row['fraction']:>9.1%}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

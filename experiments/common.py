"""What every experiment script shares: its command line and the no-overwrite rule."""

import argparse
import json
import platform
from pathlib import Path

import numpy as np

import oile_jax as oj


def parser(doc: str, sizes) -> argparse.ArgumentParser:
    """`--out`, `--size`, `--seed`, `--force`, described by the first paragraph of `doc`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument(
        "--out", type=Path, default=Path("results"), help="output folder (default: results)"
    )
    p.add_argument(
        "--size", choices=sorted(sizes), default="default", help="problem size (default: default)"
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use the persistent compilation cache (~/.cache/oile_jax/jax)",
    )
    return p


def outputs(p: argparse.ArgumentParser, args, *names: str) -> list[Path]:
    """The output paths in `args.out`; exits with an error if one exists and `--force` is
    absent. Turns on the persistent compilation cache unless `--no-compile-cache`."""
    if not args.no_compile_cache:
        oj.use_compilation_cache()
    paths = [args.out / name for name in names]
    if not args.force:
        for path in paths:
            if path.exists():
                p.error(f"{path} exists; pass --force to overwrite it")
    return paths


def group_means(P, counts):
    """Mean over each group's members (groups contiguous along axis -2): `(..., N, 3)` ->
    `(..., G, 3)`."""
    bounds = np.cumsum((0,) + tuple(counts))
    return np.stack(
        [P[..., bounds[g] : bounds[g + 1], :].mean(-2) for g in range(len(counts))], axis=-2
    )


def rounds_arguments(
    doc: str, argv=None, *, sizes=(1_000_000,), steps: int | None = None, extra=None
) -> argparse.Namespace:
    """The command line of the benchmarks that alternate their variants in rounds: `--sizes`,
    `--rounds`, `--repeats`, `--json`, and `--steps` where `steps` gives its default; `extra`
    adds a benchmark's own arguments to the parser."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if extra is not None:
        extra(p)
    p.add_argument("--sizes", type=int, nargs="+", default=list(sizes))
    if steps is not None:
        p.add_argument("--steps", type=int, default=steps, help=f"steps (default {steps})")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all variants (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per entry (default 3)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        p.error("--rounds and --repeats must be at least 1")
    if steps is not None and args.steps < 1:
        p.error("--steps must be at least 1")
    if min(args.sizes) < 2:
        p.error("every size must be at least 2")
    return args


def benchmark_record(args) -> dict:
    """The machine, device and JAX version a benchmark ran on, with its rounds and repeats (and
    an empty `rows`); printed as the table's first line."""
    import jax

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
    return result


def write_json(path, result: dict):
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2)

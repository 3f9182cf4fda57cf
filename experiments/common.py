"""What every experiment script shares: its command line and the no-overwrite rule."""

import argparse
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

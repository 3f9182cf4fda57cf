"""The `oile` command line: run files and presets, plots, equilibria, miscidynamic paths and the
throughput benchmark. `oile COMMAND --help` describes each command."""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from . import _config

EPILOG = """examples:
  oile presets                                  list the named presets
  oile run two-groups --set run.t_max=200       a preset, shortened
  oile run my.toml --seed 3 --out results/my.h5 a run file
  oile plot results/my.h5                       its standard figure
  oile equilibrium --fractions 0.6 0.4 --omegas 0.1 0.2 --lengths 1 -1 --Pz 0.2
  oile path --from results/two-groups.h5 --start 300
  oile bench --sizes 1000 100000
"""


class _Failure(Exception):
    """An error for the user: printed as `oile: error: ...`, exit status 2."""


def _select_device(name: str):
    import jax

    # This process's own devices: under jax.distributed, jax.devices() lists every host's.
    if name == "auto":
        return jax.local_devices()[0]
    try:
        return jax.local_devices(backend=name)[0]
    except RuntimeError:
        platforms = sorted({d.platform for d in jax.devices()})
        raise _Failure(
            f"--device {name}: JAX finds no {name.upper()} here (available: "
            f"{', '.join(platforms)}); use --device cpu or install JAX with {name} support"
        ) from None


def _devices(text: str | None):
    if text is None or text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise _Failure(f"--devices takes a positive number or 'all', got {text!r}")
    return int(text)


def _distributed(args):
    """`jax.distributed.initialize` for a run over several processes (hosts): with
    `--coordinator`, `--num-processes` and `--process-id`, or detected from the cluster
    (SLURM, Open MPI, ...) with `--distributed` alone. Must come before any JAX computation."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if not args.distributed and all(v is None for v in given):
        return
    if any(v is None for v in given) and any(v is not None for v in given):
        raise _Failure(
            "--coordinator, --num-processes and --process-id go together "
            "(or use --distributed alone on a cluster JAX detects)"
        )
    import jax

    try:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    except (RuntimeError, ValueError) as error:
        raise _Failure(f"--distributed: jax.distributed.initialize failed: {error}") from None


def _precision(name: str | None):
    if name == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)


def _command(args) -> str:
    """The command line as typed (stored in the output files)."""
    return "oile " + shlex.join(sys.argv[1:] if args.argv is None else args.argv)


def _check_output(path: Path, option: str, force: bool):
    """An output path must not be a directory, and exists only with --force."""
    if path.is_dir():
        raise _Failure(f"{option} {path} is a directory; give the path of a file")
    if path.exists() and not force:
        raise _Failure(f"{path} exists; pass --force to overwrite it")


def _write_figure(fig, path: Path, force: bool) -> Path:
    _check_output(path, "--out", force)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same rule as the HDF5 output: a complete file or none.
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=130, format=path.suffix.lstrip(".") or "png")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# oile run / presets / config


def _resolved(args) -> tuple[dict, str]:
    document, name = _config.load(args.config)
    document = _config.apply_overrides(document, args.set or [])
    if args.seed is not None:
        document["seed"] = args.seed
    if args.precision is not None:
        document["precision"] = args.precision
    return _config.resolve(document), name


def _summary(config: dict, data: dict) -> str:
    model = config["model"]
    if model == "foreground":
        return f"final <P> = {np.array2string(data['mean'][-1], precision=4)}"
    if model == "manybody":
        exact, oile = data["exact_group_mean"].mean(0), data["oile_group_mean"].mean(0)
        return (
            f"final group P_z: exact {np.array2string(exact[-1, :, 2], precision=4)}, "
            f"OILE {np.array2string(oile[-1, :, 2], precision=4)}"
        )
    mean = data["group_mean"] if model == "meanfield" else data["group_mean"].mean(0)
    lepton = np.asarray(data["lepton"], dtype=np.float64)
    drift = np.max(np.abs(lepton - lepton[..., :1])) / max(np.abs(lepton).max(), 1e-300)
    return (
        f"final group P_z = {np.array2string(mean[-1, :, 2], precision=4)}; "
        f"lepton number drift {drift:.1e} (relative)"
    )


def cmd_run(args) -> int:
    from ._io import read_h5
    from ._runner import run

    config, name = _resolved(args)  # --precision, when given, is in the config
    _distributed(args)
    _precision(config["precision"])
    # Not results/NAME.h5: the experiments write there (make run: results/foreground.h5).
    out = args.out or Path("results") / f"{name}.run.h5"
    device = _select_device(args.device)
    import jax

    start = time.perf_counter()
    command = _command(args)
    try:
        with jax.default_device(device):
            run(
                config,
                out,
                resume=args.resume,
                force=args.force,
                progress=args.progress,
                attrs={"command": command, "name": name},
                devices=_devices(args.devices),
            )
    except KeyboardInterrupt:
        from ._runner import checkpoint_path

        checkpoint = checkpoint_path(Path(out))
        if config["model"] == "gas" and checkpoint.exists():
            hint = f"continue with `{command} --resume` (from {checkpoint})"
        else:
            hint = "nothing was saved (no checkpoint yet); run the command again to start over"
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    if jax.process_index() != 0:
        print(f"process {jax.process_index()} of {jax.process_count()}: done (process 0 writes)")
        return 0
    data, _ = read_h5(out)
    print(f"{config['model']} run {name!r} on {device.platform}: {_summary(config, data)}")
    print(f"{time.perf_counter() - start:.1f} s; wrote {out} (figure: oile plot {out})")
    return 0


def cmd_presets(args) -> int:
    for name, path in sorted(_config.presets().items()):
        lines = [line[2:] for line in path.read_text().splitlines() if line.startswith("# ")]
        print(f"{name:<22} {' '.join(lines)}")
    return 0


def cmd_config(args) -> int:
    config, _ = _resolved(args)
    print(_config.dumps(config), end="")
    return 0


# ---------------------------------------------------------------------------------------------
# oile plot


def cmd_plot(args) -> int:
    from ._io import read_h5
    from ._plot import plot_run

    out = args.out or args.result.with_suffix(".png")
    _check_output(out, "--out", args.force)
    data, attrs = read_h5(args.result)
    path = _write_figure(plot_run(data, attrs), out, args.force)
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------------
# oile equilibrium / path


def _groups_args(args):
    names = ("fractions", "omegas", "lengths")
    missing = [f"--{n}" for n in names if getattr(args, n) is None]
    if missing or args.Pz is None:
        raise _Failure(
            f"give {', '.join(missing + (['--Pz'] if args.Pz is None else []))} "
            "(or --from RESULT.h5 for oile path)"
        )
    sizes = {len(getattr(args, n)) for n in names}
    if len(sizes) != 1:
        raise _Failure("--fractions, --omegas and --lengths need one value per group each")
    fractions = np.asarray(args.fractions)
    if np.any(fractions <= 0) or abs(fractions.sum() - 1) > 1e-9:
        raise _Failure(f"--fractions must be positive and sum to 1, got {args.fractions}")
    if not np.all(np.isfinite(args.lengths)) or np.any(np.abs(args.lengths) > 1):
        raise _Failure(f"--lengths are signed |P_g| <= 1, got {args.lengths}")
    if not np.all(np.isfinite(args.omegas)):
        raise _Failure(f"--omegas must be finite numbers, got {args.omegas}")
    if not abs(args.Pz) <= 1:
        raise _Failure(f"--Pz is Pbar_z, the lepton number per neutrino, in [-1, 1]; got {args.Pz}")
    if not args.mu > 0 or not np.isfinite(args.mu):
        raise _Failure(f"--mu is the coupling and must be > 0, got {args.mu:g}")
    return fractions, np.asarray(args.omegas), np.asarray(args.lengths), float(args.Pz)


def _equilibrium_table(eqs) -> list[str]:
    lines = [f"{'branch':>14}{'Omega':>14}{'Q':>12}{'|residual|':>12}  P_g (co-rotating frame)"]
    for k in range(eqs.Omega.shape[0]):
        P = np.asarray(eqs.P[k])
        lines.append(
            f"{str(np.asarray(eqs.branch[k]).tolist()):>14}{float(eqs.Omega[k]):>14.8f}"
            f"{float(eqs.Q[k]):>12.8f}{float(np.max(np.abs(eqs.residual[k]))):>12.1e}  "
            + "; ".join(np.array2string(p, precision=5) for p in P)
        )
    return lines


def cmd_equilibrium(args) -> int:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    from ._equilibrium import equilibrium_branches, precession_equilibrium
    from ._io import write_h5

    fractions, omegas, lengths, Pz = _groups_args(args)
    if args.out:
        _check_output(args.out, "--out", args.force)
    if args.guess is not None:
        eq = precession_equilibrium(
            lengths, fractions, omegas, Pz, mu=args.mu, guess=tuple(args.guess)
        )
        if not bool(eq.converged):
            raise _Failure(f"Newton did not converge from --guess {args.guess}")
        eqs = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], eq)
    else:
        eqs = equilibrium_branches(lengths, fractions, omegas, Pz, mu=args.mu)
    if eqs.Omega.shape[0] == 0:
        print("no precession equilibrium with Q > 0 for these lengths and Pz")
        return 1
    print("\n".join(_equilibrium_table(eqs)))
    if args.out:
        data = {k: np.asarray(getattr(eqs, k)) for k in ("Omega", "Q", "P", "residual", "branch")}
        inputs = {"fractions": fractions, "omegas": omegas, "lengths": lengths, "Pz": Pz}
        write_h5(
            args.out,
            {**data, "inputs": inputs},
            attrs={"kind": "equilibrium", "command": _command(args)},
            force=args.force,
        )
        print(f"wrote {args.out}")
    return 0


def _from_result(path: Path, start: float):
    """`(gas, gamma, mu)` of a gas run or of the two-group experiment: `gas` holds `ts` and the
    realization-averaged `group_mean`, `group_std`, `group_length`, `entropy`, with `fractions`
    and `omegas`."""
    from ._io import read_h5

    data, attrs = read_h5(path)
    config = json.loads(attrs.get("config", "{}"))
    if attrs.get("kind") == "run" and attrs.get("model") in ("gas", "meanfield"):
        fractions, omegas = data["groups"]["fractions"], data["groups"]["omegas"]
        gamma, mu = config["physics"]["gamma"], config["physics"]["mu"]
        if config["physics"]["basis"] != "mass":
            raise _Failure(f"{path}: miscidynamics reads the gas in the mass basis")
    elif config.get("experiment") == "two_groups":
        fractions, omegas = data["fractions"], data["omegas"]
        gamma, mu = config["gamma"], 1.0
    else:
        raise _Failure(f"{path} is not a gas run (oile run, model 'gas') or a two_groups result")
    ts = np.asarray(data["ts"], dtype=float)
    if not ts[0] <= start < ts[-1]:
        raise _Failure(f"--start {start:g} is outside the run's times [{ts[0]:g}, {ts[-1]:g})")
    if gamma is None:
        raise _Failure(f"{path}: the run has no gamma (a pure mean field has no miscidynamics)")
    names = ("group_mean", "group_std", "group_length", "entropy")
    several = np.ndim(data["group_mean"]) == 4  # realizations first: average them
    gas = {k: np.asarray(data[k], dtype=float) for k in names}
    gas = {k: v.mean(0) if several else v for k, v in gas.items()}
    gas.update(ts=ts, fractions=np.asarray(fractions), omegas=np.asarray(omegas))
    return gas, float(gamma), float(mu)


def cmd_path(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from ._equilibrium import miscidynamic_path, path_from_gas
    from ._io import write_h5
    from ._plot import plot_path, plot_two_groups

    out = args.out
    figure = out.with_suffix(".png")
    for path in (out, figure):
        _check_output(path, "--out", args.force)
    gas = None
    if args.n_saves < 2:
        raise _Failure(f"--n-saves must be at least 2 (the start and the end), got {args.n_saves}")
    if args.source is not None:
        # Everything else comes from the run: refuse what would be ignored.
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("fractions", "omegas", "lengths", "Pz", "gamma", "t_max", "guess")
            if getattr(args, name) is not None
        ] + (["--mu"] if args.mu != 1.0 else [])
        if given:
            raise _Failure(
                f"{', '.join(given)}: not used with --from, which takes the groups, gamma, mu "
                "and the times from the run (drop them, or drop --from to give the groups)"
            )
        gas, gamma, mu = _from_result(args.source, args.start)
        fractions, omegas = gas["fractions"], gas["omegas"]
        state, solution = path_from_gas(
            gas["ts"], gas["group_mean"], fractions, omegas, start=args.start, gamma=gamma, mu=mu
        )
        Pz = state.Pz
    else:
        fractions, omegas, lengths, Pz = _groups_args(args)
        if args.gamma is None or args.t_max is None:
            raise _Failure("give --gamma and --t-max (or --from RESULT.h5)")
        if not args.gamma > 0 or not np.isfinite(args.gamma):
            raise _Failure(f"--gamma is the impact parameter and must be > 0, got {args.gamma:g}")
        if not args.t_max > 0 or not np.isfinite(args.t_max):
            raise _Failure(f"--t-max is the path's length and must be > 0, got {args.t_max:g}")
        gamma, mu = args.gamma, args.mu
        solution = miscidynamic_path(
            jnp.asarray(lengths),
            jnp.asarray(fractions),
            jnp.asarray(omegas),
            Pz,
            jnp.linspace(0.0, args.t_max, args.n_saves),
            gamma=gamma,
            mu=mu,
            guess=None if args.guess is None else tuple(args.guess),
        )
    result = {k: np.asarray(getattr(solution, k)) for k in ("ts", "lengths", "Omega", "Q", "P")}
    inputs = {"fractions": fractions, "omegas": omegas, "Pz": float(Pz), "gamma": gamma, "mu": mu}
    saved = {"path": result, "inputs": inputs}
    if gas is not None:
        saved["gas"] = gas
    attrs = {
        "kind": "path",
        "command": _command(args),
        "source": str(args.source or ""),
        "start": float(result["ts"][0]),
    }
    write_h5(out, saved, attrs=attrs, force=args.force)
    fig = plot_two_groups({**gas, "path": result}) if gas is not None else plot_path(result)
    _write_figure(fig, figure, args.force)
    print(
        f"path from mu t = {result['ts'][0]:g} to {result['ts'][-1]:g}: lengths "
        f"{np.array2string(result['lengths'][0], precision=4)} -> "
        f"{np.array2string(result['lengths'][-1], precision=4)}, Q {result['Q'][0]:.4f} -> "
        f"{result['Q'][-1]:.4f}, Omega {result['Omega'][0]:.5f} -> {result['Omega'][-1]:.5f}"
    )
    print(f"wrote {out} and {figure}")
    return 0


# ---------------------------------------------------------------------------------------------
# oile bench


def cmd_bench(args) -> int:
    from .bench import benchmark

    # Every option checked before the baseline is measured (that takes seconds).
    if args.repeats < 1:
        raise _Failure(f"--repeats must be at least 1, got {args.repeats}")
    if not 0 < args.p <= 1:
        raise _Failure(f"--p is the meeting probability per step, in (0, 1], got {args.p:g}")
    bad = [n for n in args.sizes if n < 2 or n % 2]
    if bad:
        raise _Failure(f"--sizes are gas sizes N, even and >= 2, got {bad}")
    if args.steps is not None and args.steps < 1:
        raise _Failure(f"--steps must be at least 1, got {args.steps}")
    if args.baseline_encounters < 1:
        raise _Failure(f"--baseline-encounters must be at least 1, got {args.baseline_encounters}")
    if args.json is not None and args.json.exists() and not args.force:
        raise _Failure(f"--json {args.json} exists; pass --force to overwrite it")
    device = _select_device(args.device)
    import jax

    with jax.default_device(device):
        result = benchmark(
            args.sizes,
            p=args.p,
            baseline_encounters=args.baseline_encounters,
            steps=args.steps,
            repeats=args.repeats,
        )
    if args.json:
        if args.json.exists() and not args.force:
            raise _Failure(f"{args.json} exists; pass --force to overwrite it")
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------


def _add_groups(p, what):
    p.add_argument("--fractions", type=float, nargs="+", help="f_g: fraction of each group")
    p.add_argument("--omegas", type=float, nargs="+", help="omega_g: vacuum frequencies (mu)")
    p.add_argument("--lengths", type=float, nargs="+", help=f"p_g: signed group lengths {what}")
    p.add_argument("--Pz", type=float, help="conserved Pbar_z = lepton number per neutrino")
    p.add_argument("--mu", type=float, default=1.0, help="coupling (default 1)")
    p.add_argument(
        "--guess", type=float, nargs=2, metavar=("OMEGA", "Q"), help="Newton start (a branch)"
    )


def parser() -> argparse.ArgumentParser:
    from ._version import __version__

    top = argparse.ArgumentParser(
        prog="oile",
        description="oile_jax: once-in-a-lifetime-encounter models of dense neutrino gases.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"oile_jax {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run a simulation from a TOML run file or a preset",
        description="Run a simulation from a TOML run file or a named preset (oile presets) "
        "and write an HDF5 file with every saved observable, the resolved configuration and "
        "the package, JAX and device versions. Gas runs keep a checkpoint beside the output "
        "until they finish; --resume continues an interrupted run with identical results.",
    )
    p.add_argument("config", metavar="CONFIG", help="a TOML file or a preset name")
    p.add_argument("--out", type=Path, help="HDF5 output (default: results/NAME.run.h5)")
    p.add_argument("--seed", type=int, help="PRNG seed (overrides the file's seed)")
    p.add_argument("--precision", choices=("float32", "float64"), help="overrides the file's")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu", "tpu"),
        default="auto",
        help="device to run on (default: JAX's default, a GPU when there is one)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a key, e.g. --set run.t_max=100 (repeatable)",
    )
    p.add_argument(
        "--devices",
        help="gas runs: shard the realizations (or, with gas.shards, the neutrinos) across "
        "this many devices, or 'all' (a divisor of run.n_realizations or gas.shards; "
        "the same encounters, numbers equal to rounding)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="run over several processes/hosts: jax.distributed.initialize() detects the "
        "cluster (SLURM, Open MPI, ...); with --devices all the run spans every host",
    )
    p.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    p.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    p.add_argument("--process-id", type=int, metavar="I", help="this process, 0 ... N-1")
    p.add_argument("--resume", action="store_true", help="continue an interrupted gas run")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "presets",
        help="list the named presets",
        description="List the presets shipped with oile_jax.",
    )
    p.set_defaults(handler=cmd_presets)

    p = sub.add_parser(
        "config",
        help="print the resolved configuration of a run file or preset",
        description="Validate a run file or preset and print it with every default filled in "
        "(a starting point for your own run file: oile config two-groups > my.toml).",
    )
    p.add_argument("config", metavar="CONFIG", help="a TOML file or a preset name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=("float32", "float64"))
    p.set_defaults(handler=cmd_config)

    p = sub.add_parser(
        "plot",
        help="draw the standard figure of a result file",
        description="Draw the standard figure of an oile result (oile run, oile path, "
        "experiments/foreground.py, experiments/two_groups.py).",
    )
    p.add_argument("result", type=Path, metavar="RESULT.h5")
    p.add_argument("--out", type=Path, help="figure file (default: RESULT.png)")
    p.add_argument("--force", action="store_true", help="overwrite an existing figure")
    p.set_defaults(handler=cmd_plot)

    p = sub.add_parser(
        "equilibrium",
        help="collective precession equilibria at fixed group lengths",
        description="Solve SC1-SC2 (physics.md section 7) for (Omega, Q): every branch (optax "
        "multi-start, Newton polish), or the one Newton finds from --guess. float64.",
    )
    _add_groups(p, "(|P_g| with the sign of P_g along H'_g)")
    p.add_argument("--out", type=Path, help="also write the equilibria to this HDF5 file")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_equilibrium)

    p = sub.add_parser(
        "path",
        help="the miscidynamic path along equilibria",
        description="Integrate the miscidynamic dynamics (physics.md section 8) along the "
        "family of precession equilibria, seeded from a simulated gas (--from, mass basis) or "
        "from given lengths; writes the path (HDF5) and a figure (the gas with the path dashed).",
    )
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="RESULT.h5",
        help="a gas run (oile run) or experiments/two_groups.py result",
    )
    p.add_argument(
        "--start",
        type=float,
        default=300.0,
        help="with --from: mu t at which the path is seeded (default 300)",
    )
    _add_groups(p, "(without --from)")
    p.add_argument("--gamma", type=float, help="impact parameter (without --from)")
    p.add_argument("--t-max", type=float, help="length of the path (without --from)")
    p.add_argument("--n-saves", type=int, default=201, help="saved times (default 201)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/path.h5"),
        help="HDF5 output (default results/path.h5); the figure goes beside it",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=cmd_path)

    p = sub.add_parser(
        "bench",
        help="gas throughput table (encounters per second against the prototype)",
        description="Encounters per second of simulate_gas (stochastic, vacuum on, fixed "
        "velocities, float32) for each N, against the research prototype's algorithm "
        "measured in the same run.",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    p.add_argument("--steps", type=int, help="steps per size (default: about 2e8 / N)")
    p.add_argument("--p", type=float, default=1.0, help="meeting probability per step")
    p.add_argument("--baseline-encounters", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per entry, best kept")
    p.add_argument("--device", choices=("auto", "cpu", "gpu", "tpu"), default="auto")
    p.add_argument("--json", type=Path, help="also write the table as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing JSON file")
    p.set_defaults(handler=cmd_bench)
    return top


def _runtime_error_types() -> tuple:
    """Errors raised inside compiled code that are the user's to fix: a lost equilibrium branch
    (`eqx.error_if`), an allocation XLA could not make."""
    import equinox as eqx
    import jax

    return (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    # Equinox puts the message after the traced stack, as "equinox.EquinoxRuntimeError: ...".
    for line in text.splitlines():
        if "EquinoxRuntimeError: " in line:
            return line.split("EquinoxRuntimeError: ", 1)[1].strip()
    # XLA's first line is the status (e.g. RESOURCE_EXHAUSTED: ...).
    return text.splitlines()[0].strip() if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `oile` console script."""
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except (_Failure, ValueError, OSError, MemoryError) as error:
        if isinstance(error, BrokenPipeError):
            return _broken_pipe()
        print(f"oile {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if "jax" in sys.modules and isinstance(error, _runtime_error_types()):
            message = _first_line(error)
            if "RESOURCE_EXHAUSTED" in message:
                message = (
                    f"the device ran out of memory ({message}); lower the run's size "
                    "(gas.counts, run.n_realizations, run.n_saves with run.save_state)"
                )
            print(f"oile {args.command}: error: {message}", file=sys.stderr)
            return 2
        raise


def _broken_pipe() -> int:
    """The reader of our output went away (`oile presets | head -1`): not an error. Python
    would complain again when it flushes stdout at exit, so stdout goes to /dev/null."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0

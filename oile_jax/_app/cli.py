"""The `oile` command line: run files and presets, plots, equilibria, miscidynamic paths and the
throughput benchmark. `oile COMMAND --help` describes each command."""

import argparse
import sys
import threading
from pathlib import Path

from .commands import (
    Failure,
    cmd_bench,
    cmd_config,
    cmd_equilibrium,
    cmd_path,
    cmd_plot,
    cmd_presets,
    cmd_run,
)

EPILOG = """examples:
  oile presets                                  list the named presets
  oile run two-groups --set run.t_max=200       a preset, shortened
  oile run my.toml --seed 3 --out results/my.h5 a run file
  oile plot results/my.h5                       its standard figure
  oile equilibrium --fractions 0.6 0.4 --omegas 0.1 0.2 --lengths 1 -1 --Pz 0.2
  oile path --from results/two-groups.h5 --start 300
  oile bench --sizes 1000 100000
"""


# The commands that compile and so use the persistent compilation cache
# (`_support/cache.py`); `bench` does not: it measures compilation.
CACHED = ("run", "equilibrium", "path")


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
    from .._version import __version__

    top = argparse.ArgumentParser(
        prog="oile",
        description="oile_jax: once-in-a-lifetime-encounter models of dense neutrino gases.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"oile_jax {__version__}")
    top.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not read or write the persistent compilation cache (default: on for run, "
        "equilibrium and path, in $OILE_COMPILE_CACHE_DIR or ~/.cache/oile_jax/jax; "
        "OILE_NO_COMPILE_CACHE=1 also turns it off)",
    )
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
    """Entry point of the `oile` console script. Ctrl-C at any moment ends it with status 130
    and one line, never a traceback (while the library still loads, `oile_jax/__init__.py`
    handles it)."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\noile: interrupted", file=sys.stderr)
        return 130


def console() -> None:
    """The `oile` console script: `main`, and after an interrupt an immediate exit with status
    130 (the interpreter's shutdown would tear XLA's threads down under a computation the
    interrupt left running, which can crash it after the message)."""
    import os

    status = main()
    if status == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(status)


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    args.argv = argv
    if args.command in CACHED and not args.no_compile_cache:
        from .._support.cache import use_compilation_cache

        use_compilation_cache()
    try:
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except (Failure, ValueError, OSError, MemoryError) as error:
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

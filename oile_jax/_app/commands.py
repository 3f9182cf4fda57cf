"""The `oile` commands that run and show simulations: `run`, `presets`, `config`, `plot` and
`bench`, with the helpers every command shares (devices, precision, outputs)."""

import contextlib
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from .._equilibria.equilibrium import MAX_SAVES
from . import config as _config


class Failure(Exception):
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
        raise Failure(
            f"--device {name}: JAX finds no {name.upper()} here (available: "
            f"{', '.join(platforms)}); use --device cpu or install JAX with {name} support"
        ) from None


def _devices(text: str | None):
    if text is None or text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise Failure(f"--devices takes a positive number or 'all', got {text!r}")
    return int(text)


def _distributed(args):
    """`jax.distributed.initialize` for a run over several processes (hosts): with
    `--coordinator`, `--num-processes` and `--process-id`, or detected from the cluster
    (SLURM, Open MPI, ...) with `--distributed` alone. Must come before any JAX computation."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if not args.distributed and all(v is None for v in given):
        return
    if any(v is None for v in given) and any(v is not None for v in given):
        raise Failure(
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
        raise Failure(f"--distributed: jax.distributed.initialize failed: {error}") from None


def precision(name: str | None):
    if name == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)


def command_line(args) -> str:
    """The command line as typed (stored in the output files)."""
    return "oile " + shlex.join(sys.argv[1:] if args.argv is None else args.argv)


def check_output(path: Path, option: str, force: bool):
    """An output path must not be a directory, and exists only with --force."""
    if path.is_dir():
        raise Failure(f"{option} {path} is a directory; give the path of a file")
    if path.exists() and not force:
        raise Failure(f"{path} exists; pass --force to overwrite it")


def write_figure(fig, path: Path, force: bool) -> Path:
    check_output(path, "--out", force)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same rule as the HDF5 output: a complete file or none, and no temporary file left behind.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, dpi=130, format=path.suffix.lstrip(".") or "png")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def missing_datasets(path: Path):
    """A result file read by a command that lacks a dataset (or group) it needs: refused,
    naming the file and the dataset, instead of a KeyError traceback."""
    try:
        yield
    except KeyError as error:
        name = error.args[0] if error.args else "?"
        raise Failure(
            f"{path} lacks {name!r}, a dataset (or a setting of its config) this command needs: "
            "it is not a complete oile result (oile run, oile path or an experiment's output)"
        ) from None


def json_attribute(path: Path, attrs: dict, name: str) -> dict:
    """A result file's JSON attribute `name` (`{}` when absent), refused by name if broken."""
    try:
        value = json.loads(attrs.get(name, "{}"))
    except (TypeError, ValueError) as error:
        raise Failure(f"{path}: its attribute {name!r} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise Failure(f"{path}: its attribute {name!r} is not a JSON object")
    return value


# ---------------------------------------------------------------------------------------------
# oile run / presets / config


def resolved(args) -> tuple[dict, str]:
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
    if mean.shape[-1] == 8:
        occupations = data["occupations"] if model == "meanfield" else data["occupations"].mean(0)
        final = f"final group flavour occupations = {np.array2string(occupations[-1], precision=4)}"
    else:
        final = f"final group P_z = {np.array2string(mean[-1, :, 2], precision=4)}"
    if config["physics"].get("opacities", "none") != "none":
        # Emission and absorption change it: a drift here is physics, not an error.
        return f"{final}; lepton number change {drift:.1e} (relative; physics.opacities)"
    return f"{final}; lepton number drift {drift:.1e} (relative)"


def cmd_run(args) -> int:
    from .._output.io import read_h5
    from .run_options import build
    from .runner import run

    # Before the run file is checked: its checks use JAX, and jax.distributed must start first.
    _distributed(args)
    config, name = resolved(args)  # --precision, when given, is in the config
    precision(config["precision"])
    # Not results/NAME.h5: the experiments write there (make run: results/foreground.h5).
    out = args.out or Path("results") / f"{name}.run.h5"
    device = _select_device(args.device)
    import jax

    with jax.default_device(device):
        objects = build(config)  # the run file's objects, each built and checked once

    start = time.perf_counter()
    command = command_line(args)
    try:
        with jax.default_device(device):
            run(
                objects,
                out,
                resume=args.resume,
                force=args.force,
                progress=args.progress,
                attrs={"command": command, "name": name},
                devices=_devices(args.devices),
            )
    except KeyboardInterrupt:
        from .runner import checkpoint_path

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
    for name, summary in _config.preset_summaries().items():
        print(f"{name:<22} {summary}")
    return 0


def cmd_config(args) -> int:
    from .run_options import build

    config, _ = resolved(args)
    precision(config["precision"])
    build(config)  # the library's checks of the objects the file builds
    print(_config.dumps(config), end="")
    return 0


# ---------------------------------------------------------------------------------------------
# oile plot


def cmd_plot(args) -> int:
    from .._output.io import read_h5
    from .._output.plot import plot_run

    out = args.out or args.result.with_suffix(".png")
    check_output(out, "--out", args.force)
    data, attrs = read_h5(args.result)
    json_attribute(args.result, attrs, "config")  # a broken one named, not a JSON message
    with missing_datasets(args.result):
        figure = plot_run(data, attrs)
    path = write_figure(figure, out, args.force)
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------------
# oile equilibrium / path
# ---------------------------------------------------------------------------------------------
# oile bench


def cmd_bench(args) -> int:
    from ..bench import benchmark

    # Every option checked before the baseline is measured (that takes seconds).
    if args.repeats < 1:
        raise Failure(f"--repeats must be at least 1, got {args.repeats}")
    if not 0 < args.p <= 1:
        raise Failure(f"--p is the meeting probability per step, in (0, 1], got {args.p:g}")
    bad = [n for n in args.sizes if n < 2 or n % 2]
    if bad:
        raise Failure(f"--sizes are gas sizes N, even and >= 2, got {bad}")
    if args.steps is not None and args.steps < 1:
        raise Failure(f"--steps must be at least 1, got {args.steps}")
    if args.baseline_encounters < 1:
        raise Failure(f"--baseline-encounters must be at least 1, got {args.baseline_encounters}")
    if args.json is not None and args.json.exists() and not args.force:
        raise Failure(f"--json {args.json} exists; pass --force to overwrite it")
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
            raise Failure(f"{args.json} exists; pass --force to overwrite it")
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


# ------------------------------------------------------------------------------------------------
# The `oile` commands of the group equations: `equilibrium` (precession equilibria) and `path`
# (the miscidynamic path, from groups or from a gas result).


def _groups_args(args):
    names = ("fractions", "omegas", "lengths")
    missing = [f"--{n}" for n in names if getattr(args, n) is None]
    if missing or args.Pz is None:
        raise Failure(
            f"give {', '.join(missing + (['--Pz'] if args.Pz is None else []))} "
            "(or --from RESULT.h5 for oile path)"
        )
    sizes = {len(getattr(args, n)) for n in names}
    if len(sizes) != 1:
        raise Failure("--fractions, --omegas and --lengths need one value per group each")
    fractions = np.asarray(args.fractions)
    if np.any(fractions <= 0) or abs(fractions.sum() - 1) > 1e-9:
        raise Failure(f"--fractions must be positive and sum to 1, got {args.fractions}")
    if not np.all(np.isfinite(args.lengths)) or np.any(np.abs(args.lengths) > 1):
        raise Failure(f"--lengths are signed |P_g| <= 1, got {args.lengths}")
    if not np.all(np.isfinite(args.omegas)):
        raise Failure(f"--omegas must be finite numbers, got {args.omegas}")
    if not abs(args.Pz) <= 1:
        raise Failure(f"--Pz is Pbar_z, the lepton number per neutrino, in [-1, 1]; got {args.Pz}")
    if not args.mu > 0 or not np.isfinite(args.mu):
        raise Failure(f"--mu is the coupling and must be > 0, got {args.mu:g}")
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
    from .._equilibria.equilibrium import equilibrium_branches, precession_equilibrium
    from .._output.io import write_h5

    fractions, omegas, lengths, Pz = _groups_args(args)
    if args.out:
        check_output(args.out, "--out", args.force)
    if args.guess is not None:
        eq = precession_equilibrium(
            lengths, fractions, omegas, Pz, mu=args.mu, guess=tuple(args.guess)
        )
        if not bool(eq.converged):
            raise Failure(f"Newton did not converge from --guess {args.guess}")
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
            attrs={"kind": "equilibrium", "command": command_line(args)},
            force=args.force,
        )
        print(f"wrote {args.out}")
    return 0


def _from_result(path: Path, start: float):
    """`(gas, gamma, mu)` of a gas run or of the two-group experiment: `gas` holds `ts` and the
    realization-averaged `group_mean`, `group_std`, `group_length`, `entropy`, with `fractions`
    and `omegas`."""
    from .._output.io import read_h5

    data, attrs = read_h5(path)
    config = json_attribute(path, attrs, "config")
    if attrs.get("kind") == "run" and attrs.get("model") in ("gas", "meanfield"):
        fractions, omegas = data["groups"]["fractions"], data["groups"]["omegas"]
        gamma, mu = config["physics"]["gamma"], config["physics"]["mu"]
        if config["physics"]["basis"] != "mass":
            raise Failure(f"{path}: miscidynamics reads the gas in the mass basis")
        if config["physics"].get("opacities", "none") != "none":
            raise Failure(
                f"{path}: the run has physics.opacities = "
                f"{config['physics']['opacities']!r}; miscidynamics follows the equilibria of "
                "the gas without the medium"
            )
    elif config.get("experiment") == "two_groups":
        fractions, omegas = data["fractions"], data["omegas"]
        gamma, mu = config["gamma"], 1.0
    else:
        raise Failure(f"{path} is not a gas run (oile run, model 'gas') or a two_groups result")
    ts = np.asarray(data["ts"], dtype=float)
    if not ts[0] <= start < ts[-1]:
        raise Failure(f"--start {start:g} is outside the run's times [{ts[0]:g}, {ts[-1]:g})")
    if gamma is None:
        raise Failure(f"{path}: the run has no gamma (a pure mean field has no miscidynamics)")
    names = ("group_mean", "group_std", "group_length", "entropy")
    several = np.ndim(data["group_mean"]) == 4  # realizations first: average them
    gas = {k: np.asarray(data[k], dtype=float) for k in names}
    for name, values in gas.items():
        if not np.all(np.isfinite(values)):
            raise Failure(
                f"{path}: dataset {name!r} holds NaN or inf (a run that went wrong); a path "
                "cannot start from it"
            )
    gas = {k: v.mean(0) if several else v for k, v in gas.items()}
    gas.update(ts=ts, fractions=np.asarray(fractions), omegas=np.asarray(omegas))
    return gas, float(gamma), float(mu)


def cmd_path(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from .._equilibria.equilibrium import miscidynamic_path, path_from_gas
    from .._output.io import write_h5
    from .._output.plot import plot_path, plot_two_groups

    out = args.out
    figure = out.with_suffix(".png")
    for path in (out, figure):
        check_output(path, "--out", args.force)
    gas = None
    if not 2 <= args.n_saves <= MAX_SAVES:
        raise Failure(
            f"--n-saves must be at least 2 (the start and the end) and at most {MAX_SAVES} "
            f"(each save interval is one integration of the path), got {args.n_saves}"
        )
    if args.source is not None:
        # Everything else comes from the run: refuse what would be ignored.
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("fractions", "omegas", "lengths", "Pz", "gamma", "t_max", "guess")
            if getattr(args, name) is not None
        ] + (["--mu"] if args.mu != 1.0 else [])
        if given:
            raise Failure(
                f"{', '.join(given)}: not used with --from, which takes the groups, gamma, mu "
                "and the times from the run (drop them, or drop --from to give the groups)"
            )
        with missing_datasets(args.source):
            gas, gamma, mu = _from_result(args.source, args.start)
        fractions, omegas = gas["fractions"], gas["omegas"]
        state, solution = path_from_gas(
            gas["ts"], gas["group_mean"], fractions, omegas, start=args.start, gamma=gamma, mu=mu
        )
        Pz = state.Pz
    else:
        fractions, omegas, lengths, Pz = _groups_args(args)
        if args.gamma is None or args.t_max is None:
            raise Failure("give --gamma and --t-max (or --from RESULT.h5)")
        if not args.gamma > 0 or not np.isfinite(args.gamma):
            raise Failure(f"--gamma is the impact parameter and must be > 0, got {args.gamma:g}")
        if not args.t_max > 0 or not np.isfinite(args.t_max):
            raise Failure(f"--t-max is the path's length and must be > 0, got {args.t_max:g}")
        gamma, mu = args.gamma, args.mu
        solution = miscidynamic_path(
            jnp.asarray(lengths),
            jnp.asarray(fractions),
            jnp.asarray(omegas),
            Pz,
            np.linspace(0.0, args.t_max, args.n_saves),
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
        "command": command_line(args),
        "source": str(args.source or ""),
        "start": float(result["ts"][0]),
    }
    write_h5(out, saved, attrs=attrs, force=args.force)
    fig = plot_two_groups({**gas, "path": result}) if gas is not None else plot_path(result)
    write_figure(fig, figure, args.force)
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

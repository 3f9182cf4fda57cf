"""The `oile` commands that run and show simulations: `run`, `presets`, `config`, `plot` and
`bench`, with the helpers every command shares (devices, precision, outputs)."""

import contextlib
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

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
    return f"{final}; lepton number drift {drift:.1e} (relative)"


def cmd_run(args) -> int:
    from .._output.io import read_h5
    from .runner import run

    # Before the run file is checked: its checks use JAX, and jax.distributed must start first.
    _distributed(args)
    config, name = resolved(args)  # --precision, when given, is in the config
    precision(config["precision"])
    # Not results/NAME.h5: the experiments write there (make run: results/foreground.h5).
    out = args.out or Path("results") / f"{name}.run.h5"
    device = _select_device(args.device)
    import jax

    start = time.perf_counter()
    command = command_line(args)
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
    config, _ = resolved(args)
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

"""Run files: the TOML configuration of `oile run`, its schema, validation and presets.

A configuration is a TOML document with a top-level `model` and the sections `[physics]`,
`[schedule]`, `[run]`, `[foreground]`, `[gas]` and `[meanfield]`; which sections and keys a model
uses is part of the schema (`SCHEMA`). `resolve` checks a parsed document against it (unknown
keys, keys the model does not use, wrong types and out-of-range values are errors naming the key
and what is allowed) and fills in the defaults; the result is the "resolved configuration" that
runs and is stored in the output file.
"""

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .schema import MODELS, REQUIRED, SAMPLED, SCHEMA, SECTIONS, Key, toml_value


class ConfigError(ValueError):
    """A configuration that does not match the schema; the message names the key."""


def fail(key: str, message: str):
    raise ConfigError(f"config key {key!r}: {message}")


def _number(key: str, value, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if integer and not isinstance(value, int):
        fail(key, f"must be an integer, got {value!r}")
    if not math.isfinite(value):
        fail(key, f"must be finite, got {value!r}")
    return value if integer else float(value)


def _value(key: str, spec: Key, value):
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str):
            fail(key, f"must be a string, got {value!r}")
        if spec.allowed and value not in spec.allowed:
            fail(key, f"must be one of {', '.join(map(repr, spec.allowed))}, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            fail(key, f"must be true or false, got {value!r}")
        return value
    if kind in ("int", "float"):
        values = [_number(key, value, kind == "int")]
    elif kind in ("ints", "floats"):
        if not isinstance(value, list) or not value:
            fail(key, f"must be a non-empty list of numbers (one per group), got {value!r}")
        values = [_number(key, v, kind == "ints") for v in value]
    elif kind == "bools":
        if not isinstance(value, list) or not value or not all(isinstance(v, bool) for v in value):
            fail(key, f"must be a non-empty list of true/false (one per group), got {value!r}")
        return value
    elif kind == "vector":
        return _vector(key, value)
    elif kind == "table":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(row, list) and row for row in value)
        ):
            fail(key, f"must be a non-empty list of rows of numbers (one per group), got {value!r}")
        values = [_number(key, v) for row in value for v in row]
        _bounded(key, spec, values)
        return [[float(v) for v in row] for row in value]
    else:  # vectors
        if not isinstance(value, list) or not value:
            fail(key, f"must be a non-empty list of [x, y, z] vectors, got {value!r}")
        vectors = [_vector(key, v) for v in value]
        return vectors
    _bounded(key, spec, values)
    return values[0] if kind in ("int", "float") else values


def _bounded(key: str, spec: Key, values):
    for v in values:
        if spec.positive and v <= 0:
            fail(key, f"must be > 0, got {v!r}")
        if spec.minimum is not None and v < spec.minimum:
            fail(key, f"must be >= {spec.minimum:g}, got {v!r}")
        if spec.maximum is not None and v > spec.maximum:
            fail(key, f"must be <= {spec.maximum}, got {v!r}")


def _vector(key: str, value) -> "list[float] | str":
    """A Bloch vector: 3 numbers (two flavours), 8 (three; checked with the flavour count in
    `_states`), or a flavour name (resolved in `_states`)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or len(value) not in (3, 8):
        fail(
            key,
            f"must be a Bloch vector [x, y, z] (8 numbers for three flavours) or a flavour name, "
            f"got {value!r}",
        )
    vector = [_number(key, v) for v in value]
    if len(vector) == 8:
        return vector
    if math.hypot(*vector) > 1 + 1e-6:
        fail(
            key, f"is unphysical: |P| = {math.hypot(*vector):.6g} > 1 (Bloch vectors have |P| <= 1)"
        )
    return vector


def _flatten(document: dict) -> dict[str, Any]:
    flat = {}
    for name, value in document.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                fail(name, f"must be a table [{name}], got {value!r}")
            for sub, item in value.items():
                flat[f"{name}.{sub}"] = item
        elif isinstance(value, dict):
            fail(name, f"unknown section; the sections are {', '.join(SECTIONS)}")
        else:
            flat[name] = value
    return flat


def resolve(document: dict) -> dict[str, Any]:
    """Validate a parsed TOML document and fill in defaults: a nested dict with every key of the
    model. Raises `ConfigError` naming the first offending key."""
    flat = _flatten(document)
    if "model" not in flat:
        fail("model", f"is required: one of {', '.join(map(repr, MODELS))}")
    model = _value("model", SCHEMA["model"], flat["model"])
    for key in flat:
        if key not in SCHEMA:
            section = key.split(".")[0] if "." in key else ""
            known = sorted(k for k in SCHEMA if k.startswith(section + ".")) if section else []
            known = known or sorted(k for k in SCHEMA if "." not in k)
            fail(key, f"unknown key; the keys here are {', '.join(known)}")
        if model not in SCHEMA[key].models:
            fail(key, f"is not used by model {model!r}")
    resolved: dict[str, Any] = {}
    for key, spec in SCHEMA.items():
        if model not in spec.models:
            continue
        if key in flat:
            value = _value(key, spec, flat[key])
        elif spec.default is REQUIRED and not _optional(key, model, flat):
            fail(key, f"is required for model {model!r}: {spec.doc}")
        else:
            value = None if spec.default is REQUIRED else spec.default
        resolved[key] = value
    _check_together(resolved, model, set(flat))
    nested: dict[str, Any] = {}
    for key, value in resolved.items():
        if "." in key:
            section, name = key.split(".")
            nested.setdefault(section, {})[name] = value
        else:
            nested[key] = value
    return nested


def _optional(key: str, model: str, flat: dict) -> bool:
    """gamma is needed by the mean field only for its collision terms."""
    return (
        key == "physics.gamma"
        and model == "meanfield"
        and flat.get("meanfield.collision", "none") == "none"
    )


def library(key: str, check):
    """Run one of the library's own checks; its ValueError becomes a ConfigError naming `key`
    (the rules live in the library, once)."""
    try:
        return check()
    except ValueError as error:
        fail(key, str(error))


PMNS = ("physics.theta12", "physics.theta13", "physics.theta23", "physics.delta")
THREE_FLAVOUR_KEYS = (*PMNS, "physics.dm2_21", "physics.dm2_3l")
STATES = ("foreground.P0", "foreground.P_b", "gas.P0")


def _flavours(c: dict, model: str, given: set):
    """The flavour count and the keys that depend on it; flavour names in the state keys
    become their Bloch vectors (in `c`, the resolved configuration)."""
    from .._physics.flavours import dimension
    from .._physics.states import check_state, flavour_state

    n = c.get("physics.n_flavours", 2)
    if n not in (2, 3):
        fail("physics.n_flavours", f"must be 2 or 3, got {n!r}")
    if n == 2:
        for key in THREE_FLAVOUR_KEYS:
            if key in given:
                fail(key, "is a three-flavour key; set physics.n_flavours = 3 to use it")
    else:
        if c["physics.theta"] != 0:
            fail(
                "physics.theta",
                "is the two-flavour angle; three flavours take physics.theta12, theta13, "
                "theta23 and delta",
            )
        if c["physics.basis"] == "mass":
            for key in PMNS:
                if key in given:
                    fail(key, "mixes the flavour basis; remove it for basis 'mass'")
        if model in SAMPLED and c["schedule.vacuum"] != "split":
            fail("schedule.vacuum", "'inside' is two-flavour only; use 'split'")
        dm2 = c["physics.dm2_3l"]
        if dm2 is not None and (dm2 > 0) != (c["physics.ordering"] == "normal"):
            fail(
                "physics.dm2_3l",
                f"is dm^2_31 > 0 for the normal ordering, dm^2_32 < 0 for the inverted one; "
                f"got {dm2:g} with ordering {c['physics.ordering']!r}",
            )
    names = ("e", "mu", "tau") if n == 3 else ("e", "x")
    D = dimension(n)
    for key in STATES:
        if c.get(key) is None:
            continue
        many = key == "gas.P0"
        states = []
        for state in c[key] if many else [c[key]]:
            if isinstance(state, str):
                if state not in names:
                    fail(
                        key,
                        f"flavour {state!r} is not one of {', '.join(map(repr, names))} "
                        f"(physics.n_flavours = {n})",
                    )
                if c["physics.basis"] == "mass":
                    fail(key, "flavour names are flavour-basis states; use basis = 'flavour'")
                state = [float(x) for x in flavour_state(state, n)]
            if len(state) != D:
                fail(
                    key,
                    f"has {len(state)} components; physics.n_flavours = {n} takes {D} (or a "
                    f"flavour name)",
                )
            if n == 3:
                library(key, lambda s=state, k=key: check_state(np.asarray(s), k))
            states.append(state)
        c[key] = states if many else states[0]


def _check_together(c: dict, model: str, given: set):
    """The rules of the run file that tie its keys together. The objects the keys build, and
    the library's rules for them (`gamma` and `mu` in `System.bind`, the schedule's step, the
    gas, the shards), are checked where they are built, once (`run_options.build`)."""
    from .._manybody.statevector import MAX_QUBITS

    _flavours(c, model, given)
    if c["physics.basis"] == "mass" and c["physics.theta"] != 0:
        fail("physics.theta", "is the flavour-basis mixing angle; remove it for basis 'mass'")
    if c["physics.matter"] != 0 and c["physics.basis"] == "mass":
        fail("physics.matter", "acts along the flavour axis: use basis = 'flavour' with theta")
    if c["physics.matter"] == 0 and "physics.matter_scale" in given:
        fail("physics.matter_scale", "needs a matter potential (physics.matter != 0)")
    if model == "manybody" and c["physics.matter"] != 0:
        fail("physics.matter", "is not available for the many-body model (vacuum only)")
    for key in ("physics.matter_scale", "physics.mu_scale"):
        if c[key] is not None and c[key] == 0:
            fail(key, "must be nonzero (an e-folding time; leave it out for a constant)")
    for key, base in (
        ("physics.matter_scale", "physics.matter"),
        ("physics.mu_scale", "physics.mu"),
    ):
        scale, t_max = c[key], c.get("run.t_max")
        if scale is not None and scale < 0 and t_max is not None:
            dtype = np.float32 if c.get("precision") == "float32" else np.float64
            with np.errstate(all="ignore"):
                end = dtype(c[base]) * np.exp(dtype(t_max) / dtype(-scale))
            if not np.isfinite(end):
                fail(
                    key,
                    f"= {scale:g} makes {base} grow by e every {-scale:g}: by run.t_max = "
                    f"{t_max:g} it overflows {np.dtype(dtype).name}; give a larger |{key}| or a "
                    "shorter run.t_max",
                )
    if c["physics.mu_scale"] is not None and model in SAMPLED:
        if c["schedule.kind"] == "deterministic":
            fail(
                "physics.mu_scale",
                "needs the stochastic schedule (a deterministic round lasts gamma / mu)",
            )
    if model in SAMPLED | {"meanfield"}:
        stochastic = model == "meanfield" or c["schedule.kind"] == "stochastic"
        if not stochastic and "schedule.dt" in given:
            fail("schedule.dt", "is used by the stochastic schedule only (kind='deterministic')")
        if model in SAMPLED and stochastic and c["schedule.vacuum"] != "split":
            fail("schedule.vacuum", "'inside' needs the deterministic schedule (kind)")
    if model == "foreground":
        if c["physics.angles"] == "beams":
            fail("physics.angles", "'beams' needs groups; the foreground model has none")
        return
    G = len(c["gas.counts"])
    for key in ("gas.omegas", "gas.P0", "gas.antineutrino", "gas.directions"):
        if c[key] is not None and len(c[key]) != G:
            fail(key, f"needs one entry per group: {G} (gas.counts), got {len(c[key])}")
    _opacities(c, G)
    beams = c["physics.angles"] == "beams"
    if beams != (c["gas.directions"] is not None):
        if beams:
            fail("physics.angles", "'beams' needs gas.directions, one unit vector per group")
        fail("gas.directions", "is used by physics.angles = 'beams' only")
    n = sum(c["gas.counts"])
    if model == "manybody":
        if n > MAX_QUBITS:
            fail(
                "gas.counts",
                f"sum to N = {n}; the exact many-body state takes N <= {MAX_QUBITS} "
                "(2^N amplitudes)",
            )
        if any(abs(math.hypot(*p) - 1) > 1e-6 for p in c["gas.P0"]):
            fail("gas.P0", "must be pure states (|P| = 1) for the many-body model")
    if model == "meanfield" and c["physics.angles"] == "fixed-angle":
        fail(
            "physics.angles",
            "the mean-field model takes 'isotropic' or 'beams' (group ODE) or "
            "'fixed-velocities' (multi-angle ODE)",
        )
    if model == "meanfield" and c["physics.mu_scale"] is not None:
        if c["meanfield.collision"] == "deterministic":
            fail("physics.mu_scale", "needs a collision term other than 'deterministic'")


def _opacities(c: dict, G: int):
    """`physics.opacities` and its tables: one row per group, one number per flavour; the
    kinetic term's initial numbers and scattering rates, one per group."""
    kind = c.get("physics.opacities", "none")
    tables = ("gas.rates", "gas.equilibria")
    kinetic = ("gas.numbers",)
    options = (*tables, "gas.scattering")
    unused = (*options, *kinetic) if kind == "none" else kinetic if kind != "kinetic" else ()
    for key in unused:
        if c.get(key) is not None:
            kinds = "'kinetic'" if key in kinetic else "'reemission' or 'kinetic'"
            fail(key, f"is used by physics.opacities = {kinds} only")
    if kind == "none":
        return
    if c["physics.basis"] == "mass":
        fail(
            "physics.opacities",
            "has rates diagonal in the flavour basis: use basis = 'flavour' (with theta, or "
            "theta12, theta13, theta23 for three flavours)",
        )
    n = 3 if c["physics.n_flavours"] == 3 else 2
    for key in tables:
        rows = c.get(key)
        if rows is None:
            fail("physics.opacities", f"{kind!r} needs {key}, one row per group")
        if len(rows) != G:
            fail(key, f"needs one row per group: {G} (gas.counts), got {len(rows)}")
        if any(len(row) != n for row in rows):
            fail(key, f"needs {n} numbers per row (one per flavour: physics.n_flavours = {n})")
    if kind == "kinetic":
        _kinetic(c, G)
    if c.get("gas.scattering") is not None:
        _scattering(c, G, kind)
    if kind == "kinetic":
        return
    for g, (rates, feq) in enumerate(zip(c["gas.rates"], c["gas.equilibria"], strict=True)):
        if any(r > 0 for r in rates) and not any(
            r * f > 0 for r, f in zip(rates, feq, strict=True)
        ):
            fail(
                "gas.equilibria",
                f"group {g} absorbs (gas.rates > 0) but emits no flavour (rate * equilibrium "
                "> 0 for one flavour at least): each absorbed neutrino is re-emitted",
            )
    if c.get("schedule.vacuum") == "inside" and c.get("schedule.kind") == "deterministic":
        fail("physics.opacities", "needs schedule.vacuum = 'split' (the vacuum-inside unitary)")


def _kinetic(c: dict, G: int):
    """`physics.opacities = 'kinetic'`: the mean field's occupations, whose numbers change."""
    if c["model"] != "meanfield":
        fail(
            "physics.opacities",
            "'kinetic' changes each group's number of neutrinos, which the gas's particles (one "
            "neutrino each) cannot follow: the gas takes 'reemission' (each neutrino absorbed "
            "and re-emitted, its number kept), the meanfield model both",
        )
    if c["meanfield.collision"] != "none":
        fail(
            "meanfield.collision",
            "must be 'none' with physics.opacities = 'kinetic' (the encounters' collision term "
            "is derived for states of one neutrino each); 'reemission' takes it",
        )
    if c["gas.numbers"] is not None and len(c["gas.numbers"]) != G:
        fail(
            "gas.numbers",
            f"needs one number per group: {G} (gas.counts), got {len(c['gas.numbers'])}",
        )


def _scattering(c: dict, G: int, kind: str):
    """`gas.scattering`: one rate per group, among directions of one species and frequency."""
    rates = c["gas.scattering"]
    if len(rates) != G:
        fail("gas.scattering", f"needs one number per group: {G} (gas.counts), got {len(rates)}")
    if c["physics.angles"] not in ("beams", "fixed-velocities"):
        fail(
            "gas.scattering",
            "changes directions: it needs physics.angles = 'beams' or 'fixed-velocities' "
            f"(with {c['physics.angles']!r} a group has no direction of its own)",
        )
    # Scattering moves neutrinos among the directions of one species and frequency: beams of
    # those, or the neutrinos of fixed velocities.
    omegas = c["gas.omegas"]
    anti = c["gas.antineutrino"] or [False] * G
    beams = c["physics.angles"] == "beams"
    members: dict = {}
    for omega, a, count, rate in zip(omegas, anti, c["gas.counts"], rates, strict=True):
        members.setdefault((omega, a), []).append((1 if beams else count, rate))
    if max(sum(m for m, _ in group) for group in members.values()) < 2:
        fail(
            "gas.scattering",
            "moves neutrinos among the directions of one species and frequency, and no two "
            + ("beams share gas.omegas and gas.antineutrino" if beams else "neutrinos do")
            + ": it would do nothing",
        )
    if c["model"] == "gas" and c["gas.shards"]:
        fail(
            "gas.scattering",
            "needs the unsharded gas (gas.shards = 0): shards pair their neutrinos among "
            "themselves, and the rate is set for pairs drawn from the whole gas",
        )
    if kind == "reemission" and any(len({r for _, r in group}) > 1 for group in members.values()):
        fail(
            "gas.scattering",
            "must be equal among the groups of one gas.omegas and gas.antineutrino with "
            "physics.opacities = 'reemission' (each group keeps its number of neutrinos)",
        )


def parse_value(text: str):
    """A `--set key=value` value: TOML syntax (numbers, booleans, lists, quoted strings), or a
    bare word taken as a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(document: dict, overrides: list[str]) -> dict:
    """`--set section.key=value` overrides on a parsed document (a copy)."""
    document = {k: dict(v) if isinstance(v, dict) else v for k, v in document.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set takes section.key=value, got {item!r}")
        key, text = (part.strip() for part in item.split("=", 1))
        if key not in SCHEMA:
            fail(key, f"unknown key; the keys are {', '.join(SCHEMA)}")
        if "." in key:
            section, name = key.split(".")
            document.setdefault(section, {})[name] = parse_value(text)
        else:
            document[key] = parse_value(text)
    return document


def presets() -> dict[str, Path]:
    """The named presets shipped with the package: name -> TOML file."""
    folder = resources.files("oile_jax") / "_app" / "presets"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def preset_summaries() -> dict[str, str]:
    """The named presets, sorted, with what each reproduces: the comment lines (`# ...`) at
    the head of its file, joined."""
    return {
        name: " ".join(line[2:] for line in path.read_text().splitlines() if line.startswith("# "))
        for name, path in sorted(presets().items())
    }


def load(source: str) -> tuple[dict, str]:
    """Parse a TOML file or a preset name: `(document, the source's name)`."""
    path = Path(source)
    known = presets()
    if not path.suffix and source in known:
        path = known[source]
    elif not path.exists():
        raise ConfigError(
            f"CONFIG={source!r} is neither a TOML file nor a preset; "
            f"the presets are {', '.join(sorted(known))}"
        )
    elif not path.is_file():
        raise ConfigError(f"CONFIG={source!r} is a directory, not a TOML file; give a run file")
    try:
        return tomllib.loads(path.read_text()), path.stem
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (TOML) file") from None


def dumps(config: dict) -> str:
    """A resolved configuration as TOML (keys whose value is unset are left out)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, table in config.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"

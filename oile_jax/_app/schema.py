"""The run-file schema: every key of `oile run`'s TOML files, with its type, default, unit,
allowed values and the models that use it, and the reference table made from it."""

import dataclasses
from typing import Any

from .._physics.encounter import ENCOUNTERS

MODELS = ("foreground", "gas", "meanfield", "manybody")
ALL = frozenset(MODELS)
SAMPLED = frozenset({"foreground", "gas", "manybody"})  # models with encounters and a schedule
GROUPS = frozenset({"gas", "meanfield", "manybody"})
REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class Key:
    # "str", "int", "float", "bool", "vector", "ints", "floats", "vectors", "bools", "table"
    # (a list of rows of numbers, one row per group)
    kind: str
    default: Any
    doc: str
    unit: str = ""
    allowed: tuple = ()
    minimum: float | None = None
    maximum: int | None = None
    positive: bool = False
    models: frozenset = ALL
    # The values of a run this key shapes, by the names of the checkpoint fingerprint
    # (`_gas/checkpoint.fingerprint`: a field of the bound `System`, of the schedule, of the
    # sampling, ...): a checkpoint that differs in one of them is blamed on this key.
    shapes: tuple[str, ...] = ()


SCHEMA: dict[str, Key] = {
    "model": Key("str", REQUIRED, "what to simulate", allowed=MODELS),
    "seed": Key(
        "int",
        0,
        "PRNG seed (`jax.random.key(seed)`, a 64-bit integer)",
        minimum=0,
        maximum=2**63 - 1,
        shapes=("key",),
    ),  # fmt: skip
    "precision": Key(
        "str",
        "float32",
        "floating-point precision",
        allowed=("float32", "float64"),
        shapes=("dtype",),
    ),
    "title": Key("str", "", "figure title (default: made from the configuration)"),
    "physics.gamma": Key(
        "float",
        REQUIRED,
        "impact parameter `mu t_int`, > 0 (the mean field is `gamma -> 0`); "
        "meanfield: only used by the collision terms",
        "1",
        shapes=("gamma",),
    ),
    "physics.mu": Key(
        "float",
        1.0,
        "neutrino-neutrino coupling, > 0",
        "frequency",
        shapes=("mu", "density"),
    ),
    "physics.n_flavours": Key(
        "int",
        2,
        "flavours: 2, or 3 (Bloch vectors of 8 components `Tr(rho lambda^a)`, PMNS vacuum; "
        "physics.md section 11); not with the many-body model",
        minimum=2,
        models=ALL - {"manybody"},
        shapes=("B",),
    ),
    "physics.basis": Key(
        "str",
        "mass",
        "basis the Bloch vectors are written in: `B = (0, 0, -1)` (mass) or "
        "`(sin 2theta, 0, -cos 2theta)` (flavour)",
        allowed=("mass", "flavour", "flavor"),
        shapes=("B", "L"),
    ),
    "physics.theta": Key(
        "float",
        0.0,
        "vacuum mixing angle (two flavours, flavour basis only)",
        "rad",
        shapes=("B",),
    ),
    **{
        f"physics.{name}": Key(
            "float",
            None,
            f"three flavours: {what} (flavour basis only; default: the NuFIT 6.0 best fit of "
            "physics.ordering)",
            "rad",
            models=ALL - {"manybody"},
            shapes=("B",),
        )
        for name, what in (
            ("theta12", "PMNS mixing angle theta_12"),
            ("theta13", "PMNS mixing angle theta_13"),
            ("theta23", "PMNS mixing angle theta_23"),
            ("delta", "Dirac CP phase delta"),
        )
    },
    "physics.dm2_21": Key(
        "float",
        None,
        "three flavours: the solar splitting `dm^2_21` (default: NuFIT 6.0); only its ratio to "
        "`|dm^2_3l|` enters, frequencies being `omega = |dm^2_3l| / 2E`",
        "eV^2",
        positive=True,
        models=ALL - {"manybody"},
        shapes=("B",),
    ),
    "physics.dm2_3l": Key(
        "float",
        None,
        "three flavours: the atmospheric splitting `dm^2_31` (normal, > 0) or `dm^2_32` "
        "(inverted, < 0) (default: NuFIT 6.0 for physics.ordering)",
        "eV^2",
        models=ALL - {"manybody"},
        shapes=("B",),
    ),
    "physics.ordering": Key(
        "str",
        "normal",
        "mass ordering: inverted flips the sign of every vacuum frequency (two flavours) or "
        "takes the inverted mass spectrum and its NuFIT 6.0 fit (three flavours)",
        allowed=("normal", "inverted"),
        shapes=("B", "ordering"),
    ),
    "physics.matter": Key(
        "float",
        0.0,
        "matter potential `lambda = sqrt 2 G_F n_e` along the flavour axis (flavour basis "
        "only; 0: no matter term; not with the many-body model)",
        "mu",
        shapes=("matter",),
    ),
    "physics.matter_scale": Key(
        "float",
        None,
        "e-folding time of the matter potential, `lambda(t) = matter exp(-t / matter_scale)` "
        "(negative: growing; default: constant)",
        "1/mu",
        shapes=("matter",),
    ),
    "physics.mu_scale": Key(
        "float",
        None,
        "e-folding time of the coupling, `mu(t) = mu exp(-t / mu_scale)` (negative: growing; "
        "stochastic schedule or meanfield; default: constant)",
        "1/mu",
        shapes=("density",),
    ),
    "physics.angles": Key(
        "str",
        "isotropic",
        "angle model: fresh isotropic `1 - cos` per encounter, fixed per-neutrino velocities, "
        "`1 - v.v = 1`, or one direction per group (`gas.directions`) (foreground: isotropic "
        "or fixed-angle; meanfield: isotropic, fixed-velocities or beams)",
        allowed=("isotropic", "fixed-velocities", "fixed-angle", "beams"),
        shapes=("angles",),
    ),
    "physics.encounter": Key(
        "str",
        "swap",
        "the pair's encounter Hamiltonian: swap, the once-in-a-lifetime encounter "
        "`exp(-i c SWAP)` (physics.md section 2)",
        allowed=tuple(ENCOUNTERS),
        shapes=("encounter",),
    ),
    "physics.opacities": Key(
        "str",
        "none",
        "emission and absorption by the medium (physics.md section 14), with rates and "
        "equilibria per group in gas.rates and gas.equilibria: reemission, each neutrino "
        "absorbed at its flavour's rate and re-emitted at once (`Reemission`, its number kept; "
        "gas and meanfield); kinetic, the collision term of the kinetic equations, emission and "
        "absorption that change each group's number, with isotropic scattering (gas.numbers; "
        "`Opacities`; meanfield with collision = 'none' only); either with gas.scattering",
        allowed=("none", "reemission", "kinetic"),
        models=frozenset({"gas", "meanfield"}),
        shapes=("opacities",),
    ),
    "schedule.kind": Key(
        "str",
        "stochastic",
        "stochastic (a meeting with probability `mu dt / gamma` per step) or deterministic "
        "(everyone meets once per round of length `gamma / mu`)",
        allowed=("stochastic", "deterministic"),
        models=SAMPLED,
        shapes=("schedule",),
    ),
    "schedule.dt": Key(
        "float",
        None,
        "time step of the stochastic schedule, at most `gamma / mu` (default: `gamma / mu`, a "
        "meeting every step); meanfield: the step whose finite-step term the stochastic "
        "collision term carries (default: none, its Poisson limit `dt -> 0`; like "
        "`physics.gamma`, unused without a collision term)",
        "1/mu",
        positive=True,
        models=SAMPLED | {"meanfield"},
        shapes=("schedule.dt",),
    ),
    "schedule.vacuum": Key(
        "str",
        "split",
        "deterministic schedule: vacuum split around the encounters, or inside them "
        "(foreground and gas only)",
        allowed=("split", "inside"),
        models=SAMPLED,
        shapes=("schedule.vacuum",),
    ),
    "run.t_max": Key(
        "float",
        REQUIRED,
        "length of the run (rounded to a whole number of save intervals)",
        "1/mu",
        positive=True,
        shapes=("n_steps", "save_every"),
    ),
    "run.n_saves": Key(
        "int",
        101,
        "saved times, the initial state included",
        minimum=2,
        shapes=("n_steps", "save_every"),
    ),
    "run.n_realizations": Key(
        "int",
        1,
        "independent realizations (vmapped)",
        minimum=1,
        models=SAMPLED,
        shapes=("n_realizations",),
    ),
    "run.chunk_saves": Key(
        "int",
        10,
        "save intervals per jitted chunk: the progress bar and checkpoint granularity",
        minimum=1,
        models=frozenset({"gas"}),
    ),
    "run.save_state": Key(
        "bool",
        False,
        "also save every neutrino's Bloch vector at every save (`R S N D` numbers, D = 3 or 8)",
        models=frozenset({"gas"}),
        shapes=("save_state",),
    ),
    "foreground.P0": Key(
        "vector",
        REQUIRED,
        "initial Bloch vector of the foreground neutrino, or a flavour name (e, x; e, mu, "
        "tau for three flavours; flavour basis)",
        models=frozenset({"foreground"}),
    ),
    "foreground.P_b": Key(
        "vector",
        REQUIRED,
        "Bloch vector of every background neutrino, or a flavour name",
        models=frozenset({"foreground"}),
    ),
    "foreground.omega": Key(
        "float",
        0.0,
        "vacuum frequency of the foreground neutrino",
        "mu",
        models=frozenset({"foreground"}),
    ),
    "foreground.antineutrino": Key(
        "bool",
        False,
        "the foreground is an antineutrino (`P0` its `Pbar`)",
        models=frozenset({"foreground"}),
    ),
    "foreground.background_antineutrino": Key(
        "bool",
        False,
        "the background is antineutrinos (`P_b` their `Pbar`)",
        models=frozenset({"foreground"}),
    ),
    "gas.counts": Key(
        "ints", REQUIRED, "neutrinos per group", minimum=1, models=GROUPS, shapes=("counts",)
    ),
    "gas.omegas": Key(
        "floats",
        REQUIRED,
        "vacuum frequency of each group",
        "mu",
        models=GROUPS,
        shapes=("omegas",),
    ),
    "gas.P0": Key(
        "vectors",
        REQUIRED,
        "initial Bloch vector of each group (`Pbar` for an antineutrino group), or a flavour "
        "name (e, x; e, mu, tau for three flavours; flavour basis)",
        models=GROUPS,
        shapes=("P0",),
    ),
    "gas.antineutrino": Key(
        "bools",
        None,
        "whether each group is antineutrinos (default: none is)",
        models=GROUPS,
        shapes=("antineutrino",),
    ),
    "gas.directions": Key(
        "vectors",
        None,
        "unit direction of each group's beam (physics.angles = 'beams' only)",
        models=GROUPS,
        shapes=("angles.directions",),
    ),
    "gas.rates": Key(
        "table",
        None,
        "physics.opacities: each group's rate `Gamma_alpha` of each flavour (`[Gamma_e, "
        "Gamma_x]`; three flavours `[Gamma_e, Gamma_mu, Gamma_tau]`): reemission, the rate at "
        "which a neutrino of that flavour is absorbed and re-emitted; kinetic, its emission "
        "plus absorption rate `E_alpha + A_alpha`",
        "mu",
        minimum=0,
        models=frozenset({"gas", "meanfield"}),
        shapes=("opacities.rate",),
    ),
    "gas.equilibria": Key(
        "table",
        None,
        "physics.opacities: each group's equilibrium occupation `f_eq` of each flavour: "
        "reemission, in proportion (the flavour mixture its neutrinos relax to is `f_eq / sum "
        "f_eq`; re-emission draws flavour `alpha` in proportion to `Gamma_alpha f_eq,alpha`); "
        "kinetic, `E_alpha / Gamma_alpha`, in the units of gas.numbers",
        minimum=0,
        models=frozenset({"gas", "meanfield"}),
        shapes=("opacities.equilibrium",),
    ),
    "gas.numbers": Key(
        "floats",
        None,
        "physics.opacities = 'kinetic': each group's initial number of neutrinos per member, "
        "the trace `N` of its occupation matrix `f = N rho` (gas.P0 the Bloch vector of `rho`; "
        "default: 1 each); the output's `numbers` follow it in time",
        positive=True,
        models=frozenset({"meanfield"}),
    ),
    "gas.scattering": Key(
        "floats",
        None,
        "physics.opacities: each group's rate of isotropic, flavour-blind scattering into the "
        "directions of its species and frequency (the groups of the same gas.omegas and "
        "gas.antineutrino; physics.angles = 'beams' or 'fixed-velocities'; reemission: equal "
        "among the groups it mixes, and in the gas two paired neutrinos exchange directions; "
        "default: none)",
        "mu",
        minimum=0,
        models=frozenset({"gas", "meanfield"}),
        shapes=("opacities.scattering",),
    ),
    "gas.shards": Key(
        "int",
        0,
        "split each realization's gas into this many shards along the neutrino axis, paired "
        "within shards and mixed by exchanges (0: no sharding); --devices places the shards",
        minimum=0,
        models=frozenset({"gas"}),
        shapes=("shards",),
    ),
    "gas.exchange_every": Key(
        "int",
        1,
        "steps between exchanges of the shards (> 1 raises repeated meetings inside a shard)",
        minimum=1,
        models=frozenset({"gas"}),
        shapes=("exchange_every",),
    ),
    "meanfield.collision": Key(
        "str",
        "none",
        "none (mean field), stochastic or deterministic (mean field plus the O(gamma) collision "
        "term of that schedule)",
        allowed=("none", "stochastic", "deterministic"),
        models=frozenset({"meanfield"}),
    ),
    "meanfield.rtol": Key(
        "float",
        1e-8,
        "relative tolerance of the ODE solver",
        positive=True,
        models=frozenset({"meanfield"}),
    ),
    "meanfield.atol": Key(
        "float",
        1e-10,
        "absolute tolerance of the ODE solver",
        positive=True,
        models=frozenset({"meanfield"}),
    ),
}

SECTIONS = ("physics", "schedule", "run", "foreground", "gas", "meanfield")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def reference() -> str:
    """The configuration reference as a Markdown table (kept in the README by a test)."""
    kinds = {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "vector": "[x, y, z] (8 numbers for three flavours) or a name",
        "ints": "list of integers",
        "floats": "list of numbers",
        "vectors": "list of vectors or names",
        "bools": "list of booleans",
        "table": "list of rows of numbers (one row per group)",
    }
    rows = ["| key | type | unit | default | models | meaning |", "|---|---|---|---|---|---|"]
    for key, spec in SCHEMA.items():
        default = (
            "required"
            if spec.default is REQUIRED
            else "see meaning"
            if spec.default is None
            else f"`{toml_value(spec.default)}`"
        )
        doc = spec.doc + (
            f" ({' / '.join(f'`{a}`' for a in spec.allowed)})" if spec.allowed else ""
        )
        models = "all" if spec.models == ALL else ", ".join(m for m in MODELS if m in spec.models)
        rows.append(
            f"| `{key}` | {kinds[spec.kind]} | {spec.unit} | {default} | {models} | {doc} |"
        )
    return "\n".join(rows)

"""What every dataset of an oile_jax HDF5 file means: its units, a one-line description and the
names of its axes, written as the dataset's attributes `units`, `description` and `axes`.

`describe(path, ndim)` looks a dataset up by its full path inside the file (for example
`path/P`), then by its own name. An entry's axes may depend on the array's rank (a gas run's
`group_mean` has a realization axis, the mean field's has none); `None` axes means "by rank".
Units: `1` for dimensionless numbers (Bloch vectors, fractions, counts), `1/mu` for times, `mu`
for frequencies, `nats` for entropies. Axis `component`: the components of a Bloch vector (3
for two flavours, `P^a = Tr(rho lambda^a)` with 8 for three); axis `flavour`: the flavours.
"""

R, S, G, N, C, F = "realization", "save", "group", "neutrino", "component", "flavour"

# name -> (units, description, {rank: axes})
_ENTRIES: dict[str, tuple[str, str, dict[int, tuple[str, ...]]]] = {
    "ts": ("1/mu", "save times, the initial state first", {1: (S,)}),
    "t": ("1/mu", "time at which the scan is compared", {0: ()}),
    "gamma": ("1", "impact parameter mu t_int", {0: (), 1: ("gamma",)}),
    "dt": ("1/mu", "time step of the stochastic schedule", {0: ()}),
    "N": ("1", "number of neutrinos", {1: ("N",)}),
    "P": ("1", "Bloch vector of each foreground neutrino", {3: (R, S, C)}),
    "mean": ("1", "ensemble mean of the Bloch vector", {2: (S, C)}),
    "stderr": ("1", "standard error of the ensemble mean", {2: (S, C)}),
    "example": ("1", "Bloch vector of realization 0", {2: (S, C)}),
    "closed_form": ("1", "ensemble mean from the master equation (dt -> 0)", {2: (S, C)}),
    "closed_form_dt": ("1", "exact ensemble mean of the schedule at the run's dt", {2: (S, C)}),
    "master_equation": ("1", "ensemble mean from the master equation (dt -> 0)", {2: (S, C)}),
    "exact_mean": ("1", "exact ensemble mean of the schedule at the run's dt", {2: (S, C)}),
    "encounters": (
        "1",
        "encounters: of each foreground neutrino, or cumulative pairs of the gas since t = 0",
        {1: (R,), 2: (R, S)},
    ),
    "encounters_mean": ("1", "mean number of encounters per foreground neutrino", {0: ()}),
    "group_mean": ("1", "mean Bloch vector of each group", {3: (S, G, C), 4: (R, S, G, C)}),
    "group_std": (
        "1",
        "standard deviation of the group members' components",
        {3: (S, G, C), 4: (R, S, G, C)},
    ),
    "group_length": ("1", "mean |P_i| of each group", {2: (S, G), 3: (R, S, G)}),
    "group_entropy": (
        "nats",
        "mean one-neutrino entanglement entropy of each group",
        {2: (S, G), 3: (R, S, G)},
    ),
    "entropy": ("nats", "mean one-neutrino entanglement entropy of the gas", {1: (S,), 2: (R, S)}),
    "total": (
        "1",
        "sum_nu P_i - sum_nubar Pbar_i over the gas (the isospins' sum)",
        {2: (S, C), 3: (R, S, C)},
    ),
    "lepton": (
        "1",
        "lepton number nu - nubar along B, B . total (conserved in vacuum)",
        {1: (S,), 2: (R, S)},
    ),
    "occupations": (
        "1",
        "flavour occupations rho_aa of each group's mean state (rhobar for antineutrinos)",
        {3: (S, G, F), 4: (R, S, G, F)},
    ),
    "numbers": (
        "1",
        "number of neutrinos per member of each group, the trace N of its occupation matrix "
        "f = N rho (physics.opacities = 'kinetic'; group_mean, occupations, total are f's)",
        {2: (S, G)},
    ),
    "flavour_numbers": (
        "1",
        "sum_nu rho_aa - sum_nubar rhobar_aa over the gas, each flavour",
        {2: (S, F), 3: (R, S, F)},
    ),
    "final_state": ("1", "Bloch vector of every neutrino at the end", {3: (R, N, C)}),
    "state": (
        "1",
        "Bloch vector of every neutrino at every save (run.save_state)",
        {4: (R, S, N, C), 3: (R, N, C)},
    ),
    "velocities": ("1", "unit velocity of every neutrino", {2: (N, C), 3: (R, N, C)}),
    "index": ("1", "the neutrino held in each slot, in pairing order", {2: (R, N)}),
    "step": ("1", "steps done when the checkpoint was written", {0: ()}),
    "saves_state": ("1", "saved states so far (run.save_state)", {4: (R, S, N, C)}),
    "solver_steps": ("1", "steps the ODE solver took", {0: ()}),
    "counts": ("1", "neutrinos in each group", {1: (G,)}),
    "antineutrino": ("1", "whether each group is antineutrinos", {1: (G,)}),
    "fractions": ("1", "fraction of the gas in each group", {1: (G,)}),
    "omegas": ("mu", "vacuum frequency omega_g of each group", {1: (G,)}),
    "lengths": ("1", "signed group lengths p_g (|P_g| with the sign along H'_g)", {1: (G,)}),
    "Pz": ("1", "Pbar_z, the lepton number per neutrino (mass basis)", {0: ()}),
    "mu": ("mu", "neutrino-neutrino coupling", {0: ()}),
    "exact": ("1", "one-body Bloch vectors of the exact many-body state", {4: (R, S, N, C)}),
    "oile": ("1", "Bloch vectors of OILE on the same encounters", {4: (R, S, N, C)}),
    "exact_entropy": (
        "nats",
        "one-neutrino entanglement entropy of the exact state",
        {1: (S,), 3: (R, S, N)},
    ),
    "oile_entropy": ("nats", "one-neutrino entropy in OILE", {1: (S,), 3: (R, S, N)}),
    "norm": ("1", "norm of the many-body state vector (1 up to rounding)", {2: (R, S)}),
    "exact_group_mean": ("1", "group means of the exact one-body vectors", {4: (R, S, G, C)}),
    "oile_group_mean": ("1", "group means of the OILE vectors", {4: (R, S, G, C)}),
    "Omega": ("mu", "precession frequency of the equilibrium about +z", {0: (), 1: (S,)}),
    "Q": ("1", "|Pbar_perp|, the transverse length of the mean", {0: (), 1: (S,)}),
    "residual": ("1", "residuals of the equilibrium conditions SC1, SC2", {2: ("branch", "SC")}),
    "branch": ("1", "signs of a_g labelling the branch", {2: ("branch", G)}),
    "difference": ("1", "mean |P_exact - P_OILE| over the neutrinos", {2: ("N", "gamma")}),
    "P_b": ("1", "Bloch vector of every background neutrino", {1: (C,)}),
    "P0": ("1", "initial Bloch vector of the foreground neutrino", {1: (C,)}),
}

# Entries whose meaning depends on where they sit in the file.
_PATHS: dict[str, tuple[str, str, dict[int, tuple[str, ...]]]] = {
    "path/P": ("1", "group vectors along the path, co-rotating frame", {3: (S, G, C)}),
    "path/lengths": ("1", "signed group lengths p_g along the path", {2: (S, G)}),
    "path/Omega": ("mu", "precession frequency along the path", {1: (S,)}),
    "path/Q": ("1", "|Pbar_perp| along the path", {1: (S,)}),
    "equilibrium/P": (
        "1",
        "group vectors of each branch, co-rotating frame with Pbar_perp along +x",
        {3: ("branch", G, C)},
    ),
    "equilibrium/Omega": ("mu", "precession frequency of each branch", {1: ("branch",)}),
    "equilibrium/Q": ("1", "|Pbar_perp| of each branch", {1: ("branch",)}),
    "gas-checkpoint/state": (
        "1",
        "the gas in its carried form (frame of B, half a vacuum step ahead; with constant "
        "matter half a turn ahead), pairing order",
        {3: (R, N, C), 4: ("point", R, N, C)},
    ),
}


def describe(path: str, ndim: int, kind: str = "") -> dict[str, str] | None:
    """`{"units", "description", "axes"}` of the dataset at `path` (its rank `ndim`) in a file
    of `kind` (the root attribute), or None if unknown. `axes` is a comma-separated list."""
    name = path.rsplit("/", 1)[-1]
    entry = _PATHS.get(f"{kind}/{name}") or _PATHS.get(path) or _ENTRIES.get(name)
    if entry is None:
        return None
    units, description, axes = entry
    names = axes.get(ndim)
    if names is None:
        names = tuple(f"axis {k}" for k in range(ndim))
    return {"units": units, "description": description, "axes": ", ".join(names)}

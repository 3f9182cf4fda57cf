"""Exact many-body reference (physics.md section 9): the same encounters on the full `2^N` state
vector.

Neutrino `k` is qubit `k` (bit `k` of the basis index, most significant first, so that the
state reshaped to `(2,) * N` has neutrino `k` on axis `k`). Basis states are the eigenstates of
`B.sigma` of every neutrino: bit 0 is `B.sigma = -1` (Bloch vector `-B`), bit 1 is `+B`. In the
mass basis (`B = (0, 0, -1)`) bit 0 is the `+z` state. Bloch vectors in and out are written in
the caller's basis; internally they are rotated into the frame where `B = (0, 0, -1)`.

- A pair encounter is the system's (`AbstractEncounter.on_state_vector`): for `Swap`,
  `exp(-i c S_ij) = cos c - i sin c S_ij`, applied by index permutation (`S_ij` swaps bits `i`
  and `j` of the basis index, a gather computed elementwise), so the pair can be chosen at run
  time (random matchings) without a compile per pair.
- The vacuum Hamiltonian `sum_k (omega_k / 2) B.sigma_k` is diagonal: a phase per basis state.
- One-body density matrices by partial traces of `|psi><psi|`; entropies from their Bloch
  vectors. No correlations are ever traced out: pairs may meet again and entanglement accumulates.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from .._physics.encounter import AbstractEncounter, Swap
from .._physics.states import complex_dtype, entropy
from .._sampling.options import SaveAt
from .._support.sharding import platform

MAX_QUBITS = 30


def _frame(B):
    """Rotation matrix `R` with `R B = (0, 0, -1)` (proper rotation, smooth in `B` away from +z)."""
    B = jnp.asarray(B)
    target = jnp.asarray([0.0, 0.0, -1.0], dtype=B.dtype)
    axis = jnp.cross(B, target)
    c = jnp.dot(B, target)
    K = jnp.asarray(
        [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=B.dtype
    )
    eye = jnp.eye(3, dtype=B.dtype)
    # Rodrigues with (1 - c)/s^2 = 1/(1 + c); B = +z (c = -1) is the rotation by pi about x.
    flip = jnp.diag(jnp.asarray([1.0, -1.0, -1.0], dtype=B.dtype))
    safe = jnp.where(c > -1 + 1e-12, 1 / (1 + c), 0.0)
    return jnp.where(c > -1 + 1e-12, eye + K + K @ K * safe, flip)


def product_state(P: Float[Array, "N 3"]) -> Complex[Array, " 2**N"]:
    """The product state of pure one-body states with Bloch vectors `P` (frame `B = -z`:
    bit 0 is `+z`). `|P_k| = 1` is required (a state vector holds pure states only)."""
    P = jnp.asarray(P)
    cdtype = complex_dtype(P.dtype)
    theta = jnp.arccos(jnp.clip(P[:, 2], -1.0, 1.0))
    phi = jnp.arctan2(P[:, 1], P[:, 0])
    up = jnp.cos(theta / 2).astype(cdtype)
    down = jnp.sin(theta / 2).astype(cdtype) * jnp.exp(1j * phi.astype(cdtype))
    kets = jnp.stack([up, down], axis=-1)  # (N, 2): amplitudes of bit 0 (+z) and bit 1 (-z)
    psi = kets[0]
    for k in range(1, P.shape[0]):
        psi = jnp.outer(psi, kets[k]).reshape(-1)
    return psi


def vacuum_phases(n: int, omegas, t, dtype) -> Complex[Array, " 2**n"]:
    """`exp(-i t sum_k (omega_k/2) b_k)`, `b_k = -1` for bit 0 and `+1` for bit 1 (frame B = -z)."""
    b = jnp.arange(2**n, dtype=jnp.int32)
    bits = (b[:, None] >> jnp.arange(n - 1, -1, -1, dtype=jnp.int32)) & 1
    energy = (2 * bits - 1).astype(jnp.finfo(dtype).dtype) @ (jnp.asarray(omegas) / 2).astype(
        jnp.finfo(dtype).dtype
    )
    return jnp.exp(-1j * (energy * t).astype(dtype))


def one_body_bloch(psi: Complex[Array, " D"]) -> Float[Array, "N 3"]:
    """Bloch vectors of every neutrino's reduced density matrix (frame B = -z)."""
    n = int(np.log2(psi.shape[0]))
    out = []
    for k in range(n):
        # Neutrino k is the middle axis of (2^k, 2, 2^(n-1-k)): a reshape, no transpose.
        t = psi.reshape(2**k, 2, -1)
        up, down = t[:, 0, :], t[:, 1, :]
        rho01 = jnp.sum(up * jnp.conj(down))
        z = jnp.sum(jnp.abs(up) ** 2) - jnp.sum(jnp.abs(down) ** 2)
        out.append(jnp.stack([2 * jnp.real(rho01), -2 * jnp.imag(rho01), z]))
    return jnp.stack(out)


def over_realizations(fn, keys, backend: str | None = None):
    """`vmap` over realizations on accelerators; `lax.map` (one at a time) on a CPU, where the
    batched gather is slower (`experiments/README.md`, "Design measurements")."""
    if (backend or platform()) == "cpu":
        return jax.lax.map(fn, keys)
    return jax.vmap(fn)(keys)


def _encounters(meet: AbstractEncounter, psi, a, b, c):
    """Pair encounters `(a_k, b_k, c_k)` of the encounter `meet` applied in order. A `lax.scan`
    over the pairs: unrolled, XLA's CPU backend runs each encounter several times slower
    (`experiments/README.md`)."""

    def one(psi, abc):
        return meet.on_state_vector(psi, *abc), None

    return jax.lax.scan(one, psi, (a, b, c))[0]


class ManyBodyState(eqx.Module):
    """A state vector and the rotation into its frame (`B = (0, 0, -1)`)."""

    psi: Complex[Array, " D"]
    frame: Float[Array, "3 3"]

    @property
    def n(self) -> int:
        return int(np.log2(self.psi.shape[0]))

    def bloch(self) -> Float[Array, "N 3"]:
        """One-body Bloch vectors in the caller's basis."""
        return one_body_bloch(self.psi) @ self.frame

    def entropies(self) -> Float[Array, " N"]:
        """One-neutrino entanglement entropies (nats)."""
        return entropy(one_body_bloch(self.psi))

    def norm(self) -> Array:
        return jnp.sqrt(jnp.sum(jnp.abs(self.psi) ** 2))


def initial_state(P0: Float[Array, "N 3"], B) -> ManyBodyState:
    """Product state of pure Bloch vectors `P0` (caller's basis, vacuum direction `B`)."""
    P0 = jnp.asarray(P0)
    if P0.ndim != 2 or P0.shape[-1] != 3:
        raise ValueError(f"P0 must have shape (N, 3), got {P0.shape}")
    n = P0.shape[0]
    if n < 2 or n > MAX_QUBITS:
        raise ValueError(
            f"the many-body state vector takes 2 <= N <= {MAX_QUBITS} neutrinos, got N = {n}"
        )
    lengths = (
        np.asarray(jnp.linalg.norm(P0, axis=-1)) if not isinstance(P0, jax.core.Tracer) else None
    )
    if lengths is not None and np.any(np.abs(lengths - 1) > 1e-6):
        raise ValueError(
            "P0 must be pure states (|P| = 1) for the state-vector engine, got |P| = "
            f"{np.array2string(lengths, precision=6)}"
        )
    frame = _frame(jnp.asarray(B, dtype=P0.dtype))
    return ManyBodyState(psi=product_state(P0 @ frame.T), frame=frame)


class ManyBodySolution(eqx.Module):
    """Result of `simulate_manybody`: the exact evolution and its OILE approximation driven by
    the same encounters. Shapes: `R` realizations, `S` saves, `N` neutrinos.

    - `ts` `(S,)`; `exact`, `oile` `(R, S, N, 3)`: one-body Bloch vectors (caller's basis);
    - `exact_entropy`, `oile_entropy` `(R, S, N)`: one-neutrino entanglement entropies (nats);
    - `norm` `(R, S)`: norm of the state vector (1 up to rounding).
    """

    ts: Array
    exact: Array
    oile: Array
    exact_entropy: Array
    oile_entropy: Array
    norm: Array


@eqx.filter_jit
def _run_manybody(kernel, state: ManyBodyState, P0, spec):
    from .._gas.kernel import Slots
    from .._gas.model import Gas
    from .._sampling.random import realization_keys, realization_streams, step_words

    n, dtype, save_every = P0.shape[0], P0.dtype, spec.save_every
    tau = spec.step_length()
    frequencies = kernel.system.frequencies()
    omegas = frequencies[Gas(kernel.counts, frequencies, P0).group_ids()]
    half = vacuum_phases(n, omegas, tau / 2, state.psi.dtype)

    def realization(key_r):
        velocity_key, steps_key = realization_streams(key_r)
        velocity_words = kernel.angles.velocity_words(velocity_key)

        def step(carry, s):
            # The gas's own step (`GasKernel.step`), its pairs and angles applied exactly to
            # the state vector alongside: half a step of vacuum, the encounters, the other half.
            psi, slots = carry
            slots, c, _ = kernel.step(slots, step_words(steps_key, s), velocity_words, s >= 0, s)
            psi = half * _encounters(
                kernel.system.encounter, half * psi, slots.index[0], slots.index[1], c
            )
            return (psi, slots), None

        def interval(carry, k):
            steps = k * save_every + jnp.arange(save_every, dtype=jnp.int32)
            carry, _ = jax.lax.scan(step, carry, steps)
            return carry, (carry[0], kernel.in_gas_order(carry[1]))

        start = (state.psi, kernel.enter(Slots.start(P0)))
        n_intervals = spec.n_saves - 1
        _, (psis, Ps) = jax.lax.scan(interval, start, jnp.arange(n_intervals, dtype=jnp.int32))
        psis = jnp.concatenate([state.psi[None], psis])
        Ps = jnp.concatenate([P0[None], Ps])
        exact_frame = jax.vmap(one_body_bloch)(psis)
        return (
            exact_frame @ state.frame,
            Ps,
            entropy(exact_frame),
            entropy(Ps),
            jnp.sqrt(jnp.sum(jnp.abs(psis) ** 2, axis=-1)),
        )

    keys = realization_keys(spec.key, spec.n_realizations)
    exact, oile, s_exact, s_oile, norm = over_realizations(realization, keys)
    ts = tau * save_every * jnp.arange(spec.n_saves, dtype=dtype)
    return ManyBodySolution(
        ts=ts, exact=exact, oile=oile, exact_entropy=s_exact, oile_entropy=s_oile, norm=norm
    )


def check_manybody_schedule(schedule):
    """The many-body engine applies the vacuum between the encounters: not inside them."""
    if schedule.vacuum_inside:
        raise ValueError(
            "schedule=Deterministic(vacuum='inside') is not available for the many-body engine; "
            "use 'split'"
        )


def simulate_manybody(
    gas,
    system,
    schedule,
    sampling,
    *,
    saveat: SaveAt = SaveAt(),
) -> ManyBodySolution:
    """The encounters of `simulate_gas` (same schedules, matchings, angle models and random
    streams) applied exactly to the `2^N` state vector, side by side with OILE.

    **Arguments:** as `simulate_gas` (`gas`, `System`, schedule, `Sampling`, `SaveAt`), for
    `gas` holding pure initial states (`|P| = 1`) of at most `MAX_QUBITS` neutrinos (memory:
    `2^N` complex numbers per realization). Antineutrino groups and the ordering as in
    `simulate_gas`: the state vector is that of the flavour isospins, on which every pair has
    the same `mu (1 - v_i.v_j) S_ij` (physics.md section 10); `exact` and `oile` come back as
    the physical `P` and `Pbar`. `mu` may be a profile of time (it changes which pairs meet).
    The deterministic schedule's `vacuum="inside"`, matter, `SaveAt.state` and `chunk` are not
    available here. Returns a `ManyBodySolution`.
    """
    from .._gas.driver import prepare
    from .._gas.kernel import GasKernel
    from .._gas.model import Gas
    from .._physics.system import System

    if isinstance(saveat, SaveAt) and (saveat.state or saveat.chunk is not None):
        raise ValueError(
            "simulate_manybody saves the one-body vectors and entropies of both evolutions: "
            "SaveAt.state and SaveAt.chunk do not apply"
        )
    if isinstance(gas, Gas) and gas.P0.shape[-1] != 3:
        raise ValueError(
            f"gas: the many-body model is two-flavour (each neutrino a qubit); this gas has "
            f"{gas.P0.shape[-1]}-component states (three flavours): give P0 of 3 components"
        )
    if isinstance(system, System) and system.opacities is not None:
        raise ValueError(
            "System.opacities are not available for the many-body engine (it evolves a pure "
            "state vector; absorption and re-emission would make it mixed): give opacities=None"
        )
    if isinstance(system, System) and not system.field_is_vacuum:
        raise ValueError(
            "System.matter is not available for the many-body engine (its one-body field is "
            "the vacuum's alone, a phase in the mass basis); give matter=None"
        )
    gas, spec = prepare(gas, system, schedule, sampling, saveat)
    check_manybody_schedule(spec.schedule)
    # Per realization: the state vector (2^N complex amplitudes, with the step's copies) and
    # the saved one-body vectors and entropies of both evolutions.
    from .._support.resources import check_run_fits

    R, n, itemsize = spec.n_realizations, gas.n, np.dtype(spec.dtype).itemsize
    if n > MAX_QUBITS:  # said as initial_state says it, before the memory figure
        raise ValueError(
            f"the many-body state vector takes 2 <= N <= {MAX_QUBITS} neutrinos, got N = {n}"
        )
    saved = R * spec.n_saves * n * 8 * itemsize
    check_run_fits(
        R * 2**n * 2 * itemsize * 4 + 2 * saved,
        saved,
        f"this many-body run ({R} realizations of N = {n}, {spec.n_saves} saves, "
        f"{np.dtype(spec.dtype).name})",
        "lower Sampling.n_realizations (run.n_realizations), N or the number of saves",
    )
    P0 = gas.initial_isospins(spec.dtype)
    state = initial_state(P0, spec.system.B)
    solution = _run_manybody(GasKernel.make(gas, spec), state, P0, spec)
    return eqx.tree_at(
        lambda s: (s.exact, s.oile),
        solution,
        (gas.physical(solution.exact), gas.physical(solution.oile)),
    )


def all_to_all(
    P0: Float[Array, "N 3"],
    *,
    omegas,
    mu,
    t,
    n_steps: int,
    B=(0.0, 0.0, -1.0),
    velocities=None,
) -> ManyBodyState:
    r"""$`e^{-itH} \lvert P_0\rangle`$ for the all-to-all Hamiltonian (physics.md section 9)

    $$`H = \sum_k \frac{\omega_k}{2} \mathbf{B} \cdot \boldsymbol{\sigma}_k + \frac{\mu}{N}
    \sum_{i<j} (1 - \mathbf{v}_i \cdot \mathbf{v}_j) S_{ij}`$$

    as a symmetric (second-order) Trotter product of `n_steps` steps of pair exponentials:
    half vacuum, pairs in order with half the step, pairs in reverse order, half vacuum.
    `velocities=None` means `1 - v_i.v_j = 1` for every pair.
    """
    P0 = jnp.asarray(P0)
    n = P0.shape[0]
    state = initial_state(P0, B)
    dtype = P0.dtype
    dt = jnp.asarray(t, dtype) / n_steps
    x = (
        jnp.ones((n, n), dtype)
        if velocities is None
        else 1 - jnp.asarray(velocities, dtype) @ jnp.asarray(velocities, dtype).T
    )
    half = vacuum_phases(n, jnp.asarray(omegas, dtype), dt / 2, state.psi.dtype)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]

    first = jnp.asarray([i for i, _ in pairs], dtype=jnp.int32)
    second = jnp.asarray([j for _, j in pairs], dtype=jnp.int32)
    c = dt / 2 * mu / n * x[first, second]

    def step(psi, _):
        psi = _encounters(Swap(), half * psi, first, second, c)
        psi = _encounters(Swap(), psi, first[::-1], second[::-1], c[::-1])
        return half * psi, None

    psi, _ = jax.lax.scan(step, state.psi, None, length=n_steps)
    return ManyBodyState(psi=psi, frame=state.frame)

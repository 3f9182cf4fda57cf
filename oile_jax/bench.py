"""Gas throughput, public so that `oile bench` and the scripts in `experiments/` share it:
encounters per second of `simulate_gas` against the research prototype's algorithm, measured in
the same run."""

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)
SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)


def prototype_rate(n: int, n_encounters: int, rng, gamma: float = 0.01, repeats: int = 1) -> float:
    """The research prototype's algorithm, the baseline: NumPy, a gas of `n` neutrinos (2x2
    density matrices) with fixed isotropic velocities; each encounter picks a uniformly random
    pair, builds the 4x4 pair state, applies `U = cos c - i sin c SWAP`, and writes both partial
    traces back. Returns encounters per second, the best of `repeats` runs of `n_encounters`."""
    return max(_prototype_run(n, n_encounters, rng, gamma) for _ in range(repeats))


def _prototype_run(n: int, n_encounters: int, rng, gamma: float) -> float:
    P = rng.normal(size=(n, 3))
    P /= 2 * np.linalg.norm(P, axis=-1, keepdims=True)
    rhos = (np.eye(2) + np.einsum("na,aij->nij", P, SIGMA)) / 2
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    start = time.perf_counter()
    for _ in range(n_encounters):
        i, j = rng.choice(n, size=2, replace=False)
        c = gamma * (1 - v[i] @ v[j])
        U = np.cos(c) * np.eye(4) - 1j * np.sin(c) * SWAP
        pair = (U @ np.kron(rhos[i], rhos[j]) @ U.conj().T).reshape(2, 2, 2, 2)
        rhos[i] = np.einsum("ikjk->ij", pair)
        rhos[j] = np.einsum("kikj->ij", pair)
    return n_encounters / (time.perf_counter() - start)


def gas_rate(
    n: int,
    steps: int,
    key,
    p: float = 1.0,
    n_realizations: int = 1,
    shards: int | None = None,
    exchange_every: int = 1,
    devices=None,
    repeats: int = 1,
    antineutrino: bool = False,
    matter=None,
    mu=1.0,
    n_flavours: int = 2,
    opacities=None,
) -> tuple[float, float]:
    """`(encounters per second, compile seconds)` of `simulate_gas` for `steps` steps: two groups
    (60% / 40%, omega = 0.1, 0.2), gamma = 0.01, `dt = p gamma`, vacuum on, fixed
    velocities, float32; `shards`, `exchange_every`, `devices`, `matter`, `mu` as in
    `simulate_gas`; `opacities` a `Reemission` of the two groups (or None); `antineutrino`: the
    second group is antineutrinos. `n_flavours=3`: the
    groups start as `nu_e` and `nu_mu` (`Pbar`: `nubar_mu`) with the default three-flavour
    vacuum. The vacuum is in the mass basis; matter acts along the electron flavour there
    (`nu_e("mass", 0.15)`, or `U^dag E_ee U` with NuFIT 6.0's PMNS matrix). The best of
    `repeats` timed calls after the first, each with another gamma (no recompilation)."""
    import math

    from ._gas import Gas, simulate_gas
    from ._physics.flavours import NUFIT_6_0, pmns
    from ._physics.states import bloch_vector, flavour_state, nu_e
    from ._physics.system import System
    from ._sampling.options import Sampling, SaveAt, Sharding
    from ._sampling.schedule import Stochastic

    if n_flavours == 3:
        P0 = jnp.stack([flavour_state("e", 3), flavour_state("mu", 3)])
    else:
        P0 = [[1e-3, 0.0, np.sqrt(1 - 1e-6)], [-1e-3, 0.0, -np.sqrt(1 - 1e-6)]]
    gas = Gas((6 * n // 10, n - 6 * n // 10), (0.1, 0.2), P0, antineutrino=(False, antineutrino))
    L = None
    if matter is not None and n_flavours == 3:
        fit = NUFIT_6_0["normal"]
        U = pmns(*(math.radians(fit[k]) for k in ("theta12", "theta13", "theta23", "delta")))
        L = bloch_vector(U.conj().T @ np.diag([1.0, 0.0, 0.0]) @ U)
    elif matter is not None:
        L = nu_e("mass", 0.15)
    sampling = Sampling(key, n_steps=steps, n_realizations=n_realizations, dtype=jnp.float32)
    sharding = Sharding(devices=devices, shards=shards, exchange_every=exchange_every)
    run = lambda gamma: simulate_gas(
        gas,
        System(
            gamma=gamma,
            mu=mu,
            angles="fixed-velocities",
            matter=matter,
            L=L,
            opacities=opacities,
        ),  # fmt: skip
        Stochastic(dt=p * 0.01),
        sampling,
        saveat=SaveAt(every=steps),
        sharding=sharding,
    )
    start = time.perf_counter()
    run(0.01)
    compile_and_run = time.perf_counter() - start
    best = 0.0
    for k in range(1, repeats + 1):
        start = time.perf_counter()
        sol = run(0.01 + 1e-7 * k)
        elapsed = time.perf_counter() - start
        rate = float(sol.encounters[:, -1].sum()) / elapsed
        if rate > best:
            best, best_elapsed = rate, elapsed
    return best, compile_and_run - best_elapsed


def copy_bandwidth(n_bytes: int = 1 << 28, repeats: int = 5) -> float:
    """Bytes per second of a device-to-device array copy (`x + 0` on float32, read + write),
    the best of `repeats`: the memory bandwidth the gas step is measured against."""
    x = jnp.zeros(n_bytes // 4, jnp.float32)
    copy = jax.jit(lambda x: x + 1)
    copy(x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        copy(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n_bytes / best


def default_steps(n: int) -> int:
    """Steps for size `n`: about 2e8 neutrino-steps, between 20 and 2000."""
    return int(min(2000, max(20, 2e8 / n)))


def benchmark(
    sizes,
    *,
    p: float = 1.0,
    baseline_encounters: int = 20_000,
    steps=None,
    repeats: int = 3,
    out=print,
) -> dict:
    """Measure the baseline and `gas_rate` for each N in `sizes`, each the best of `repeats`
    runs (a shared machine's neighbours only ever slow a run down); print the table with `out`.
    Returns `{"machine", "device", "jax", "repeats", "baseline", "rows"}`."""
    device = jax.devices()[0]
    result = {
        "machine": platform.processor() or platform.machine(),
        "device": f"{device.platform}:{device.device_kind}",
        "jax": jax.__version__,
    }
    out(f"# {result['machine']} | {result['device']} | jax {result['jax']}")
    result["repeats"] = repeats
    base = prototype_rate(1000, baseline_encounters, np.random.default_rng(0), repeats=repeats)
    result["baseline"] = base
    out(
        f"baseline (prototype algorithm, NumPy, N = 1000): {base:.3e} encounters/s "
        f"(best of {repeats})"
    )
    out(f"{'N':>12}{'steps':>8}{'encounters/s':>16}{'x baseline':>12}{'compile s':>11}")
    rows = []
    for n in sizes:
        n_steps = steps or default_steps(n)
        rate, compile_s = gas_rate(n, n_steps, jax.random.key(0), p=p, repeats=repeats)
        rows.append(
            {
                "n": n,
                "steps": n_steps,
                "p": p,
                "rate": rate,
                "ratio": rate / base,
                "compile_s": compile_s,
            }
        )
        out(f"{n:>12}{n_steps:>8}{rate:>16.3e}{rate / base:>12.0f}{compile_s:>11.1f}")
    result["rows"] = rows
    return result

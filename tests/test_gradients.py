"""The differentiable gas, `evolve_gas` (physics.md section 13): the runs of `simulate_gas` (same
encounters, numbers to rounding), pathwise gradients against central finite differences with
common random numbers in float64 (reverse and forward mode, two and three flavours, both
schedules), the refusals where a pathwise gradient would mislead, memory growing as the square
root of the number of steps, and no recompilation for new parameter values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oile_jax as oj

from .conftest import assert_allclose, assert_same_to_rounding, run_options

FIELDS = ["group_mean", "group_std", "group_length", "group_entropy", "total", "lepton"]


def two_groups(n=16, P0=None, omegas=(1.0, -0.7)):
    P0 = jnp.asarray([[0.3, 0.0, 0.95], [0.0, 0.2, -0.97]]) if P0 is None else P0
    return oj.Gas((n // 2, n // 2), jnp.asarray(omegas), P0)


def three_flavours(n=12, antineutrino=(False, True)):
    e = oj.flavour_state("e", 3)
    mu = oj.flavour_state("mu", 3)
    # Mixtures with the maximally mixed state: every eigenvalue >= 0.2 / 3 (interior states, so
    # that the finite differences stay physical).
    P0 = 0.8 * jnp.stack([0.75 * e + 0.25 * mu, 0.7 * mu + 0.3 * e])
    return oj.Gas((n // 2, n // 2), jnp.asarray([1.0, 0.6]), P0, antineutrino=antineutrino)


# The electron flavour's matter vector in the mass basis: `U^dag E_ee U` with NuFIT's PMNS.
_U = oj.pmns(*(np.radians(oj.NUFIT_6_0["normal"][k]) for k in ("theta12", "theta13", "theta23",
                                                                "delta")))  # fmt: skip
E_MASS = oj.bloch_vector(_U.conj().T @ np.diag([1.0, 0.0, 0.0]) @ _U)

CASES = {
    "deterministic split": dict(
        gas=two_groups(), schedule=oj.Deterministic(), n_steps=11, save_every=1
    ),
    "stochastic, velocities, matter": dict(
        gas=two_groups(),
        schedule=oj.Stochastic(0.05),
        angles="fixed-velocities",
        matter=0.8,
        L=jnp.asarray([0.0, 0.0, 1.0]),
        B=oj.mixing_vector(0.3),
        n_steps=15,
        save_every=5,
    ),
    "vacuum inside": dict(
        gas=two_groups(), schedule=oj.Deterministic(vacuum="inside"), n_steps=9, save_every=9
    ),
    "three flavours, nu and nubar, matter(t)": dict(
        gas=three_flavours(),
        schedule=oj.Deterministic(),
        matter=oj.Exponential(1.5, 2.0),
        L=E_MASS,  # the electron flavour in the mass basis (the default B's), which turns them
        n_steps=14,
        save_every=7,
    ),
}


SLOW_CASES = {"vacuum inside"}  # in the slow suite, to keep the default one inside its budget


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.slow if c in SLOW_CASES else ()) for c in CASES],
    ids=list(CASES),
)
@pytest.mark.long  # 46 s over its cases: make test-long, in CI
def test_evolve_gas_makes_the_runs_of_simulate_gas(case, key):
    """Same key, same options: the same encounters (counts equal) and the same observables,
    states and times to rounding (another XLA program: no bit-identity is promised). The step
    counts leave remainders in the checkpointed blocks (11 = 2 x 4 + 3, 5 = 1 x 3 + 2, 14 = 7 x 2
    in blocks 3 x 2 + 1), and `remat=False` gives the same run (checked on the first case)."""
    options = dict(CASES[case], gamma=0.2, key=key, n_realizations=2, dtype=jnp.float64)
    gas = options.pop("gas")
    sol = oj.simulate_gas(gas, **run_options(save_state=True, **options))
    for remat in (True, False) if case == "deterministic split" else (True,):
        run = oj.evolve_gas(gas, **run_options(save_state=True, remat=remat, **options))
        for name in FIELDS + ["final_state", "state"]:
            assert_same_to_rounding(getattr(run, name), getattr(sol, name), err_msg=name)
        np.testing.assert_array_equal(np.asarray(run.encounters), sol.encounters)
        assert_same_to_rounding(run.ts, sol.ts)


def central(f, h):
    return (f(h) - f(-h)) / (2 * h)


WEIGHTS = np.random.default_rng(7).normal(size=(2, 3))


def gradient_case(schedule, n_steps=24, save_every=6):
    """A loss of every parameter that may be differentiated: the final group means weighted by
    fixed numbers, plus the lepton number's history."""

    def loss(P0, omegas, theta, gamma, mu, matter):
        gas = two_groups(P0=P0, omegas=omegas)
        run = oj.evolve_gas(
            gas,
            system=oj.System(gamma=gamma, mu=mu, B=oj.mixing_vector(theta), matter=matter),
            schedule=schedule,
            sampling=oj.Sampling(
                key=jax.random.key(3), n_steps=n_steps, n_realizations=2, dtype=jnp.float64
            ),
            saveat=oj.SaveAt(every=save_every),
        )
        return jnp.sum(run.group_mean[:, -1] * WEIGHTS) + 0.1 * jnp.sum(run.lepton)

    params = (
        jnp.asarray([[0.3, 0.0, 0.95], [0.0, 0.2, -0.97]]),
        jnp.asarray([1.0, -0.7]),
        jnp.asarray(0.4),
        jnp.asarray(0.2),
        jnp.asarray(1.3),
        jnp.asarray(0.5),
    )
    return loss, params


def check_against_differences(loss, params, argnums, h=1e-5, forward_mode=False):
    """Reverse mode (`jax.grad`), and forward mode (`jax.jvp`) if asked, with respect to the
    parameters `argnums` against central differences of the same loss along random directions,
    common random numbers (one key). Central differences in float64 with h = 1e-5: truncation
    ~ h^2 |f'''| ~ 1e-10, rounding ~ eps / h ~ 2e-11."""

    def free(*chosen):  # the loss of the parameters `argnums`, the others held
        full = list(params)
        for i, x in zip(argnums, chosen, strict=True):
            full[i] = x
        return loss(*full)

    chosen = tuple(params[i] for i in argnums)
    value = jax.jit(free)
    grads = jax.jit(jax.grad(free, argnums=tuple(range(len(chosen)))))(*chosen)
    forward = jax.jit(lambda p, t: jax.jvp(free, p, t)[1])
    rng = np.random.default_rng(11)
    for k, g in enumerate(grads):
        v = jnp.asarray(rng.normal(size=np.shape(chosen[k])))
        shifted = lambda s, k=k, v=v: value(*chosen[:k], chosen[k] + s * v, *chosen[k + 1 :])
        fd = central(shifted, h)
        tangents = tuple(v if j == k else jnp.zeros_like(p) for j, p in enumerate(chosen))
        what = f"parameter {argnums[k]}"
        assert_allclose(jnp.sum(g * v), fd, rtol=1e-6, atol=1e-8, err_msg=f"grad, {what}")
        if forward_mode:
            assert_allclose(forward(chosen, tangents), fd, rtol=1e-6, atol=1e-8, err_msg=what)
        assert abs(float(fd)) > 1e-4, what  # the direction moves the loss


@pytest.mark.long  # 49 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_deterministic_gradients_against_central_differences():
    """Deterministic rounds at a fixed number of steps: every parameter (initial states,
    frequencies, mixing angle, gamma, mu, matter) has an exact pathwise derivative."""
    loss, params = gradient_case(oj.Deterministic())
    check_against_differences(loss, params, argnums=(0, 1, 2, 3, 4, 5), forward_mode=True)


@pytest.mark.slow  # the default suite's time budget; the Deterministic test covers both modes
def test_stochastic_gradients_against_central_differences():
    """With `Stochastic(dt)`, the parameters the meeting decisions do not depend on."""
    loss, params = gradient_case(oj.Stochastic(0.1), n_steps=20, save_every=4)
    check_against_differences(loss, params, argnums=(0, 1, 2, 5))


@pytest.mark.slow
def test_three_flavour_gradients_against_central_differences():
    """Three flavours with neutrinos and antineutrinos: the initial states, `theta_12`
    (through `pmns_vacuum`, the other angles at their defaults), constant matter and gamma
    (through the nu-nubar pairs' own coefficients too)."""

    def loss(P0, theta12, matter, gamma):
        gas = oj.Gas((6, 6), jnp.asarray([1.0, 0.6]), P0, antineutrino=(False, True))
        B = oj.pmns_vacuum("normal", "flavour", theta12=theta12)
        run = oj.evolve_gas(
            gas,
            system=oj.System(gamma=gamma, B=B, matter=matter),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=jax.random.key(5), n_steps=10, dtype=jnp.float64),
        )
        w = jnp.asarray(np.random.default_rng(2).normal(size=(2, 8)))
        return jnp.sum(run.group_mean[:, -1] * w)

    P0 = three_flavours().P0
    params = (P0, jnp.asarray(0.58), jnp.asarray(0.7), jnp.asarray(0.3))
    check_against_differences(loss, params, argnums=(0, 1, 2, 3))


@pytest.mark.parametrize("name", ["gamma", "mu", "dt", "density"])
def test_stochastic_schedule_refuses_rate_gradients(name):
    """Whether a pair meets is a draw against `mu(t) dt / gamma`: a pathwise derivative with
    respect to those numbers misses that dependence, so it is refused, by name, in both modes
    (and the forward run at the same numbers works)."""

    def run(x):
        options = dict(gamma=0.2, mu=1.0, dt=0.05)
        if name == "density":
            mu = oj.Exponential(1.0, x)
        else:
            options[name] = x
            mu = options["mu"]
        return oj.evolve_gas(
            two_groups(),
            system=oj.System(gamma=options["gamma"], mu=mu),
            schedule=oj.Stochastic(options["dt"]),
            sampling=oj.Sampling(key=jax.random.key(0), n_steps=4, dtype=jnp.float64),
        ).lepton.sum()

    x = jnp.asarray(0.05 if name == "dt" else 0.2 if name == "gamma" else 1.0)
    if name == "gamma":  # the forward run at the same numbers works
        assert np.isfinite(float(run(x)))
    what = "the density profile of mu" if name == "density" else name
    for differentiate in (jax.grad(run), lambda x: jax.jvp(run, (x,), (jnp.ones_like(x),))):
        with pytest.raises(ValueError, match=f"with respect to {what} with a Stochastic"):
            differentiate(x)


@pytest.mark.long  # 13-20 s: make test-long and CI, to keep the default suite inside 10 minutes
def test_checkpointed_scans_keep_memory_as_the_square_root_of_the_steps():
    """The compiled gradient's temporary memory (XLA's buffer assignment, the same on every
    CPU up to a few buffers), with respect to the initial states and gamma, two realizations
    (mapped, each checkpointed): 16 times the steps costs about 4 times the memory with the
    checkpointed scans (blocks of sqrt(steps); measured 2.6), about 16 times without. Without
    them, each step keeps what `GasKernel.differentiable_step` saves: its input slots (a gas
    state and the indices), its permutation and its pairs' encounter variables, 1.42 gas states
    in float64 (measured 1.51 a step at 1024 steps; 10.7 when reverse mode stored every
    intermediate value of the step)."""

    def temp_bytes(n_steps, remat):
        def loss(P0, gamma):
            run = oj.evolve_gas(
                two_groups(n=256, P0=P0),
                system=oj.System(gamma=gamma),
                schedule=oj.Deterministic(),
                sampling=oj.Sampling(
                    key=jax.random.key(0), n_steps=n_steps, n_realizations=2, dtype=jnp.float64
                ),
                remat=remat,
            )
            return run.group_mean[:, -1, 0, 2].sum()

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        compiled = grad.lower(two_groups().P0, jnp.asarray(0.1)).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    state = 256 * 3 * 8
    short, long = temp_bytes(64, True), temp_bytes(1024, True)
    assert long / short < 5 and long < 200 * state, (short / state, long / state)
    plain_short, plain_long = temp_bytes(64, False), temp_bytes(1024, False)
    assert plain_long / plain_short > 12 and plain_long > 10 * long
    assert plain_long < 1.6 * 1024 * state, plain_long / state / 1024


def test_new_parameter_values_do_not_recompile():
    """gamma, mu, the initial states and the frequencies are traced: one compilation."""

    @jax.jit
    def final(gamma, mu, P0, omegas):
        return oj.evolve_gas(
            two_groups(P0=P0, omegas=omegas),
            system=oj.System(gamma=gamma, mu=mu),
            schedule=oj.Deterministic(),
            sampling=oj.Sampling(key=jax.random.key(0), n_steps=6, dtype=jnp.float64),
        ).final_state

    gas = two_groups()
    a = final(jnp.asarray(0.2), jnp.asarray(1.0), gas.P0, gas.omegas)
    b = final(jnp.asarray(0.3), jnp.asarray(2.0), 0.9 * gas.P0, 2 * gas.omegas)
    assert final._cache_size() == 1
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_bad_input_names_the_argument():
    gas = two_groups()
    options = dict(gamma=0.2, schedule=oj.Deterministic(), key=jax.random.key(0))
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        oj.evolve_gas(gas, **run_options(n_steps=0, **options))
    with pytest.raises(ValueError, match="n_steps=10 must be a multiple of .*SaveAt.every=3"):
        oj.evolve_gas(gas, **run_options(n_steps=10, save_every=3, **options))
    with pytest.raises(ValueError, match="gamma must be > 0"):
        oj.evolve_gas(gas, **run_options(n_steps=4, **{**options, "gamma": -1.0}))
    with pytest.raises(ValueError, match="not t_max"):
        oj.evolve_gas(gas, **run_options(t_max=2.0, **options))

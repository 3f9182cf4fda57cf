"""Statistics of the counter-based streams and of the random matchings of the gas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oile_jax._gas.kernel import GasKernel, Slots
from oile_jax._physics.system import System
from oile_jax._sampling import random as _random
from oile_jax._sampling.angles import Isotropic
from oile_jax._sampling.schedule import Stochastic


@pytest.mark.parametrize("n", [2, 3, 10, 64, 1000, 4097, 65536, 100_002])
def test_permutation_is_a_permutation(n):
    words = _random.step_words(jax.random.key(5), 7)
    perm = np.asarray(jax.jit(_random.permutation, static_argnums=1)(words, n))
    assert np.array_equal(np.sort(perm), np.arange(n))


def matchings(n, steps, seed=0):
    """The gas's own matchings over `steps` steps: its slots moved by `GasKernel.shuffle` step
    after step (each permutation composed with the previous layout), the pairs read from the
    slots `(0, k)`, `(1, k)`. Returns `(a, b)`, each `(steps, n // 2)`."""
    system = System(
        omegas=jnp.zeros(1), gamma=jnp.asarray(0.1), mu=jnp.asarray(1.0),
        B=jnp.asarray([0.0, 0.0, -1.0]), angles=Isotropic(),
    )  # fmt: skip
    model = GasKernel((n,), system, Stochastic(dt=0.05))
    key = jax.random.key(seed)

    def step(slots, s):
        slots = model.shuffle(slots, _random.step_words(key, s), s >= 0)
        return slots, slots.index

    run = jax.jit(lambda: jax.lax.scan(step, Slots.start(jnp.zeros((n, 3))), jnp.arange(steps)))
    index = np.asarray(run()[1])
    return index[:, 0], index[:, 1]


@pytest.mark.parametrize("n", [32, 34, 10])
def test_matchings_are_perfect_and_partners_uniform(n):
    """20000 matchings: every neutrino in exactly one pair, never with itself, and the pair
    counts are uniform over the N(N-1)/2 pairs: chi-square within 5 sd of its degrees of freedom
    (N = 32: 495 dof, sd 31.5). N = 32 = 4 x 8, N = 34 (radices 5 x 7, one value walked; as
    2 x 17 it failed by 37 sd), N = 10 (3 x 4, two values walked)."""
    steps = 20_000
    a, b = matchings(n, steps)
    both = np.concatenate([a, b], axis=1)
    assert np.all(np.sort(both, axis=1) == np.arange(n))
    assert np.all(a != b)
    counts = np.zeros((n, n))
    np.add.at(counts, (np.minimum(a, b).ravel(), np.maximum(a, b).ravel()), 1)
    observed = counts[np.triu_indices(n, 1)]
    expected = steps / (n - 1)
    chi2 = np.sum((observed - expected) ** 2 / expected)
    dof = len(observed) - 1
    assert abs(chi2 - dof) < 5 * np.sqrt(2 * dof), chi2
    # The partner of neutrino 0 alone: N - 1 cells, chi-square with N - 2 dof.
    partner = np.where(a == 0, b, np.where(b == 0, a, -1)).max(axis=1)
    hist = np.bincount(partner, minlength=n)[1:]
    chi2_0 = np.sum((hist - steps / (n - 1)) ** 2 / (steps / (n - 1)))
    assert chi2_0 < n - 2 + 5 * np.sqrt(2 * (n - 2)), chi2_0


def test_repeated_meetings_match_uniform_random_pairing():
    """N = 1000 neutrinos, 100 rounds: the number of pairs that meet at least twice against its
    expectation under independent uniformly random matchings (each pair meets in a round with
    probability q = 1/(N-1)); tolerance 4 Poisson standard errors (about 4 x 48)."""
    n, steps = 1000, 100
    a, b = matchings(n, steps, seed=1)
    lo, hi = np.minimum(a, b).ravel().astype(np.int64), np.maximum(a, b).ravel().astype(np.int64)
    _, per_pair = np.unique(lo * n + hi, return_counts=True)
    repeated = int(np.sum(per_pair >= 2))
    q = 1 / (n - 1)
    p_two = 1 - (1 - q) ** steps - steps * q * (1 - q) ** (steps - 1)
    expected = n * (n - 1) / 2 * p_two
    assert abs(repeated - expected) < 4 * np.sqrt(expected), (repeated, expected)
    # Meeting the same partner in the very next round is as rare as any other repeat.
    same_next = np.sum((a[1:, :, None] == a[:-1, None, :]) & (b[1:, :, None] == b[:-1, None, :]))
    same_next += np.sum((a[1:, :, None] == b[:-1, None, :]) & (b[1:, :, None] == a[:-1, None, :]))
    expected_next = (steps - 1) * (n / 2) * q
    assert abs(same_next - expected_next) < 4 * np.sqrt(expected_next) + 1, (
        same_next,
        expected_next,
    )


def feistel_structure(n, n_rounds=None, seed=3):
    """Standard scores of the structure a weak Feistel network leaves in one permutation of
    `[0, n)` (radices `a x b`, `x = l b + r`) and in the matching it makes from the identity
    arrangement (pairs `(perm[k], perm[k + n/2])`), each about N(0, 1) for a uniformly random
    permutation: pairs sharing a row or a column (binomial), the row and column differences of
    the pairs (chi-square against their exact distribution, over `a` and `b` cells), and the
    independence of input and output digits (64 x 64 contingency chi-squares)."""
    a, b = _random.radices(n)
    perm = np.asarray(_random.permutation(_random.step_words(jax.random.key(seed), 0), n, n_rounds))
    i, j = perm[: n // 2].astype(np.int64), perm[n // 2 :].astype(np.int64)
    pairs = n // 2
    scores = []
    for same, p in ((i // b == j // b, (b - 1) / (n - 1)), (i % b == j % b, (a - 1) / (n - 1))):
        scores.append((np.sum(same) - pairs * p) / np.sqrt(pairs * p * (1 - p)))
    for diff, cells, per in (((j - i) % b, b, a), ((j // b - i // b) % a, a, b)):
        # Given i, `per` partners j have each nonzero difference and `per - 1` have none.
        expected = pairs * (per - (np.arange(cells) == 0)) / (n - 1)
        chi2 = np.sum((np.bincount(diff, minlength=cells) - expected) ** 2 / expected)
        scores.append((chi2 - (cells - 1)) / np.sqrt(2 * (cells - 1)))
    s = np.arange(n)
    for x, y in ((s % b, perm % b), (s // b, perm // b), (s % b, perm // b), (s // b, perm % b)):
        table = np.bincount((x % 64) * 64 + y % 64, minlength=64 * 64).reshape(64, 64)
        expected = np.outer(table.sum(1), table.sum(0)) / n
        chi2 = np.sum((table - expected) ** 2 / expected)
        scores.append((chi2 - 63**2) / np.sqrt(2 * 63**2))
    return np.array(scores)


@pytest.mark.parametrize("n", [65_536, 1_000_000])
def test_large_domains_show_no_feistel_structure(n):
    """From N = 65536 (radices 256 x 256) on, the permutation has 8 rounds instead of 12: all
    eight structure scores within 4 standard deviations at the smallest such domain and at
    N = 1e6 (1000 x 1000). The scores can fail: with the same key, 4 rounds put the row
    differences of N = 1e6 9.9 sd off (10 to 187 sd over six keys), 2 rounds 1e7 sd."""
    assert _random.rounds(*_random.radices(n)) == 8
    scores = feistel_structure(n)
    assert np.all(np.abs(scores) < 4), scores
    if n == 1_000_000:
        assert np.max(np.abs(feistel_structure(n, n_rounds=4))) > 6


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_uniform_streams(dtype):
    """Moments, a 100-bin chi-square, lag-1 and cross-stream correlations of 1e6 draws, each
    within 4-5 standard errors of the uniform, independent values."""
    n = 1_000_000
    words = _random.step_words(jax.random.key(9), 3)
    u, v = (np.asarray(x, dtype=np.float64) for x in _random.pair_uniforms(words, n, dtype))
    assert u.min() >= 0 and u.max() < 1
    se_mean = np.sqrt(1 / 12 / n)
    assert abs(u.mean() - 0.5) < 4 * se_mean and abs(v.mean() - 0.5) < 4 * se_mean
    assert abs(u.var() - 1 / 12) < 4 * np.sqrt(1 / 180 / n)
    hist = np.bincount((u * 100).astype(int), minlength=100)
    chi2 = np.sum((hist - n / 100) ** 2 / (n / 100))
    assert abs(chi2 - 99) < 5 * np.sqrt(2 * 99), chi2
    for x, y in ((u[1:], u[:-1]), (u, v)):
        r = np.corrcoef(x, y)[0, 1]
        assert abs(r) < 4 / np.sqrt(n), r
    # A different step gives different numbers.
    w2 = _random.step_words(jax.random.key(9), 4)
    u2 = np.asarray(_random.pair_uniforms(w2, n, dtype)[0], dtype=np.float64)
    assert abs(np.corrcoef(u, u2)[0, 1]) < 4 / np.sqrt(n)

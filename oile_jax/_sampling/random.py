"""Counter-based random streams and random perfect matchings in O(N) elementwise work.

Why not `jax.random` for everything: on a CPU it is far too slow for a gas step's per-pair
numbers, and a random permutation by sorting far slower still (figures in
`experiments/README.md`, "Design measurements"). So each step draws a handful of 32-bit key
words from `jax.random` (from the caller's key), and expands them elementwise:

- `uniform(words, counter)`: two keyed rounds of the murmur3 32-bit finalizer (a bijective
  avalanche mixer) applied to a counter, giving 24-bit (float32) or 32-bit (float64) uniforms.
- `permutation(words, n)`: a keyed Feistel network on mixed radices (12 rounds, 8 from
  N = 65536 on, see `rounds`; round function = the keyed mixer reduced modulo the radix)
  permutes `[0, a b)`, with `a b >= n`, `a <= b` near `sqrt(n)` chosen to make `a b - n`
  smallest (0 for most round sizes: 1e6 = 1000 x 1000); values `>= n` are walked along their
  cycle until they fall below `n` (cycle walking), which gives a permutation of `[0, n)`
  elementwise: no sort, no prefix sum, no scatter. Rounds and balance matter on small domains
  (few rounds or an unbalanced `a b` leave the pair counts measurably non-uniform; the
  figures are in `experiments/README.md`); `tests/test_random.py` holds the chosen ones to
  uniform pairing.
- The gas moves its neutrinos to new slots by a fresh permutation every step and pairs slots
  `k`, `k + N/2` (`_gas.Slots`): a uniformly random perfect matching, independent of the past.

The statistics (uniformity, independence, partner uniformity, repeated meetings of the gas's
matchings) are tested in `tests/test_random.py`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, UInt32

_M1 = np.uint32(0x85EBCA6B)
_M2 = np.uint32(0xC2B2AE35)
_GOLDEN = np.uint32(0x9E3779B9)
FEISTEL_ROUNDS = 12
# Rounds on large domains (smaller radix at least `_LARGE_RADIX`), see `rounds`.
LARGE_DOMAIN_ROUNDS = 8
_LARGE_RADIX = 256
# Key words a step needs: Feistel round keys plus two for each uniform stream.
WORDS = FEISTEL_ROUNDS + 4


def realization_keys(key, n_realizations: int):
    """Realization `r` uses `fold_in(key, r)`: independent of how many realizations run."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_realizations))


def realization_streams(key_r):
    """The two streams of a gas realization's key `key_r`: `(velocity key, steps key)`, the
    halves of `split(key_r)`. Step `s` then draws `step_words(steps key, s)` (or, in a sharded
    gas, one set per shard from `fold_in(steps key, s)`)."""
    velocity_key, steps_key = jax.random.split(key_r)
    return velocity_key, steps_key


def step_words(key, step) -> UInt32[Array, " words"]:
    """The 32-bit key words of one step: `jax.random.bits(fold_in(key, step))`."""
    return jax.random.bits(jax.random.fold_in(key, step), (WORDS,), dtype=jnp.uint32)


def fmix32(x: UInt32[Array, "..."]) -> UInt32[Array, "..."]:
    """The murmur3 32-bit finalizer: a bijection of uint32 with full avalanche."""
    x = x ^ (x >> 16)
    x = x * _M1
    x = x ^ (x >> 13)
    x = x * _M2
    return x ^ (x >> 16)


def _mix(x, k0, k1):
    return fmix32(fmix32(x ^ k0) + k1 * _GOLDEN + k0)


def uniform(k0, k1, counter: UInt32[Array, "..."], dtype) -> Float[Array, "..."]:
    """Uniform numbers in `[0, 1)` from key words `k0`, `k1` and distinct counters."""
    return to_uniform(_mix(counter.astype(jnp.uint32), k0, k1), dtype)


def uniform_pair(k0, k1, counter: UInt32[Array, "..."], dtype) -> tuple[Array, Array]:
    """Two independent uniform numbers in `[0, 1)` per distinct counter, from three mixer
    calls (the counter mixed once, then with two keys) instead of the four of two `uniform`."""
    h = fmix32(counter.astype(jnp.uint32) ^ k0)
    first = fmix32(h + k1 * _GOLDEN + k0)
    second = fmix32(h + (k1 ^ _M1) * _GOLDEN + k0)
    return to_uniform(first, dtype), to_uniform(second, dtype)


def to_uniform(bits: UInt32[Array, "..."], dtype) -> Float[Array, "..."]:
    """Uniform numbers in `[0, 1)` from uniform 32-bit words: 24 bits (float32) or 32."""
    if jnp.finfo(dtype).bits == 32:
        return (bits >> 8).astype(dtype) * jnp.asarray(2.0**-24, dtype)
    return bits.astype(dtype) * jnp.asarray(2.0**-32, dtype)


def radices(n: int) -> tuple[int, int]:
    """The radices `(a, b)` of the permutation of `[0, n)`: `2 <= a <= b <= 2 a`, `a b >= n`,
    with the fewest values to walk (`a b - n`) and, among those, the most balanced."""
    root = math.isqrt(n)
    best = None
    for a in range(max(2, root), max(2, math.isqrt(n // 2)) - 1, -1):
        b = max(a, -(-n // a))
        if b > 2 * a:  # unbalanced radices mix poorly (N = 2p as 2 x p: 40 sd off uniform)
            continue
        if best is None or a * b < best[0] * best[1]:
            best = (a, b)
    return best


def rounds(a: int, b: int) -> int:
    """Feistel rounds for radices `a <= b`: 12 on small domains, 8 from `a = 256` (N = 65536) on.

    A weak network leaves structure in one permutation and in the matching it makes from the
    identity arrangement (pairs sharing a row or a column, row and column differences of the
    pairs, dependence of input and output digits; `tests/test_random.py`). At N = 65536 and 1e6
    the worst of these eight scores over six keys is 1e5 and 1e7 standard deviations with 2
    rounds, 3.7 to 32 and 10 to 187 with 4, at most 3.3 and 2.1 with 6, and at most 2.3 and 3.3
    with 8 (about the largest of 48 normal draws). The gas composes a fresh permutation
    every step, so each step's matching rests on these rounds. On small domains more rounds are
    needed (the pair counts of N = 32 need 8 on a power-of-two network); 12 are kept there."""
    return FEISTEL_ROUNDS if a < _LARGE_RADIX else LARGE_DOMAIN_ROUNDS


def _feistel(x, keys, a: int, b: int):
    """A keyed bijection of `[0, a b)`: `x = l b + r` with `l` in `Z_a`, `r` in `Z_b`; a round
    maps `(l, r)` to `(r, l + F(r) mod |l|)`, so the radices swap every round (an even number of
    rounds, one per key, brings them back)."""
    assert len(keys) % 2 == 0
    left, right = x // np.uint32(b), x % np.uint32(b)
    size = a  # the radix of `left`
    other = b
    for r in range(len(keys)):
        # `F(r)` in `[0, size)`: the top 16 bits of the mixed word scaled to `size <= 2^16`
        # (multiply and shift; `%` costs twice as much). The finalizer's last `x ^ (x >> 16)`
        # leaves the top 16 bits as they are, so it is left out.
        x = right ^ keys[r]
        x = (x ^ (x >> 16)) * _M1
        x = (x ^ (x >> 13)) * _M2
        f = ((x >> 16) * np.uint32(size)) >> 16
        new = left + f
        new = jnp.where(new >= np.uint32(size), new - np.uint32(size), new)
        left, right = right, new
        size, other = other, size
    return left * np.uint32(other) + right


def permutation(
    words: UInt32[Array, " words"], n: int, n_rounds: int | None = None
) -> Int[Array, " n"]:
    """A pseudo-random permutation of `[0, n)` keyed by `words` (O(n) elementwise work), with
    `n_rounds` Feistel rounds (even, at most `FEISTEL_ROUNDS`; default `rounds(a, b)`)."""
    if n < 2:
        return jnp.arange(n, dtype=jnp.int32)
    a, b = radices(n)
    if b > 2**16:  # the round function's range reduction needs radices <= 2^16
        raise ValueError(f"a permutation of n={n} values is not supported (n < 2^31)")
    keys = words[: n_rounds or rounds(a, b)]
    step = lambda x: _feistel(x, keys, a, b)
    values = step(jnp.arange(n, dtype=jnp.uint32))
    if a * b > n:
        # Cycle walking: a value outside [0, n) takes further steps along its cycle, which
        # returns to [0, n) (at its own start at the latest); about a b - n values need it.
        values = jax.lax.while_loop(
            lambda v: jnp.any(v >= np.uint32(n)),
            lambda v: jnp.where(v >= np.uint32(n), step(v), v),
            values,
        )
    return values.astype(jnp.int32)


def pair_uniforms(words, n_pairs: int, dtype) -> tuple[Array, Array]:
    """Two independent uniform streams of length `n_pairs` (meeting decision, angle)."""
    k = words[FEISTEL_ROUNDS:]
    counter = jnp.arange(n_pairs, dtype=jnp.uint32)
    return uniform(k[0], k[1], counter, dtype), uniform(k[2], k[3], counter, dtype)


def swap_uniforms(words, n_pairs: int, dtype) -> Array:
    """A third uniform stream of length `n_pairs` (whether a pair exchanges its directions,
    `Reemission` scattering): the meeting stream's keys at the counters `n_pairs ... 2 n_pairs
    - 1`, which it does not use, so the other streams (and every run without scattering) keep
    their numbers."""
    k = words[FEISTEL_ROUNDS:]
    counter = jnp.arange(n_pairs, 2 * n_pairs, dtype=jnp.uint32)
    return uniform(k[0], k[1], counter, dtype)

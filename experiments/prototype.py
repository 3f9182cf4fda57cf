"""The research prototype's algorithm, the baseline of the benchmarks: NumPy, one pair at a
time, 2x2 density matrices built into the 4x4 pair state, `U = cos c - i sin c SWAP`, both
partial traces. (Kept in the package as `oile_jax.bench.prototype_rate`, which `oile bench`
uses too.)"""

from oile_jax.bench import prototype_rate as gas_encounters_per_second

__all__ = ["gas_encounters_per_second"]

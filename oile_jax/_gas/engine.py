"""The engine interface: how the host driver (`driver.drive`) runs a gas, whatever its layout.

An engine is an `eqx.Module` holding a kernel (`kernel.GasKernel`), the run's key and its sizes;
its carry (the device state between chunks) is the engine's own business. Engines are final:
`DenseEngine` (`dense.py`), `ShardedEngine` (`sharded.py`) and `SweptEngine` (`sweep.py`, a
dense engine vmapped over parameter points, by composition)."""

import abc

import equinox as eqx
import numpy as np
from jaxtyping import PRNGKeyArray

from .._support.programs import stored_program
from .._support.sharding import to_host
from .kernel import GasKernel
from .model import Gas, realization_velocities


class AbstractGasEngine(eqx.Module):
    """Start, advance, save and restore a gas run; results come to the host in gas order.

    Checkpoint format (every engine): `state` `(..., N, 3)`, the carried vectors in slot order,
    and `index` `(..., N)`, the neutrino in each slot, so a resumed run continues the very same
    permutations with the very same numbers."""

    kernel: eqx.AbstractVar[GasKernel]
    gas: eqx.AbstractVar[Gas]
    key: eqx.AbstractVar[PRNGKeyArray]
    dtype: eqx.AbstractVar[np.dtype]

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """`(..., R, N, 3)`: the shape of the gas's state across every copy."""

    @property
    @abc.abstractmethod
    def devices(self) -> list:
        """The devices the gas lives on (for the memory check)."""

    @abc.abstractmethod
    def start(self):
        """`(carry, observables)` at `t = 0`."""

    @abc.abstractmethod
    def advance(self, carry, step0: int, size: int, save_every: int, save_state: bool):
        """`size * save_every` steps from global step `step0`: `(carry, observables per save,
        encounters per save, states per save in gas order or None)`."""

    @abc.abstractmethod
    def state(self, carry) -> np.ndarray:
        """The Bloch vectors in gas order, on the host."""

    @abc.abstractmethod
    def checkpoint(self, carry) -> dict:
        """The carry as host arrays (`state`, `index`)."""

    @abc.abstractmethod
    def restore(self, saved: dict):
        """The carry from a checkpoint's arrays."""

    def velocities(self) -> np.ndarray | None:
        """Every realization's velocities `(..., R, N, 3)` (fixed-velocities model), else None."""
        angles = self.kernel.angles
        if not angles.keeps_velocities:
            return None
        *lead, R, n, _ = self.shape
        v = to_host(_velocities(angles, self.key, R, n, self.dtype))
        return np.broadcast_to(v, tuple(lead) + v.shape)


_velocities = stored_program(realization_velocities)

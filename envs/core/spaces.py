"""Observation and action spaces that live in JAX (sampling, membership and clipping are jit-able).

Actions reach a task through :meth:`Space.clip`: ``Environment.step`` casts an action to its space's
dtype (floats are truncated towards zero, as ``astype`` does) and clips every entry into the space, so
all tasks treat an action outside the space alike, and a wrong shape raises ``ValueError`` while
tracing. :meth:`Space.check` refuses such actions instead (see ``wrappers.CheckedActions``).

Each space converts to its gymnasium twin with :meth:`Space.to_gymnasium`, which the gymnasium adapters
use. The attributes follow gymnax (``n``, ``shape``, ``dtype``, ``low``/``high``), so code written for
gymnax spaces reads these unchanged.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify


class Space:
    """Base class: ``sample(key)`` draws an element, ``contains(x)`` is a boolean JAX scalar."""

    shape: tuple[int, ...]
    dtype: Any

    def sample(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def contains(self, x: Any) -> jax.Array:
        raise NotImplementedError

    def clip(self, x: Any) -> Any:
        """``x`` cast to the space's dtype and clipped into it; ``ValueError`` (while tracing) for a
        wrong shape."""
        return jnp.clip(self._shaped(x), self._low(), self._high()).astype(self.dtype)

    def check(self, x: Any) -> None:
        """Refuse ``x`` unless it is an element of the space: a wrong shape (``ValueError``) or a float
        for an integer space (``TypeError``) while tracing; a value out of range through
        ``checkify.check``, which raises when called eagerly and must be functionalized with
        ``checkify.checkify`` under ``jit``."""
        x = self._shaped(x)
        if jnp.issubdtype(self.dtype, jnp.integer) and not jnp.issubdtype(x.dtype, jnp.integer):
            raise TypeError(f"an action of {self} must be an integer, got dtype {x.dtype}")
        checkify.check(self.contains(x), f"action {{x}} is outside the action space {self}", x=x)

    def _shaped(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            raise ValueError(f"an element of {self} has shape {self.shape}, got shape {x.shape}")
        return x

    def _low(self):
        raise NotImplementedError

    def _high(self):
        raise NotImplementedError

    def to_gymnasium(self) -> gymnasium.Space:
        raise NotImplementedError


class Discrete(Space):
    """Integers ``0 .. n-1``."""

    def __init__(self, n: int, dtype=jnp.int32):
        if int(n) < 1:
            raise ValueError(f"Discrete space needs n >= 1, got {n}")
        self.n = int(n)
        self.shape = ()
        self.dtype = dtype

    def sample(self, key):
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        return (x.shape == ()) & jnp.all((x >= 0) & (x < self.n) & (x == jnp.round(x)))

    def _low(self):
        return 0

    def _high(self):
        return self.n - 1

    def to_gymnasium(self):
        return gymnasium.spaces.Discrete(self.n)

    def __repr__(self):
        return f"Discrete({self.n})"


class MultiDiscrete(Space):
    """Vectors whose entry ``i`` is an integer in ``0 .. nvec[i]-1`` (several discrete choices at once)."""

    def __init__(self, nvec, dtype=jnp.int32):
        self.nvec = np.asarray(nvec, dtype=np.int64)
        if self.nvec.ndim != 1 or np.any(self.nvec < 1):
            raise ValueError(f"MultiDiscrete needs a 1-D vector of sizes >= 1, got {nvec}")
        self.shape = self.nvec.shape
        self.dtype = dtype

    def sample(self, key):
        u = jax.random.uniform(key, self.shape)
        return jnp.floor(u * jnp.asarray(self.nvec)).astype(self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)) & (x == jnp.round(x)))

    def _low(self):
        return 0

    def _high(self):
        return self.nvec - 1

    def to_gymnasium(self):
        return gymnasium.spaces.MultiDiscrete(self.nvec)

    def __repr__(self):
        return f"MultiDiscrete({self.nvec.tolist()})"


class Box(Space):
    """Arrays of a fixed shape with elementwise bounds ``low <= x <= high``."""

    def __init__(self, low, high, shape: tuple[int, ...], dtype=jnp.float32):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.low = np.broadcast_to(np.asarray(low, dtype=dtype), self.shape)
        self.high = np.broadcast_to(np.asarray(high, dtype=dtype), self.shape)

    def sample(self, key):
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(
                key, self.shape, jnp.asarray(self.low, jnp.int32), jnp.asarray(self.high, jnp.int32) + 1
            ).astype(self.dtype)
        low = jnp.where(jnp.isfinite(self.low), self.low, -1e6)
        high = jnp.where(jnp.isfinite(self.high), self.high, 1e6)
        return jax.random.uniform(key, self.shape, minval=low, maxval=high).astype(self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high))

    def _low(self):
        return self.low

    def _high(self):
        return self.high

    def to_gymnasium(self):
        return gymnasium.spaces.Box(self.low, self.high, self.shape, np.dtype(self.dtype))

    def __repr__(self):
        return f"Box({self.shape}, {np.dtype(self.dtype).name})"


class Dict(Space):
    """A dictionary of named sub-spaces."""

    def __init__(self, spaces: dict[str, Space]):
        self.spaces = dict(spaces)
        self.shape = ()
        self.dtype = None

    def sample(self, key):
        keys = jax.random.split(key, len(self.spaces))
        return {name: space.sample(k) for (name, space), k in zip(self.spaces.items(), keys)}

    def contains(self, x):
        if set(x) != set(self.spaces):
            return jnp.asarray(False)
        return jnp.all(jnp.stack([space.contains(x[name]) for name, space in self.spaces.items()]))

    def clip(self, x):
        self._same_keys(x)
        return {name: space.clip(x[name]) for name, space in self.spaces.items()}

    def check(self, x):
        self._same_keys(x)
        for name, space in self.spaces.items():
            space.check(x[name])

    def _same_keys(self, x):
        if not isinstance(x, dict) or set(x) != set(self.spaces):
            raise ValueError(f"an element of {self} is a dict with keys {sorted(self.spaces)}, got {x!r}")

    def to_gymnasium(self):
        return gymnasium.spaces.Dict({name: space.to_gymnasium() for name, space in self.spaces.items()})

    def __repr__(self):
        return f"Dict({self.spaces})"

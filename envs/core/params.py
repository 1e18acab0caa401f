"""Declared environment parameters: every field states its kind and accepted range where it is defined,
and one validator checks them all when ``make()`` builds an environment.

    @struct.dataclass
    class TMazeParams(EnvParams):
        corridor_length: int = param(10, ge=1, le=1 << 30)
        active: bool = param(False)
        step_penalty: float = param(1.0, ge=0.0)

The kind of a field is the type of its default:

* ``int``: an integer (a bool is not one), within the declared bounds and always within int32, the
  type JAX stores it as;
* ``float``: a real number (integers are accepted), finite as a float32, within the declared bounds;
* ``bool``: ``True`` or ``False``;
* ``str``: one of the declared ``choices``;
* ``tuple``: values an episode draws from (Memory Gym's curricula): an integer, or a non-empty tuple of
  integers, each within the bounds.

``static=True`` makes a field part of the compiled function instead of a traced value (array shapes
depend on it). ``why`` says, in the error message, why a bound is where it is (sizes are bounded so that
a state stays a few kilobytes). ``only`` names the variant a field belongs to (a tag of
:attr:`mnemax.envs.Environment.variant`, e.g. ``"endless"``); in other variants the field must keep its
default, since changing it would change nothing.

A subclass may give an inherited field a new plain default (``max_steps_in_episode: int = 1 << 30``); the
declaration of the nearest base class still applies.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np
from flax import struct

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_KEY = "mnemax_param"
_KINDS = (bool, int, float, str, tuple)  # bool first: it is also an int


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What a parameter accepts: its kind, bounds (``ge``/``gt``/``le``/``lt``), string choices, the
    variant it belongs to and the reason for its bounds."""

    kind: type
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    only: str | None = None
    why: str = ""

    def accepted(self) -> str:
        """The accepted values in words, e.g. ``an integer in [1, 256]``."""
        if self.kind is bool:
            return "True or False"
        if self.kind is str:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = {int: "an integer", float: "a finite number", tuple: "an integer"}[self.kind]
        text = f"{noun}{self._range()}"
        return f"{text}, or a non-empty tuple of them" if self.kind is tuple else text

    def _range(self) -> str:
        low, low_open = (self.gt, True) if self.gt is not None else (self.ge, False)
        high, high_open = (self.lt, True) if self.lt is not None else (self.le, False)
        if self.kind in (int, tuple):
            low = max(low, INT32_MIN) if low is not None else INT32_MIN
            high = min(high, INT32_MAX) if high is not None else INT32_MAX
        if low is not None and high is not None:
            return f" in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
        if low is not None:
            return f" {'>' if low_open else '>='} {_number(low)}"
        if high is not None:
            return f" {'<' if high_open else '<='} {_number(high)}"
        return ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is of this kind and within the bounds."""
        value = _python_scalar(value)
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and value in self.choices
        if self.kind is tuple:
            options = value if isinstance(value, tuple) else (value,)
            return len(options) > 0 and all(self._number_accepted(_python_scalar(v), int) for v in options)
        return self._number_accepted(value, self.kind)

    def _number_accepted(self, value: Any, kind: type) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if kind is int else numbers.Real):
            return False
        if kind is int and not INT32_MIN <= value <= INT32_MAX:  # JAX stores ints as int32
            return False
        if abs(value) > _FLOAT32_MAX or not math.isfinite(value):  # and floats as float32
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )


def param(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] = (),
    static: bool = False,
    only: str | None = None,
    why: str = "",
) -> Any:
    """A field of an ``EnvParams`` dataclass with its declaration (see the module docstring)."""
    kind = next(k for k in _KINDS if isinstance(default, k))
    declaration = Declaration(kind, ge, gt, le, lt, tuple(choices), only, why)
    if not declaration.accepts(default):
        raise ValueError(f"the default {default!r} is not {declaration.accepted()}")
    return struct.field(pytree_node=not static, default=default, metadata={_KEY: declaration})


def declaration(params_class: type, name: str) -> Declaration:
    """The declaration of field ``name``: its own, or that of the nearest base class that declares it."""
    for klass in params_class.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is not None and _KEY in field.metadata:
            return field.metadata[_KEY]
    raise TypeError(f"{params_class.__name__}.{name} is not declared with mnemax.envs.core.params.param()")


def check_params(params: Any, defaults: Any, variant: frozenset[str] = frozenset(), where: str = "") -> None:
    """Raise ``ValueError`` naming the first field of ``params`` that its declaration refuses.

    ``defaults`` are the environment's default parameters: a field that belongs to another variant
    (``only`` not in ``variant``) must keep its default value. ``where`` names the environment in that
    message.
    """
    for field in dataclasses.fields(params):
        spec = declaration(type(params), field.name)
        value = getattr(params, field.name)
        if not spec.accepts(value):
            why = f" ({spec.why})" if spec.why else ""
            raise ValueError(f"{field.name} must be {spec.accepted()}{why}, got {value!r}")
        if spec.only is not None and spec.only not in variant:
            default = getattr(defaults, field.name)
            if value != default:
                raise ValueError(
                    f"{field.name} applies to {spec.only} variants only; {where or type(params).__name__} "
                    f"keeps it at {default!r}, got {value!r}"
                )


def describe_params(params: Any) -> list[str]:
    """One line per field: name, value and what it accepts (for listings)."""
    lines = []
    for field in dataclasses.fields(params):
        spec = declaration(type(params), field.name)
        only = f"; {spec.only} only" if spec.only else ""
        lines.append(f"{field.name} = {_python_scalar(getattr(params, field.name))!r}  ({spec.accepted()}{only})")
    return lines


def _python_scalar(value: Any) -> Any:
    """A 0-d NumPy or JAX array as the Python scalar it holds; anything else unchanged."""
    if isinstance(value, np.generic) or (hasattr(value, "ndim") and getattr(value, "ndim", None) == 0):
        return np.asarray(value).item()
    return value


def _number(x: float) -> str:
    """Bounds as written in code: integers plainly, large powers of two as such."""
    if float(x).is_integer():
        x = int(x)
        if x >= 1 << 16 and x & (x - 1) == 0:
            return f"2**{x.bit_length() - 1}"
        return str(x)
    return f"{x:g}"

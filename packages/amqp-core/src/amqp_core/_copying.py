"""Deep copies of the small slotted objects that every connect copies.

``Connection`` deep-copies its parameters (as pika does, so that later changes to the caller's
objects do not leak in), and the parameters copy their credentials. ``copy.deepcopy``'s generic
way (``__reduce_ex__``, a state dict, then a rebuild) cost about 14 us per ``Parameters`` and 4
us per credentials object, a few percent of a whole connect on localhost. Copying field by field,
and sharing the immutable values instead of passing each through ``deepcopy``, gives the same
copy for a fraction of that.
"""

from __future__ import annotations

import copy
from typing import Any, Final, TypeVar

__all__ = ("deep_copy_fields",)

_T = TypeVar("_T")

# Values a deep copy may share: copy.deepcopy returns these very objects too.
_SHARED: Final = frozenset({type(None), bool, int, float, str, bytes})


def deep_copy_fields(original: _T, memo: dict[int, Any]) -> _T:
    """Return a deep copy of ``original``, an object whose fields are ``__slots__``.

    Meant as a ``__deepcopy__``. Fields never set stay unset; a subclass's own slots and
    ``__dict__`` are copied too.

    Args:
        original: the object to copy.
        memo: ``copy.deepcopy``'s memo, so that shared and circular references stay so.
    """
    cls = type(original)
    clone = cls.__new__(cls)
    memo[id(original)] = clone
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"  # a private name, as stored
            try:
                value = getattr(original, name)
            except AttributeError:
                continue
            if type(value) not in _SHARED:
                value = copy.deepcopy(value, memo)
            setattr(clone, name, value)
    state = getattr(original, "__dict__", None)
    if state:
        clone.__dict__.update(copy.deepcopy(state, memo))
    return clone

"""``replace``: a frozen value with some of its fields changed, the one way the model makes one.

It is ``attrs.evolve``'s contract, for less: the model's states (``Supervisor``, ``Server``, ``Row``) are each the
state before with a field or two changed, several times per step, and the exhaustive scope
(``impl/search/exhaustive.py``) makes millions of them. ``attrs.evolve`` looks the class's fields up and builds
keyword arguments each time; ``replace`` reads every field at once (an ``operator.attrgetter`` kept per class) and
passes them in order, about a third cheaper. ``tests/test_frozen.py`` holds it to ``attrs.evolve``'s results.
"""

from __future__ import annotations

import functools
import operator
from typing import Callable, TypeVar

import attrs

T = TypeVar("T")


@functools.cache
def _fields_in_order(cls: type) -> tuple[Callable[[object], tuple], dict[str, int]]:
    """What reads every field of ``cls``'s instances as one tuple, in ``__init__``'s order, and each field's place."""
    fields = attrs.fields(cls)
    if not all(f.init and not f.kw_only for f in fields):
        raise TypeError(f"replace takes classes whose every field is a positional argument of __init__, "
                        f"unlike {cls.__name__}'s")
    names = [f.name for f in fields]
    read_all = operator.attrgetter(*names) if len(names) > 1 else (lambda value: (getattr(value, names[0]),))
    return read_all, {name: place for place, name in enumerate(names)}


def replace(value: T, **changes) -> T:
    """``attrs.evolve(value, **changes)``: a new instance of ``value``'s class, with ``changes`` for those fields and
    every other field as ``value`` has it; the class's validators run on it. ``TypeError`` for a field it lacks."""
    read_all, place = _fields_in_order(type(value))
    fields = list(read_all(value))
    for name, new in changes.items():
        try:
            fields[place[name]] = new
        except KeyError:
            raise TypeError(f"{type(value).__name__} has no field {name!r}") from None
    return type(value)(*fields)

"""What a search will draw, known before it draws it: the tries a slow runtime can live ahead, several at once.

Under a derandomized Hypothesis profile (``ci``) a search's examples follow from its test function alone (Hypothesis
seeds it from the function's digest), so the same search run twice draws the same examples in the same order, as long
as every example passes: a failure makes it shrink, a rejected example makes it draw one more. ``drawn_by(search)``
runs the search once with a check that only records what it is handed, living nothing, and returns those runs: what
the real search will ask of the target, up to its first failure. A profile that is not derandomized (``dev``,
``nightly``) draws anew each time: nothing is known ahead.

What is drawn here is a forecast, nothing more: a run the real search asks for that was not foreseen (one it shrinks
to, one drawn after a rejection, a life that went another way) is lived when it is asked for. A wrong forecast costs
time, never a verdict; the real search, its statistics and its report are as they would be without it.
"""

from __future__ import annotations

from typing import Callable

from hypothesis import settings
from hypothesis.statistics import collector


def drawn_by(search: Callable[[Callable[[object], None]], None]) -> list:
    """The runs ``search(check)`` hands ``check`` when every check passes, in order (see the module); none under a
    profile that is not derandomized. Hypothesis's statistics are not collected for it: they are the real search's."""
    if not settings.default.derandomize:
        return []
    drawn: list = []
    with collector.with_value(None):
        search(drawn.append)
    return drawn

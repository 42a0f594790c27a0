"""The one way a run's text says a word is wrong: the word, where it stood, and the words allowed there.

The run languages (``model.scenario``, ``model.runtime``, ``model.coordinator``) take their words into frozen values
whose attrs validators hold the allowed words; a validator's own error carries the attribute and every option in
its repr, thousands of characters a reader has to decode. ``said_plainly`` says it in one line.
"""

from __future__ import annotations

import attrs


def said_plainly(error: Exception) -> str:
    """``error``'s message in one line: for an attrs ``in_`` validator's error, the field, the word given and the
    allowed words (``outcome 'RuntimeError' is not known; allowed: return, ValueError``); else its own message."""
    if len(error.args) == 4 and isinstance(error.args[1], attrs.Attribute):
        _, attribute, allowed, value = error.args
        name = attribute.name.replace("_", " ")
        if isinstance(allowed, (tuple, list, set, frozenset)):
            return f"{name} {value!r} is not known; allowed: {', '.join(map(str, allowed))}"
        return f"{name} {value!r} is not a {getattr(allowed, '__name__', allowed)}"
    return str(error)

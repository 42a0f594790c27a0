"""The flags that make this project's Go runtime (``runtimes/go``) a given runtime, trait by trait.

``runtimes/go`` keeps the coordinator contract (``model.coordinator.CONTRACT``) with no flag; each trait of a
``model.coordinator.CoordinatorRuntime`` that differs from the contract's is one flag (``runtimes/README.md``), so
every profile of ``model.sdks.PROFILES`` is a command line of it: ``go-runtime`` with ``flags(profile.runtime)``.
"""

from __future__ import annotations

import attrs

from model.coordinator import CONTRACT, FRAME_ID_REUSED, CoordinatorRuntime
from model.sdks import PROFILES

#: The exit of the Go runtime's escaping panic (``--panic-escapes``); it has no flag for another.
ESCAPE_EXIT = 1


def flags(runtime: CoordinatorRuntime) -> tuple[str, ...]:
    """The Go runtime's flags for ``runtime``, one per trait where it differs from the contract, in the fields' order;
    ``ValueError`` for a trait the Go runtime cannot take (an escaping panic's exit other than ``ESCAPE_EXIT``)."""
    if runtime.panic_escapes and runtime.escape_exit != ESCAPE_EXIT:
        raise ValueError(f"the Go runtime's escaping panic exits {ESCAPE_EXIT}, not {runtime.escape_exit}")
    out = []
    for name in (f.name for f in attrs.fields(CoordinatorRuntime)):
        value = getattr(runtime, name)
        if value == getattr(CONTRACT, name) or name == "escape_exit":
            continue
        out.append({
            "retries": "--no-retry",
            "fails_closed": f"--fail-closed={value}",
            "sigterm_waiting": f"--sigterm-waiting={value}",
            "sigterm_running": f"--sigterm-running={value}",
            "panic_escapes": "--panic-escapes",
            "frame_id": "--frame-id=reuse" if value == FRAME_ID_REUSED else "--frame-id=next",
            "retry_reason": "--retry-reason",
            "lookup_first": "--lookup-first",
        }[name])
    return tuple(out)


def profile_flags(name: str) -> str:
    """The Go runtime's flags for the profile called ``name``, as one string (empty for the contract)."""
    return " ".join(flags(PROFILES[name].runtime))

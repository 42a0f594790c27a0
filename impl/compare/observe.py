"""A worker that observes runs on one target of the release installed where it runs: the diff's other half.

    <python_for(spec)> -m impl.compare.observe --target airflow-inproc

The first line it writes is ``{"ready": {"target", "kind", "release"}}`` (or ``{"fatal": "..."}``
and exit 2 when the target cannot load). Then, for every line read on stdin — a run's text, as
``finalstate replay`` takes it and counterexamples print it — it writes one line of JSON:
``{"observation": {...}, "shown": {field: text}}`` (the observation's attrs fields as data, and
each field as a person reads it), or ``{"error": "..."}`` when the text does not parse or the
target raises. It reads until stdin closes. Only these lines go to stdout: anything Airflow
prints goes to stderr.

With ``FINALSTATE_MUTANT=MODULE=PATH`` (``impl.power.mutate``'s switch) the worker observes a
mutant of the supervisor instead of the installed module: the tests of ``diff`` use it as a
deliberately different implementation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import attrs

from impl.power.mutate import ENV as MUTANT_ENV

if os.environ.get(MUTANT_ENV):  # importing impl.power.mutate installed the mutant's loader; say so on stderr
    print(f"observe: {MUTANT_ENV}={os.environ[MUTANT_ENV]}", file=sys.stderr)


def shown(observation) -> dict[str, str]:
    """Each field of ``observation`` as text: sequences joined by commas (calls read ``name(state)->status``)."""
    def text(value) -> str:
        if isinstance(value, tuple):
            return ", ".join(map(str, value)) or "none"
        return str(value)
    return {f.name: text(getattr(observation, f.name)) for f in attrs.fields(type(observation))}


def load(target_name: str):
    """The target called ``target_name``, loaded for the first kind of run it takes (it says which)."""
    from impl.targets.kinds import KINDS
    from impl.targets.registry import WrongKindOfTarget, load_target

    for kind in KINDS:
        try:
            return load_target(target_name, kind)
        except WrongKindOfTarget:
            continue
    raise WrongKindOfTarget(f"{target_name} takes none of the kinds of run {', '.join(KINDS)}")


def observe(target, text: str) -> dict:
    """One line of the protocol: the target's observation of the run ``text``, or the error it met."""
    from impl.targets.kinds import KINDS

    try:
        observation = target.run(KINDS[target.kind].parse(text))
    except Exception as e:  # a run the target cannot play, or a crash of the target: the other side sees it
        return {"error": f"{type(e).__name__}: {e}"}
    return {"observation": attrs.asdict(observation), "shown": shown(observation)}


def _release() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-task-sdk")
    except PackageNotFoundError:
        return "(task-sdk not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impl.compare.observe", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True)
    args = parser.parse_args(argv)
    # Our protocol owns the real stdout; whatever else writes to fd 1 lands on stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def say(message: dict) -> None:
        out.write(json.dumps(message) + "\n")

    try:
        target = load(args.target)
    except Exception as e:
        say({"fatal": f"target {args.target!r} does not load on task-sdk {_release()}: {type(e).__name__}: {e}"})
        return 2
    try:
        say({"ready": {"target": target.name, "kind": target.kind, "release": _release()}})
        for line in sys.stdin:
            if line.strip():
                say(observe(target, line.strip()))
    finally:
        target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

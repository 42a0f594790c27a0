"""How hard the checker looks, and what it remembers: the Hypothesis profiles ``dev``, ``ci`` and ``nightly``.

Importing this module registers them and loads ``dev``; pytest's ``--hypothesis-profile`` and
``finalstate check --profile`` choose another.

``dev`` and ``nightly`` keep their counterexamples in one example database, a directory of the build
output (``build/hypothesis-examples`` in a checkout, else in the user's cache: ``impl.places``), so a failure found
once is tried first on every later run: a nightly job that keeps that directory between runs (a CI cache) replays yesterday's
counterexamples before it searches. ``ci`` is derandomized (the same examples every run), which
by Hypothesis's own rule means it remembers nothing. ``FINALSTATE_EXAMPLE_DB`` moves it (a path) or switches it
off (``none``).

*One search on many machines.* ``FINALSTATE_SHARED_EXAMPLE_DB=DIR`` adds a directory every run shares, on a file
system the machines share (NFS, a mounted volume, or a directory a CI job syncs from and back to its cache): the
database is then Hypothesis's ``MultiplexedDatabase`` of the local directory and the shared one, so each run
writes what it finds to both and reads both, and a counterexample one machine found is replayed by every other
before it searches. Both are ``DirectoryBasedExampleDatabase``: an example is a file of its own, written by an
atomic rename, which Hypothesis keeps safe for any number of processes writing at once, on one machine or many; it
needs nothing but a shared path. (``GitHubArtifactDatabase`` only reads, from a workflow's artifact, one way;
``RedisExampleDatabase`` needs a Redis server and the ``hypothesis[redis]`` extra; neither is needed here.)
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase

from impl.places import build_dir

PROFILES = ("dev", "ci", "nightly")
DEFAULT_EXAMPLE_DB = build_dir("hypothesis-examples")
# Hypothesis's own files (its caches of constants and Unicode data; by default .hypothesis/ in the working directory)
# are build output too.
set_hypothesis_home_dir(build_dir("hypothesis"))


def example_database():
    """The directory database ``FINALSTATE_EXAMPLE_DB`` names (default under ``build/``), or None for ``none``; with the
    shared one ``FINALSTATE_SHARED_EXAMPLE_DB`` names beside it where it is set (see the module)."""
    where = os.environ.get("FINALSTATE_EXAMPLE_DB", str(DEFAULT_EXAMPLE_DB))
    local = None if where.lower() == "none" else DirectoryBasedExampleDatabase(where)
    shared = os.environ.get("FINALSTATE_SHARED_EXAMPLE_DB")
    if not shared:
        return local
    return MultiplexedDatabase(*filter(None, (local, DirectoryBasedExampleDatabase(shared))))


#: No ``explain`` phase: the lines it reports as run only by failing examples are the checker's own (``impl/``,
#: ``model/``), never the code under check, which runs in another process or is installed; a report shows the run.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               phases=tuple(phase for phase in Phase if phase is not Phase.explain))
#: Every profile starts from Hypothesis's own ``default``, never from whatever is loaded: where a CI variable is set
#: (``CI``, ``GITHUB_ACTIONS``, …) Hypothesis loads its built-in ``ci`` profile at import, and a profile inheriting
#: from it would be derandomized and forget everything (a nightly job that never searches anew nor replays).
_BASE = settings.get_profile("default")
#: While developing: quick and random; remembers.
settings.register_profile("dev", _BASE, max_examples=200, stateful_step_count=30, database=example_database(),
                          **_COMMON)
#: CI and the test command: the same examples every run, bounded.
settings.register_profile("ci", _BASE, max_examples=300, stateful_step_count=30, derandomize=True, database=None,
                          print_blob=False, **_COMMON)
#: The long search; remembers.
settings.register_profile("nightly", _BASE, max_examples=20_000, stateful_step_count=50, database=example_database(),
                          **_COMMON)
settings.load_profile("dev")

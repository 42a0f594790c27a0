"""How hard the checker looks: the Hypothesis profiles ``dev``, ``ci`` and ``nightly``.

Importing this module registers them and loads ``dev``; pytest's ``--hypothesis-profile`` and
``finalstate check --profile`` choose another.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROFILES = ("dev", "ci", "nightly")

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: While developing: quick, random, remembers failures in .hypothesis/ to replay them first.
settings.register_profile("dev", max_examples=200, stateful_step_count=30, **_COMMON)
#: Nightly CI and the test command: fixed seed, bounded, nothing remembered between runs.
settings.register_profile("ci", max_examples=300, stateful_step_count=30, derandomize=True, database=None,
                          print_blob=False, **_COMMON)
#: The long search.
settings.register_profile("nightly", max_examples=20_000, stateful_step_count=50, **_COMMON)
settings.load_profile("dev")

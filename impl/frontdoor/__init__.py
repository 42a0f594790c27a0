"""The front door: the ``finalstate`` CLI, the target registry, reports, the known findings, the search.

``registry`` is the one table of targets; ``findings`` the registered findings (what the pinned
release is known to break); ``scenarios`` what the checker generates; ``report`` how a checked
scenario reads; ``confirm`` a failure found on the model server re-run on the real one;
``search`` the findings search; ``cli`` the commands. May import: ``model``;
the target rooms only through ``registry``, by name, when a target is asked for.
"""

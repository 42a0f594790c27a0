"""The search: what the checker generates, how it lives and judges each run, and how a checked run reads.

``scenarios`` the Hypothesis machines and strategies of every kind of run; ``exhaustive`` every run of a
kind up to a small size; ``lifecycle`` the pairings of a runtime side and a supervisor side and the machine
that lives a task instance's tries; ``report`` a violation's or a disagreement's reading and replay command;
``profiles`` the Hypothesis profiles (dev, ci, nightly); ``timing`` the pytest plugin for long runs; ``ahead`` what a
search will draw, lived ahead by a slow runtime's pool.

May import: ``model``, ``places``, ``releases``, ``targets``, ``catalogue``; a binding room only through
``targets.registry``, by name.
"""

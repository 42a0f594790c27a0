"""Across releases: the same runs on two implementations, and every known finding on every release.

``observe`` is a worker observing runs on one target of the release installed where it runs; ``diff``
(``finalstate diff A B``) runs the same generated runs on two releases and shrinks every change; ``matrix``
(``finalstate matrix``) checks every finding on every release, keeping each cell's result in ``store``.

May import: every room but the front door. The CLI loads these only for their commands.
"""

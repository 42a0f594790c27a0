"""The targets: what a target is, the one table of them, and the kinds of run each checks.

``registry`` names every target, loads its room only when asked for (so ``--target model`` needs no
Airflow) and says which model it must agree with; ``kinds`` the kinds of run (supervisor, runtime,
coordinator, life) with each one's text form and invariants.

May import: ``model``, ``places``, ``releases``. The binding rooms import ``registry`` (``Target``); the
registry names them as strings and imports one only when its target is asked for.
"""

"""The export: each known finding as a pytest module an Airflow maintainer can paste into Airflow's own suite.

``writer`` writes the modules (``finalstate export``) and checks them on every release; ``harness`` is the
code each module carries (never imported by finalstate: it imports Airflow, pytest and the standard library).

May import: ``model``, ``places``, ``wire``, ``releases``, ``targets``, ``catalogue``, ``search``.
"""

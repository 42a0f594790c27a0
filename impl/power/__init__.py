"""The power tools: how much of the real terminal-state code the checker reaches, and how many of its mutants it kills.

``coverage`` (``finalstate coverage``) measures branch coverage with coverage.py while the checker runs;
``mutate`` (``finalstate mutate``) runs the checker against mutants of the real supervisor's code.

May import: ``model``, ``places``, ``releases``, ``targets``, ``catalogue``, ``search``.
"""

"""Finding: searching for findings and establishing them on the real server, and the recall on upstream reports.

``search`` (``finalstate findings``) runs each property, sorts what it meets into the known findings and
the new ones, and writes FINDINGS.md; ``confirm`` re-runs a counterexample found on the model server on
the real Execution API; ``corpus`` (``finalstate corpus``) replays the reports of apache/airflow's tracker
and says which the checker catches.

May import: every room below the compare room and the front door.
"""

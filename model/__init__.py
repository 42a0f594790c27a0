"""finalstate's executable model of Airflow's task terminal-state logic.

Pure: attrs and the standard library only, no I/O, no Airflow import. Import the pieces
as a specification, e.g. ``from model.supervisor import final_state, run``.
"""

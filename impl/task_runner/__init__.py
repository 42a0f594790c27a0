"""Target ``airflow-task-runner``: the real Python task runner (``task_runner.main``) on one generated try.

May import: ``model``, and Airflow.
"""

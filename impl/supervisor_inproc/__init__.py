"""Target ``airflow-inproc``: the real ``ActivitySubprocess`` of the installed task-sdk, driven in process.

May import: ``model``, ``wire``, ``server``, and Airflow.
"""

"""Releases of the system under check: one environment per task-sdk release, and what differs between them.

``environments`` knows the task-sdk releases on PyPI (each with the apache-airflow-core it
installs with) and builds, once and cached under ``build/envs/``, a virtual environment holding
this checkout (editable) with one release, or with a source checkout of apache/airflow;
``adapters`` holds one small function or value per private API that differs between releases,
each named by the release that introduced the difference and selected by the installed version.

May import: ``model``, ``places`` and ``wire`` (and the standard library, attrs, Airflow in ``adapters``: the
requests wire of each release). ``environments`` imports no Airflow. Comparing releases is the ``compare`` room's.
"""

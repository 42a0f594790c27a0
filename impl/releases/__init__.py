"""Releases of the system under check: one environment per task-sdk release, and what differs between them.

``environments`` knows the task-sdk releases on PyPI (each with the apache-airflow-core it
installs with) and builds, once and cached under ``build/envs/``, a virtual environment holding
this checkout (editable) with one release, or with a source checkout of apache/airflow;
``adapters`` holds one small function or value per private API that differs between releases,
each named by the release that introduced the difference and selected by the installed version.

May import: ``model`` (and the standard library, attrs, Airflow in ``adapters``, and ``wire``'s codec there: the
requests wire of each release). The bindings
import ``adapters``; ``frontdoor`` imports ``environments``. ``environments`` imports no Airflow.

Across releases, on top of the front door: ``observe`` (a worker observing runs on one target of
the release installed where it runs), ``diff`` (``finalstate diff A B``: the same generated runs on
two releases, every change shrunk) and ``matrix`` (``finalstate matrix``: every finding on every
release). These three may import ``frontdoor`` (its kinds, registry, generators and findings); the
CLI loads them only for those commands.
"""

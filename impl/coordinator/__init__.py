"""Coordinator-mode runtimes of any language under the real supervisor: ``reference-runtime`` and ``cmd:``.

A runtime is launched as the coordinator convention says (``--comm``/``--logs``) by the real
``_PopenActivitySubprocess``, through ``supervisor_process.supervise``. May import: ``model``,
``wire``, ``supervisor_process``, and Airflow.
"""

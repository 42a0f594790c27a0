"""The real coordinator supervisor (``_PopenActivitySubprocess``) over real processes and sockets.

``supervise`` holds the one supervision of a runtime command that every real-process target
uses (with kill, reap and socket close on every path); ``helper`` the process the attempts run
in (a private network namespace where it can have one); ``census`` what a process holds, for
leak checks; ``target`` the ``airflow-process`` target (the scripted runtime); ``real_server``
the real Execution API over loopback HTTP for ``--server airflow``. May import:
``model``, ``wire``, ``server``, and Airflow.
"""

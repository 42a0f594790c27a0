"""The server side: what answers the supervisor's Execution API calls.

``model_api`` serves ``model.server`` over real HTTP (for supervisors in real processes);
``model_client`` answers from it in process, in the shape of Airflow's ``Client``.
``airflow_api`` is the real Execution API app of the installed apache-airflow-core on a real
database (SQLite, or PostgreSQL through ``postgres``), ``airflow_attempt`` one attempt on a real
row, ``conformance`` the request sequences that hold ``model.server`` to the real app. May import:
``model``, ``wire``.
"""

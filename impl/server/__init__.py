"""The server side: what answers the supervisor's Execution API calls.

``model_api`` serves ``model.server`` over real HTTP (for supervisors in real processes);
``model_client`` answers from it in process, in the shape of Airflow's ``Client``. May import:
``model``, ``wire``.
"""

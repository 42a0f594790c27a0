"""The wire between supervisor and runtime: Airflow's frame format and the runtimes the checker scripts.

``codec`` encodes and decodes frames byte-compatibly with Airflow's msgspec encoder and
validates bodies against Airflow's published ``schema.json``; ``scripted_runtime`` is a
stdlib-and-msgpack runtime that performs a script of frames, and also serves as the fork
server; ``launcher`` builds ``launcher.c``, the tiny program that hands its sockets to that
fork server. May import: ``model``. Imports no Airflow module at import time.
"""

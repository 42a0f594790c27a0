"""Bindings from finalstate's runs to the real implementations, and the rooms that search, judge and report with them.

Rooms from the bottom up; a room may import the rooms on its own level and below, never one above
(``tests/test_architecture.py`` holds the order):

=====================  ==============================================================================
room                   what it holds
=====================  ==============================================================================
``places``, ``wire``   where finalstate's files lie and build output goes (``build/`` in a checkout, else
                       the user's cache); the frame format: codec, the scripted runtime, its launcher
``releases``           the task-sdk releases: one environment each, and an adapter per private API that
                       differs between them
``targets``            what a target is, the one table of them (loaded by name), the kinds of run
``server``             what answers the supervisor's Execution API calls (the model's, Airflow's own)
``supervisor_inproc``  the real ``ActivitySubprocess``, driven in process
``supervisor_process`` the real coordinator supervisor over real processes
``task_runner``        the real Python task runner (``task_runner.main``)
``coordinator``        coordinator-mode runtimes of any language under the real supervisor
``catalogue``          the known findings and their signatures, the SDK profiles
``search``             what is generated, lived and judged: machines, scopes, lives, reports
``export``             each known finding as a pytest module for Airflow's own suite
``power``              coverage and mutation score of the checker on the real code
``findings``           the findings search and FINDINGS.md, confirmation on the real server, the corpus
``compare``            the same runs across releases: diff, matrix
``frontdoor``          the ``finalstate`` command line, and nothing else
=====================  ==============================================================================

Arrows point one way: ``properties`` and ``tests`` import ``impl``; ``impl`` imports ``model``;
nothing here imports ``properties``. Every writer of build output asks ``places`` where
(``places.build_dir``): never inside the installed package. The registry loads a target's room only when that
target is asked for, so ``--target model`` needs no Airflow.
"""

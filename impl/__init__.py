"""Bindings from finalstate's scenarios to the real implementations, one room per system bound.

=====================  ==========================================================  ==================
room                   binds                                                       may import
=====================  ==========================================================  ==================
``wire``               the frame format: codec, the scripted runtime, its launcher  model
``server``             what answers the supervisor's Execution API calls            model, wire
``supervisor_inproc``  the real ``ActivitySubprocess``, driven in process           model, wire, server
``supervisor_process`` the real coordinator supervisor over real processes          model, wire, server
``task_runner``        the real Python task runner (``task_runner.main``)           model
``coordinator``        coordinator-mode runtimes of any language, under the real    model, wire,
                       supervisor (the reference runtime, any ``cmd:`` program)     supervisor_process
``frontdoor``          the CLI, the target registry, reports, known findings and    model; the other
                       the findings search                                          rooms by name only
``places`` (a module)  where finalstate's own files lie and where build output      the standard
                       goes (``build/`` in a checkout, else the user's cache)       library, platformdirs
=====================  ==========================================================  ==================

Arrows point one way: ``properties`` and ``tests`` import ``impl``; ``impl`` imports ``model``;
nothing here imports ``properties``. Every room may import ``places``, and every writer of build
output asks it where (``places.build_dir``): never inside the installed package. The registry loads a target's room only when that target
is asked for, so ``--target model`` needs no Airflow.
"""

"""A Work Queue worker (like CCTools' ``work_queue_worker``): connects to a manager, runs its tasks.

Run it as ``coffea-wq worker HOST PORT`` or ``python -m coffea_wq.worker HOST PORT``; see
``docs/worker.md``. Modules: ``options`` (flags), ``main`` (connect/reconnect/lookup loop),
``session`` (one manager connection), ``tasks`` (admission and resource accounting),
``execution`` (processes and limits), ``sandbox`` and ``cache`` (files), ``resources``
(measuring the machine), ``lookup`` (finding managers by name through a catalog).
"""

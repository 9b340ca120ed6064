"""The Work Queue manager that runs inside the user's process (its API: ``coffea_wq.work_queue``).

- ``server``: the background thread's ``selectors`` loop (sockets, wake-ups, keepalive);
- ``core``: dispatch, results, retrieval, requeue on worker loss, cancel, exhaustion retries;
- ``queue``/``task``: the task queue, task specs and counters;
- ``workers``: what is known about each connected peer; ``transfers``: files out and back;
- ``listener``: port ranges; ``status``/``stats``: status answers, catalog record, ``stats``;
- ``logs``/``advertise``/``monitoring``: transactions/stats/debug logs, catalog, resource monitor.
"""

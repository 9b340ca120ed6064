"""A live view of a run in the browser, and Prometheus metrics (docs/dashboard.md).

* ``snapshot``: the read-only state the page and ``/metrics`` show (dataclasses, JSON).
* ``tracker``: what the executor's task loop reports (progress per dataset, failures, measurements).
* ``sources``: reading a manager's status records, in-process or by status queries.
* ``build``: ``RunView``, snapshots from a source and a tracker.
* ``metrics``: the Prometheus collector; ``auth``: the password; ``server``: the HTTP server.
* ``live``: the executor's ``dashboard=`` option; ``coffea-wq dashboard`` is in cli/dashboard.py.
"""

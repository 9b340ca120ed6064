"""The coffea side of coffea-wq's tasks: what a task carries, runs and sends back.

* ``task_script``: the script shipped with every task (``coffea_wq_task.py``); it runs under any
  ``python3`` that has coffea, cloudpickle and lz4, without coffea_wq installed.
* ``staging``: the manager-side directory holding the function file, work items and outputs,
  and the construction of one Work Queue task per work item.
* ``outcome``: decoding a task's output file (a result or a remote error record).
* ``errors``: the exceptions a user meets, naming dataset, file and entry range.
* ``splitting``: cutting a WorkItem into smaller ones (split on exhaustion).
* ``backend``: which Work Queue implementation the executor drives.
* ``local_workers``: the worker processes an executor starts on 127.0.0.1.
* ``factory_pool``: the ``factory={...}`` option, a ``coffea_wq.Factory`` serving the run's manager.
* ``session``: the manager, staging area and local workers that must outlive ``copy()``.
* ``task_loop``: submit, wait, retry, split and accumulate until every item is done.
* ``progress``: the rich progress bars.
"""

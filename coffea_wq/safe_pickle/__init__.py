"""Reading what peers send without letting them run code here: the unpickling allow-list.

Modules (standard library only, so ``allow_list.py`` can be shipped to workers as a standalone file):

* ``allow_list``: ``ResultPolicy`` and ``load_result``, the restricted unpickler every result from
  the network goes through (the coffea executor's results and ``PythonTask.output`` alike), and
  ``user_modules_of``, the user's own modules a function refers to;
* ``remote_exceptions``: a worker's exception rebuilt from plain data, never from a pickle.

Shared by ``coffea_wq.executor`` and ``coffea_wq.work_queue``, which must not import each other's
insides (the work_queue package does not need coffea). See README, "Security".
"""

"""Keeping pools of Work Queue workers alive on local processes, Slurm, HTCondor and SGE.

- ``config``: the settings (``FactoryConfig``) and the JSON file re-read every cycle;
- ``policy``: how many workers a cycle submits or removes (pure);
- ``managers``: reading the managers' status (direct query or catalog);
- ``worker_command``: the command a job runs to become a worker, and the scratch directory;
- ``backends``: one module per batch system behind ``BatchBackend`` (submit N, list, remove);
- ``loop``: the cycle itself (``FactoryLoop``);
- ``api``: ``coffea_wq.Factory``, the context manager around a run.
"""

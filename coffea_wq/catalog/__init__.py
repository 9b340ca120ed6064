"""The catalog: where managers advertise themselves and workers and status tools find them.

- :mod:`coffea_wq.catalog.client`: the catalog address, advertising a manager, querying and
  finding managers by name (what ``work_queue_worker -M`` does).
- :mod:`coffea_wq.catalog.query`: the direct status protocol (``work_queue_status HOST PORT``).
- :mod:`coffea_wq.catalog.server`: a catalog server compatible with CCTools' ``catalog_server``.
"""

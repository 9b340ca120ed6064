"""What one task of an executor call carries and how a call's tasks run (see ``coffea_wq.executor``)."""

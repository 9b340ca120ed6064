"""What a task sends back: outcomes, checkpoints, the reduction ledger and tree.

The unpickling allow-list they are read through is ``coffea_wq.safe_pickle``'s.
"""

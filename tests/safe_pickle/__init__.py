"""Tests of coffea_wq/safe_pickle/: the unpickling allow-list and remote exceptions."""

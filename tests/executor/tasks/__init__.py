"""Tests of coffea_wq/executor/tasks/: chunk sizes, splitting, culprits."""

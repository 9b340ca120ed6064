"""Tests of coffea_wq/executor/results/: result checks and checkpoints."""

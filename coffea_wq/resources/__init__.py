"""Resources: what tasks declare and use, measuring it, enforcing it, and sizing allocations."""

"""Where an executor call's workers come from: local processes, a factory, and the peers refused."""

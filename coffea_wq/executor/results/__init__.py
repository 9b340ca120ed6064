"""What a task sends back: outcomes, the unpickling allow-list, remote errors, checkpoints."""

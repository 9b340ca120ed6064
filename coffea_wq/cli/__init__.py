"""The `coffea-wq` command: one thin subcommand module per part of the package."""

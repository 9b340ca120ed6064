"""``coffea-wq env build|list|clean``: a thin shell over ``envtools.cli``."""

from envtools.cli import configure, run

__all__ = ["configure", "run"]

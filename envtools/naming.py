"""Tarball names: ``env_<spec-hash>_<commit>.tar.gz``.

The spec hash covers what is installed (distribution names and versions, the Python version, the
machine, the packing format); the commit covers the editable sources (see ``gitstate``). Together
they are a content key: the worker side caches and unpacks by name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from envtools.gitstate import RepoState
from envtools.source import SourceEnvironment

# Bump when the tarball layout changes, so old tarballs are not reused.
PACK_FORMAT_VERSION = 1
HEAD = "HEAD"
NO_GIT = "nogit"
_NAME = re.compile(r"^env_(?P<spec>[0-9a-f]+)_(?P<commit>[0-9a-f]+|HEAD|nogit)\.tar\.gz$")


@dataclass(frozen=True)
class TarballName:
    """The two parts of a tarball name."""

    spec_hash: str
    commit: str

    @property
    def filename(self) -> str:
        return f"env_{self.spec_hash}_{self.commit}.tar.gz"


def spec_hash(env: SourceEnvironment) -> str:
    """A short hash of what is installed in ``env`` (not of the editable sources)."""
    spec = {
        "format": PACK_FORMAT_VERSION,
        "kind": env.kind.value,
        "python": env.python_version,
        "machine": env.machine,
        "system_site_packages": env.system_site_packages,
        "distributions": list(env.distributions),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def combined_commit(states: Sequence[RepoState]) -> str:
    """``HEAD`` if any watched path is uncommitted; else the commit (or a hash of several).

    With no repository to watch the environment is named ``nogit``.
    """
    if not states:
        return NO_GIT
    if not all(state.is_clean for state in states):
        return HEAD
    commits = sorted({state.commit or "" for state in states})
    if len(commits) == 1:
        return commits[0][:12]
    return hashlib.sha256("\n".join(commits).encode()).hexdigest()[:12]


def parse_tarball_name(filename: str) -> TarballName | None:
    """The parts of an ``env_<spec>_<commit>.tar.gz`` name, or ``None`` for any other file."""
    match = _NAME.match(filename)
    return TarballName(match["spec"], match["commit"]) if match else None

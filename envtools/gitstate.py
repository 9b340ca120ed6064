"""The git state that names an environment: the last commit touching the watched paths, and edits.

A repository contributes the commit that last changed its watched paths (``git log -1 -- PATHS``),
not ``HEAD``: committing an analysis script outside the watched paths must not force a rebuild.
Uncommitted changes to tracked files in the watched paths (staged or not) make the state dirty.
Untracked files are ignored, like topcoffea does, because building a package from its source
creates untracked ``build/`` and ``*.egg-info`` directories that would otherwise make every
source tree dirty forever.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RepoState:
    """The state of one directory's watched paths.

    ``top`` is the repository's top directory (``None`` when ``directory`` is not in a git
    repository or git failed: ``problem`` says why), ``commit`` the last commit touching the
    watched paths, ``dirty`` the watched files with uncommitted changes.
    """

    directory: Path
    pathspecs: tuple[str, ...]
    top: Path | None
    commit: str | None
    dirty: tuple[str, ...]
    problem: str | None = None

    @property
    def is_clean(self) -> bool:
        """True when the watched paths are committed and nothing in them is modified."""
        return self.problem is None and self.commit is not None and not self.dirty

    def describe_changes(self) -> str:
        """One line saying why this repository's environment must be rebuilt."""
        if self.problem:
            return f"{self.directory}: {self.problem}"
        if self.commit is None:
            return f"{self.top}: no commit touches {', '.join(self.pathspecs)}"
        shown = ", ".join(self.dirty[:5]) + (f" and {len(self.dirty) - 5} more" if len(self.dirty) > 5 else "")
        return f"{self.top}: uncommitted changes in {shown}"


def _git(directory: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"git {' '.join(args)} exited with {result.returncode}")
    return result.stdout


def repository_top(directory: Path) -> Path | None:
    """The top directory of the git repository containing ``directory``, or ``None``."""
    try:
        return Path(_git(directory, "rev-parse", "--show-toplevel").strip()).resolve()
    except (RuntimeError, OSError):
        return None


def top_pathspecs(top: Path, directory: Path, paths: Sequence[str]) -> tuple[str, ...]:
    """Turn paths relative to ``directory`` into ``:(top)``-anchored git pathspecs.

    An empty ``paths`` watches ``directory`` itself. Paths that already use git's magic
    (``:(top)...``) are kept as they are.
    """
    specs = []
    for path in paths or ("",):
        if path.startswith(":"):
            specs.append(path)
            continue
        absolute = (directory / path).resolve()
        try:
            relative = absolute.relative_to(top)
        except ValueError as exc:
            raise ValueError(f"watched path {path!r} is outside the git repository {top}") from exc
        specs.append(":(top)" if str(relative) == "." else f":(top){relative.as_posix()}")
    return tuple(dict.fromkeys(specs))


def repo_state(directory: Path, paths: Sequence[str] = ()) -> RepoState:
    """The last commit touching ``paths`` (relative to ``directory``) and their uncommitted edits.

    Example::

        state = repo_state(Path("."), ["mypkg", "setup.py"])
        state.commit, state.dirty
    """
    directory = directory.resolve()
    top = repository_top(directory)
    if top is None:
        return RepoState(directory, tuple(paths), None, None, (), "not in a git repository")
    specs = top_pathspecs(top, directory, paths)
    try:
        commit = _git(top, "log", "-1", "--format=%H", "--", *specs).strip() or None
        status = _git(top, "status", "--porcelain", "--untracked-files=no", "--", *specs)
    except (RuntimeError, OSError) as exc:
        return RepoState(directory, specs, top, None, (), f"git failed: {exc}")
    dirty = tuple(line[3:] for line in status.splitlines() if line.strip())
    return RepoState(directory, specs, top, commit, dirty)


def merge_watches(watches: Sequence[tuple[Path, Sequence[str]]]) -> list[tuple[Path, tuple[str, ...]]]:
    """Group ``(directory, paths)`` watches by repository so each repository is asked once.

    Directories outside any repository stay on their own (their state will say so).
    """
    grouped: dict[Path, list[str]] = {}
    for directory, paths in watches:
        directory = directory.resolve()
        top = repository_top(directory)
        if top is None:
            grouped.setdefault(directory, []).extend(paths)
            continue
        grouped.setdefault(top, []).extend(top_pathspecs(top, directory, paths))
    return [(key, tuple(dict.fromkeys(specs))) for key, specs in grouped.items()]

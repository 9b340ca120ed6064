"""``get_environment()``: the tarball of the running environment, built once per commit.

The walk: describe the environment (files only, no pip) -> name it (spec hash + commit of the
watched paths) -> return the cached tarball, or build it under a lock into a temporary file and
rename it -> keep the newest ``keep`` tarballs -> mark the returned one in use by this process.
"""

from __future__ import annotations

import datetime
import enum
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from envtools.cache import atomic_output, build_lock, clean_cache, mark_in_use
from envtools.editables import stage_editables
from envtools.gitstate import RepoState, merge_watches, repo_state
from envtools.naming import HEAD, TarballName, combined_commit, spec_hash
from envtools.source import EnvKind, SourceEnvironment, describe_environment

log = logging.getLogger(__name__)


class Unstaged(enum.Enum):
    """What to do when watched paths have uncommitted changes (the tarball is then named ``HEAD``)."""

    REBUILD = "rebuild"  # rebuild on every call, so workers get the code as it is now
    FAIL = "fail"  # raise UncommittedChangesError: "commit first"
    REUSE = "reuse"  # reuse an existing HEAD tarball, even if it holds older edits


class UncommittedChangesError(RuntimeError):
    """Raised with ``unstaged="fail"`` when watched paths have uncommitted changes."""


class UncommittedChangesWarning(UserWarning):
    """Warns that the environment is rebuilt on every call because of uncommitted changes."""


def watched_states(env: SourceEnvironment, analysis_dir: Path, watch: Sequence[str]) -> list[RepoState]:
    """The git state of the analysis ``watch`` paths and of each editable package's directory."""
    watches: list[tuple[Path, Sequence[str]]] = [(e.location, ()) for e in env.editables]
    if watch:
        watches.append((analysis_dir, tuple(watch)))
    return [repo_state(directory, specs) for directory, specs in merge_watches(watches)]


def plan_name(env: SourceEnvironment, states: Sequence[RepoState]) -> TarballName:
    """The tarball name for ``env`` with these repository states."""
    return TarballName(spec_hash(env), combined_commit(states))


def build_tarball(env: SourceEnvironment, destination: Path, metadata: dict, compress_level: int = 1) -> None:
    """Pack ``env`` into ``destination`` atomically (temporary file + rename)."""
    from envtools.pack_conda import pack_conda
    from envtools.pack_venv import pack_venv

    pack = pack_conda if env.kind is EnvKind.CONDA else pack_venv
    with tempfile.TemporaryDirectory(prefix="envtools-stage-") as workdir, atomic_output(destination) as tmp:
        staged = stage_editables(env, Path(workdir))
        pack(env, staged, tmp, metadata, compress_level)
    log.info("built %s (%.1f MB)", destination, destination.stat().st_size / 1e6)


def _metadata(env: SourceEnvironment, name: TarballName, states: Sequence[RepoState]) -> dict:
    return {
        "format": 1,
        "name": name.filename,
        "spec_hash": name.spec_hash,
        "commit": name.commit,
        "kind": env.kind.value,
        "source_prefix": str(env.prefix),
        "repositories": {str(s.top or s.directory): s.commit for s in states},
        "uncommitted": [s.describe_changes() for s in states if not s.is_clean],
        "editables": [e.name for e in env.editables],
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def _must_build(path: Path, name: TarballName, policy: Unstaged, force: bool, states: Sequence[RepoState]) -> bool:
    if force:
        return True
    if name.commit != HEAD:
        return not path.exists()
    reasons = "; ".join(s.describe_changes() for s in states if not s.is_clean)
    if policy is Unstaged.FAIL:
        raise UncommittedChangesError(f"uncommitted changes in watched paths ({reasons}): commit them first, "
                                      "or call get_environment(unstaged='rebuild')")
    if policy is Unstaged.REUSE and path.exists():
        warnings.warn(f"reusing {path} although watched paths have uncommitted changes ({reasons})",
                      UncommittedChangesWarning, stacklevel=3)
        return False
    warnings.warn(f"rebuilding {path.name} because watched paths have uncommitted changes ({reasons}); "
                  "commit them to build once and reuse", UncommittedChangesWarning, stacklevel=3)
    return True


def get_environment(
    cache_dir: str | Path = "envs",
    watch: Sequence[str] = (),
    unstaged: str | Unstaged = "rebuild",
    keep: int = 3,
    force: bool = False,
    *,
    analysis_dir: str | Path = ".",
    prefix: str | Path | None = None,
    compress_level: int = 1,
) -> Path:
    """The path of a tarball of the running Python environment, for ``environment-file``.

    Built once per commit and reused afterwards. Editable packages (``pip install -e``) go in as
    regular installs of their current source; the name ``env_<spec-hash>_<commit>.tar.gz`` changes
    when installed packages change (spec hash) or a commit touches a watched path (commit).

    Args:
        cache_dir: where tarballs are kept (relative to the current directory, like topcoffea's).
        watch: paths (relative to ``analysis_dir``, or git ``:(top)`` pathspecs) of the analysis
            repository whose commits also name the environment; every editable package's own
            directory is always watched.
        unstaged: with uncommitted changes in watched paths, the name ends in ``HEAD`` and
            ``"rebuild"`` rebuilds on every call (with a warning), ``"fail"`` raises
            ``UncommittedChangesError``, ``"reuse"`` reuses an existing HEAD tarball.
        keep: how many tarballs to keep in ``cache_dir`` (never removing one in use).
        force: rebuild even if the tarball exists.
        analysis_dir: the analysis repository (default: the current directory).
        prefix: the environment to pack (default: the running interpreter's ``sys.prefix``).
        compress_level: gzip level (1 = fastest).

    Returns:
        The absolute path of the tarball, marked in use by this process until it exits.

    Example::

        import envtools
        executor_args = {"environment-file": envtools.get_environment(watch=["mypkg"])}
    """
    try:
        policy = Unstaged(unstaged)
    except ValueError:
        choices = ", ".join(repr(u.value) for u in Unstaged)
        raise ValueError(f"get_environment(unstaged={unstaged!r}): expected one of {choices}") from None
    env = describe_environment(prefix)
    states = watched_states(env, Path(analysis_dir), watch)
    name = plan_name(env, states)
    cache = Path(cache_dir).resolve()
    path = cache / name.filename
    with build_lock(cache, name.filename):
        if _must_build(path, name, policy, force, states):
            build_tarball(env, path, _metadata(env, name, states), compress_level)
        mark_in_use(path)
    clean_cache(cache, keep=keep, protect=path)
    return path

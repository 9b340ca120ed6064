"""Pack a conda environment with conda-pack, editables replaced by regular installs.

conda-pack already makes a conda environment relocatable: the tarball carries ``bin/conda-unpack``,
which rewrites the build prefix once the tarball is unpacked (the runner calls it). conda-pack
refuses editable packages, so envtools asks it to ignore them, drops their editable-install files
from the file list and adds the staged regular installs instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from envtools.editables import StagedInstall
from envtools.relocate import is_python_script, relocatable_script
from envtools.source import SourceEnvironment

METADATA_NAME = ".coffea-wq-env.json"


def _staged_files(staged: StagedInstall, site_rel: str, scratch: Path) -> list[tuple[str, str]]:
    """(source, target) pairs of the staged installs; bin scripts get relocatable shebangs."""
    pairs = []
    for root, arc_root in ((staged.site_packages, site_rel), (staged.bin, "bin")):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            source = path
            if arc_root == "bin" and is_python_script(path.read_bytes()[:256]):
                source = scratch / f"bin-{path.name}"
                source.write_bytes(relocatable_script(path.read_bytes()))
                source.chmod(0o755)
            pairs.append((str(source), (Path(arc_root) / path.relative_to(root)).as_posix()))
    return pairs


def pack_conda(env: SourceEnvironment, staged: StagedInstall, output: Path, metadata: dict, level: int = 1) -> None:
    """Write a conda-pack tarball of ``env`` (editables from ``staged``) to ``output``.

    Example::

        pack_conda(describe_environment("/opt/conda/envs/ana"), staged, Path("env.tar.gz"), {})
    """
    import conda_pack
    from conda_pack.core import File

    conda_env = conda_pack.CondaEnv.from_prefix(str(env.prefix), ignore_editable_packages=True,
                                                on_missing_cache="ignore")
    artifacts = {os.path.normpath(str(a)) for e in env.editables for a in e.artifacts}
    site_rel = env.site_packages.relative_to(env.prefix).as_posix()
    keep = [f for f in conda_env.files
            if not any(os.path.normpath(f.source) == a or f.source.startswith(a + os.sep) for a in artifacts)]
    with tempfile.TemporaryDirectory(prefix="envtools-conda-") as scratch_dir:
        scratch = Path(scratch_dir)
        meta = scratch / METADATA_NAME
        meta.write_text(json.dumps({**metadata, "layout": "conda-pack", "python": env.python_version}, indent=1))
        extra = [File(str(meta), METADATA_NAME, is_conda=False, file_mode="unknown")]
        extra += [File(src, target, is_conda=False, file_mode="unknown")
                  for src, target in _staged_files(staged, site_rel, scratch)]
        staged_targets = {f.target for f in extra}
        files = [f for f in keep if f.target not in staged_targets] + extra
        packer = conda_pack.CondaEnv(conda_env.prefix, files, conda_env._excluded_files)
        packer.pack(output=str(output), format="tar.gz", compress_level=level, force=True, verbose=False)

"""Pack a venv as a self-contained, relocatable Python prefix.

A venv is only a ``pyvenv.cfg`` pointing at a base interpreter by absolute path (``home``), plus
site-packages. venv-pack keeps that pointer, so the worker needs the same Python at the same path.
envtools instead packs the base interpreter with the venv:

    bin/python3.X          the base interpreter binary (or a wrapper, when libpython is shared)
    bin/python, python3    -> python3.X
    lib/libpython3.X.so.*  when the base interpreter links it dynamically
    lib/python3.X/         the base standard library (without test/, idlelib/, tkinter/, config-*)
    lib/python3.X/site-packages/   the venv's packages, editables replaced by regular installs
    bin/*                  the venv's scripts, with relocatable shebangs

There is no ``pyvenv.cfg``: Python finds its prefix from the binary's location (the
``lib/python3.X/os.py`` landmark), so the tree runs at any path, on any worker of the same OS
family and architecture, whatever Python the worker has (or none). Cost: ~25 MB compressed more
than the venv alone. The runner's only fix-up at unpack is the ``bin/activate*`` prefix.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from envtools.archive import ArchiveWriter, gzip_tar_writer
from envtools.editables import StagedInstall
from envtools.relocate import is_python_script, relocatable_script, with_placeholder
from envtools.source import SourceEnvironment, UnsupportedEnvironmentError

log = logging.getLogger(__name__)
METADATA_NAME = ".coffea-wq-env.json"
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "site-packages", "dist-packages", "__phello__"}
_PROBE = r"""
import json, os, site, sys, sysconfig
var = sysconfig.get_config_var
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "version": "%d.%d.%d" % sys.version_info[:3],
    "stdlib": sysconfig.get_path("stdlib"),
    "platstdlib": sysconfig.get_path("platstdlib"),
    "purelib": sysconfig.get_path("purelib"),
    "shared": bool(var("Py_ENABLE_SHARED")),
    "libdir": var("LIBDIR") or "",
    "soname": var("INSTSONAME") or "",
    "site_dirs": site.getsitepackages(["/__probe__"]),
}))
"""


@dataclass(frozen=True)
class BaseInterpreter:
    """Where the base interpreter of a venv keeps its binary, stdlib and libpython."""

    executable: Path
    version: str
    stdlib: Path
    platstdlib: Path
    purelib: Path
    libpython: Path | None
    site_packages_rel: str


def probe_base_interpreter(env: SourceEnvironment) -> BaseInterpreter:
    """Ask the venv's base interpreter (``pyvenv.cfg``) where its parts are."""
    base = env.base_executable
    if base is None or not base.exists():
        raise UnsupportedEnvironmentError(
            f"{env.prefix / 'pyvenv.cfg'}: the base interpreter {base} is missing; recreate the venv"
        )
    out = subprocess.run([str(base), "-I", "-S", "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
    facts = json.loads(out.stdout)
    if facts["version"].split(".")[:2] != env.python_version.split(".")[:2]:
        raise UnsupportedEnvironmentError(
            f"{env.prefix}: venv made with Python {env.python_version} but {base} is Python {facts['version']}"
        )
    libpython = None
    if facts["shared"] and facts["soname"]:
        libpython = Path(facts["libdir"]) / facts["soname"]
        libpython = libpython if libpython.exists() else None
    return BaseInterpreter(
        Path(facts["executable"]), facts["version"], Path(facts["stdlib"]), Path(facts["platstdlib"]),
        Path(facts["purelib"]), libpython, _site_packages_rel(facts["site_dirs"], env.python_minor),
    )


def _site_packages_rel(site_dirs: list[str], minor: str) -> str:
    """Where this Python looks for packages in a plain prefix (Debian: lib/python3/dist-packages)."""
    relative = [os.path.relpath(d, "/__probe__") for d in site_dirs]
    preferred = f"lib/python{minor}/site-packages"
    if preferred in relative:
        return preferred
    usable = [r for r in relative if r.startswith("lib/")]
    if not usable:
        raise UnsupportedEnvironmentError(f"cannot tell where this Python finds packages: {site_dirs}")
    return usable[0]


def _wrapper_for_shared_libpython(minor: str) -> bytes:
    # The binary's RUNPATH names the build machine's lib/; LD_LIBRARY_PATH wins over RUNPATH.
    return (
        "#!/bin/sh\n"
        'here=$(dirname -- "$0")\n'
        'LD_LIBRARY_PATH="$here/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n'
        "export LD_LIBRARY_PATH\n"
        f'exec "$here/.python{minor}-bin" "$@"\n'
    ).encode()


def add_interpreter(archive: ArchiveWriter, base: BaseInterpreter, minor: str) -> None:
    """The interpreter binary (and libpython), named as in a standard prefix."""
    if base.libpython is None:
        archive.add_file(f"bin/python{minor}", base.executable)
    else:
        archive.add_file(f"bin/.python{minor}-bin", base.executable)
        archive.add_bytes(f"bin/python{minor}", _wrapper_for_shared_libpython(minor), mode=0o755)
        archive.add_file(f"lib/{base.libpython.name}", base.libpython)
    archive.add_symlink("bin/python3", f"python{minor}")
    archive.add_symlink("bin/python", f"python{minor}")
    archive.add_symlink("lib64", "lib")


def _skip_stdlib_dir(name: str) -> bool:
    return name in _STDLIB_SKIP or name.startswith("config-")


def _skip_stdlib_file(name: str) -> bool:
    # Byte code for -O/-OO only: half the size of the standard library, never used by tasks.
    return ".opt-" in name and name.endswith(".pyc")


def add_tree(archive: ArchiveWriter, source: Path, arc_root: str, skip: set[str] | None = None,
             skip_dir=None, is_bin: bool = False, prefix: str = "", skip_file=None) -> None:
    """Add ``source`` under ``arc_root``; ``skip`` holds absolute paths to leave out.

    ``skip_dir(name)`` leaves out top-level directories, ``skip_file(name)`` files anywhere.
    """
    skip = skip or set()
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel_dir = here.relative_to(source)
        dirnames[:] = sorted(d for d in dirnames if str(here / d) not in skip
                             and not (skip_dir and here == source and skip_dir(d)))
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            path = here / name
            if str(path) in skip or (skip_file and skip_file(name)):
                continue
            arcname = (Path(arc_root) / rel_dir / name).as_posix()
            add_entry(archive, path, arcname, source_prefix=prefix, is_bin=is_bin and rel_dir == Path("."))
        for name in dirnames:
            if not (here / name).is_symlink():
                archive.add_directory((Path(arc_root) / rel_dir / name).as_posix(), here / name)


def add_entry(archive: ArchiveWriter, path: Path, arcname: str, source_prefix: str, is_bin: bool) -> None:
    """One file or symlink; links are kept when relative, made relative or copied when absolute."""
    if path.is_symlink():
        target = os.readlink(path)
        if not os.path.isabs(target):
            archive.add_symlink(arcname, target)
            return
        if source_prefix and target.startswith(source_prefix + os.sep):
            archive.add_symlink(arcname, os.path.relpath(target, path.parent))
            return
        if not path.exists():
            log.warning("skipping dangling symlink %s -> %s", path, target)
            return
        if path.is_dir():
            add_tree(archive, path.resolve(), arcname)
            return
    if is_bin:
        with open(path, "rb") as handle:
            head = handle.read(256)
        if is_python_script(head):
            archive.add_bytes(arcname, relocatable_script(path.read_bytes()), mode=0o755)
            return
        if path.name.startswith("activate") and source_prefix:
            archive.add_bytes(arcname, with_placeholder(path.read_bytes(), source_prefix), path.stat().st_mode & 0o777)
            return
    archive.add_file(arcname, path)


def _venv_skips(env: SourceEnvironment) -> set[str]:
    """Absolute paths of the venv not to pack: pyvenv.cfg, interpreter links, editable installs."""
    skip = {str(env.prefix / "pyvenv.cfg"), str(env.prefix / "lib64")}
    skip |= {str(p) for p in (env.prefix / "bin").glob("python*") if p.is_symlink() or p.name.startswith("python3")}
    for editable in env.editables:
        skip |= {str(a) for a in editable.artifacts}
    return skip


def pack_venv(env: SourceEnvironment, staged: StagedInstall, output: Path, metadata: dict, level: int = 1) -> None:
    """Write the self-contained tarball of venv ``env`` (editables from ``staged``) to ``output``.

    Example::

        env = describe_environment(".venv")
        pack_venv(env, stage_editables(env, tmp), Path("env.tar.gz"), {"commit": "HEAD"})
    """
    base = probe_base_interpreter(env)
    minor = env.python_minor
    skip = _venv_skips(env)
    site_rel = base.site_packages_rel
    venv_site = env.site_packages
    prefix = str(env.prefix)
    with gzip_tar_writer(output, level) as archive:
        archive.add_bytes(METADATA_NAME, json.dumps({**metadata, "layout": "standalone", "python": base.version,
                                                      "site_packages": site_rel}, indent=1).encode())
        add_interpreter(archive, base, minor)
        # Regular installs of editables first: the first copy of a name wins.
        add_tree(archive, staged.site_packages, site_rel)
        add_tree(archive, staged.bin, "bin", is_bin=True)
        add_tree(archive, venv_site, site_rel, skip=skip, prefix=prefix)
        add_tree(archive, env.prefix / "bin", "bin", skip=skip, is_bin=True, prefix=prefix)
        other_roots = [p for p in env.prefix.iterdir()
                       if p.name not in ("bin", "lib", "lib64", "pyvenv.cfg")]
        for root in other_roots:
            if root.is_dir() and not root.is_symlink():
                add_tree(archive, root, root.name, skip=skip, prefix=prefix)
            elif str(root) not in skip:
                add_entry(archive, root, root.name, prefix, is_bin=False)
        if env.system_site_packages and base.purelib.is_dir():
            add_tree(archive, base.purelib, site_rel)
        add_tree(archive, base.stdlib, f"lib/python{minor}", skip_dir=_skip_stdlib_dir, skip_file=_skip_stdlib_file)
        if base.platstdlib != base.stdlib:
            add_tree(archive, base.platstdlib, f"lib/python{minor}", skip_dir=_skip_stdlib_dir,
                     skip_file=_skip_stdlib_file)

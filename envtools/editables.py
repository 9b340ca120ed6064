"""Turn editable packages into regular installs of their current source, in a staging directory.

An editable install only points at a source tree: a setuptools finder's ``MAPPING`` (PEP 660), a
``.pth`` line naming a directory (hatchling, flit, setuptools compat mode), or a legacy
``.egg-link``. envtools follows that pointer and copies the importable packages themselves (their
git-tracked and untracked-but-not-ignored files, so ``.git``, build leftovers and ignored files
stay behind), then writes an ordinary ``*.dist-info`` (no ``direct_url.json``, so it is no longer
editable) and the console scripts of ``entry_points.txt``.

Why not ``pip install <source>``: that needs the project's build backend (often absent from the
environment, e.g. setuptools < 70.1 cannot build wheels without ``wheel``) or network access for
build isolation, and it writes ``build/`` into the user's tree. Copying needs neither and is what
"the current source" means. Limitation: compiled extensions of an editable package must be built
in place and not be git-ignored to be shipped (pure-Python analysis packages, the common case,
need nothing).
"""

from __future__ import annotations

import ast
import configparser
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from envtools.gitstate import repository_top
from envtools.source import EditablePackage, SourceEnvironment

log = logging.getLogger(__name__)
_SKIP_DIRS = {"__pycache__", ".git"}
_DIST_INFO_FILES = ("METADATA", "entry_points.txt", "top_level.txt", "WHEEL", "LICENSE")


class EditableBuildError(RuntimeError):
    """An editable package's source could not be found or copied."""


@dataclass(frozen=True)
class StagedInstall:
    """Regular installs of the editable packages: ``site_packages`` and ``bin`` to pack in their place."""

    site_packages: Path
    bin: Path


def _listed_files(directory: Path) -> list[Path]:
    """Files under ``directory`` that git tracks or would track (everything when not under git)."""
    if repository_top(directory) is not None:
        out = subprocess.run(
            ["git", "-C", str(directory), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            capture_output=True, check=True, timeout=120,
        ).stdout.decode()
        files = [directory / rel for rel in filter(None, out.split("\0"))]
    else:
        files = [p for p in directory.rglob("*") if p.is_file() or p.is_symlink()]
    return [f for f in files if (f.is_file() or f.is_symlink()) and not _SKIP_DIRS & set(f.parts)]


def copy_tree(source: Path, destination: Path) -> int:
    """Copy a package directory (or module file) without ``.git``, caches and ignored files."""
    if source.is_file():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        return 1
    files = _listed_files(source)
    for path in files:
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=True)
    return len(files)


def _finder_mapping(finder: Path) -> dict[str, str]:
    """The ``MAPPING = {...}`` literal of a setuptools PEP 660 finder module."""
    tree = ast.parse(finder.read_text(), filename=str(finder))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "MAPPING" and node.value is not None:
            return dict(ast.literal_eval(node.value))
    return {}


def _top_level_names(package: EditablePackage, root: Path) -> list[str]:
    for candidate in [package.dist_info, *root.glob("*.egg-info"), *root.parent.glob("*.egg-info")]:
        if candidate is not None and (candidate / "top_level.txt").is_file():
            return [n for n in (candidate / "top_level.txt").read_text().split() if n]
    # No record of the names: everything importable in the root is the package.
    return [p.stem for p in root.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"]


def import_roots(package: EditablePackage) -> dict[str, Path]:
    """Top-level importable name -> the source path an editable install points at.

    Example::

        import_roots(pkg)  # {'mypkg': PosixPath('/home/me/analysis/src/mypkg')}
    """
    roots: dict[str, Path] = {}
    for artifact in package.artifacts:
        if artifact.name.startswith("__editable__") and artifact.name.endswith("_finder.py"):
            roots.update({name: Path(path) for name, path in _finder_mapping(artifact).items()})
    if roots:
        return roots
    directories = [package.location] if package.dist_info is None else []
    for artifact in package.artifacts:
        if artifact.suffix == ".pth" and artifact.is_file():
            directories += [Path(line.strip()) for line in artifact.read_text().splitlines()
                            if line.strip() and not line.startswith(("import", "#"))]
    for directory in directories:
        for name in _top_level_names(package, directory):
            for candidate in (directory / name, directory / f"{name}.py"):
                if candidate.exists():
                    roots[name] = candidate
    if not roots:
        raise EditableBuildError(
            f"editable package {package.name} ({package.location}): cannot tell which source directory "
            "it imports from (no setuptools finder MAPPING and no directory in its .pth file)"
        )
    return roots


def _console_scripts(dist_info: Path) -> dict[str, str]:
    entry_points = dist_info / "entry_points.txt"
    if not entry_points.is_file():
        return {}
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # script names are case-sensitive
    parser.read_string(entry_points.read_text())
    scripts: dict[str, str] = {}
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            scripts.update({name: value.strip() for name, value in parser.items(section)})
    return scripts


def write_console_script(bin_dir: Path, name: str, spec: str) -> Path:
    """A ``bin/<name>`` script calling ``module:function`` (its shebang is made relocatable when packed)."""
    module, _, attribute = spec.partition(":")
    attribute = attribute.split("[")[0].strip()
    head, _, tail = attribute.partition(".")
    call = f"{head}.{tail}" if tail else head
    script = bin_dir / name
    script.write_text(
        "#!/usr/bin/env python3\nimport sys\n"
        f"from {module.strip()} import {head}\n"
        f"if __name__ == '__main__':\n    sys.exit({call}())\n"
    )
    script.chmod(0o755)
    return script


def _write_dist_info(package: EditablePackage, site_packages: Path, copied: list[str]) -> None:
    source = package.dist_info
    dist_info = site_packages / (source.name if source else f"{package.name}-{package.version or '0'}.dist-info")
    dist_info.mkdir(parents=True, exist_ok=True)
    if source is not None:
        for name in _DIST_INFO_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, dist_info / name)
    else:
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {package.name}\nVersion: {package.version or '0'}\n")
    (dist_info / "INSTALLER").write_text("envtools\n")
    (dist_info / "top_level.txt").write_text("".join(f"{name}\n" for name in copied))
    (dist_info / "RECORD").write_text("")


def materialize_editable(package: EditablePackage, site_packages: Path, bin_dir: Path) -> None:
    """Copy one editable package's current source into ``site_packages`` as a regular install."""
    if not package.location.exists():
        raise EditableBuildError(f"editable package {package.name}: source directory {package.location} is missing")
    roots = import_roots(package)
    for name, path in roots.items():
        destination = site_packages / (path.name if path.is_file() else name)
        count = copy_tree(path, destination)
        log.info("editable %s: copied %d files of %s from %s", package.name, count, name, path)
    _write_dist_info(package, site_packages, sorted(roots))
    if package.dist_info is not None:
        for script, spec in _console_scripts(package.dist_info).items():
            write_console_script(bin_dir, script, spec)


def stage_editables(env: SourceEnvironment, workdir: Path) -> StagedInstall:
    """Regular installs of every editable package of ``env`` under ``workdir``.

    Example::

        staged = stage_editables(describe_environment(), Path(tmp))
        # staged.site_packages/<pkg>/..., staged.bin/<entry points>
    """
    staged = StagedInstall(workdir / "site-packages", workdir / "bin")
    staged.site_packages.mkdir(parents=True, exist_ok=True)
    staged.bin.mkdir(parents=True, exist_ok=True)
    for package in env.editables:
        materialize_editable(package, staged.site_packages, staged.bin)
    return staged

"""Describe the environment to pack: its kind, Python version, installed distributions and editables.

Everything here reads the environment's files (``pyvenv.cfg``, ``conda-meta/``, ``*.dist-info``)
instead of running ``pip``, because ``get_environment()`` describes the environment on every call
and its cached path must stay well under half a second.
"""

from __future__ import annotations

import enum
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse


class EnvKind(enum.Enum):
    """How an environment is packed: a venv by envtools itself, a conda environment by conda-pack."""

    VENV = "venv"
    CONDA = "conda"


class UnsupportedEnvironmentError(RuntimeError):
    """The prefix is neither a venv nor a conda environment, or its layout is not understood."""


@dataclass(frozen=True)
class EditablePackage:
    """A distribution installed in editable mode (``pip install -e``), shipped as a regular install.

    ``dist_info`` is the ``*.dist-info`` directory (``None`` for a legacy ``.egg-link`` install),
    ``artifacts`` the site-packages entries of the editable install that must not be packed.
    """

    name: str
    version: str
    location: Path
    dist_info: Path | None
    artifacts: tuple[Path, ...]


@dataclass(frozen=True)
class SourceEnvironment:
    """The facts about an environment that name it and pack it."""

    prefix: Path
    kind: EnvKind
    python_version: str
    site_packages: Path
    distributions: tuple[str, ...]
    editables: tuple[EditablePackage, ...]
    system_site_packages: bool
    base_executable: Path | None
    machine: str

    @property
    def python_minor(self) -> str:
        """``"3.11"`` for Python 3.11.7."""
        return ".".join(self.python_version.split(".")[:2])


def read_pyvenv_cfg(prefix: Path) -> dict[str, str]:
    """The ``key = value`` pairs of ``prefix/pyvenv.cfg`` (keys lower-cased)."""
    values: dict[str, str] = {}
    for line in (prefix / "pyvenv.cfg").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def find_site_packages(prefix: Path) -> Path:
    """The one ``lib/python3.X/site-packages`` directory of an environment."""
    found = sorted(prefix.glob("lib/python3.*/site-packages"))
    if len(found) != 1:
        raise UnsupportedEnvironmentError(
            f"{prefix}: expected exactly one lib/python3.X/site-packages directory, found {len(found)}"
        )
    return found[0]


def environment_kind(prefix: Path) -> EnvKind:
    """CONDA when ``conda-meta/`` exists, VENV when ``pyvenv.cfg`` exists; an error otherwise."""
    if (prefix / "conda-meta").is_dir():
        return EnvKind.CONDA
    if (prefix / "pyvenv.cfg").is_file():
        return EnvKind.VENV
    raise UnsupportedEnvironmentError(
        f"{prefix} is neither a venv (no pyvenv.cfg) nor a conda environment (no conda-meta/); "
        "run your analysis from a venv (python3 -m venv ENV) or a conda environment"
    )


def _conda_python_version(prefix: Path) -> str:
    for record in sorted((prefix / "conda-meta").glob("python-[0-9]*.json")):
        return json.loads(record.read_text())["version"]
    raise UnsupportedEnvironmentError(f"{prefix}: conda-meta/ has no python-*.json record")


def _venv_python_version(cfg: dict[str, str], prefix: Path) -> str:
    version = cfg.get("version") or cfg.get("version_info")
    if version:
        return version
    if prefix == Path(sys.prefix).resolve():
        return platform.python_version()
    raise UnsupportedEnvironmentError(f"{prefix / 'pyvenv.cfg'}: no 'version' key")


def _venv_base_executable(cfg: dict[str, str], python_minor: str) -> Path | None:
    if cfg.get("executable"):
        return Path(cfg["executable"])
    if cfg.get("home"):
        candidate = Path(cfg["home"]) / f"python{python_minor}"
        return candidate if candidate.exists() else Path(cfg["home"]) / "python3"
    return None


def _dist_name_version(entry_name: str) -> tuple[str, str]:
    stem = entry_name.rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    return name, version.split("-")[0]


def _editable_location(dist_info: Path) -> Path | None:
    direct_url = dist_info / "direct_url.json"
    if not direct_url.is_file():
        return None
    try:
        data = json.loads(direct_url.read_text())
    except (OSError, ValueError):
        return None
    if not data.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(data.get("url", ""))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def _record_artifacts(dist_info: Path, site_packages: Path) -> tuple[Path, ...]:
    """Every file the editable install put down (its RECORD), plus the dist-info directory."""
    artifacts = [dist_info]
    record = dist_info / "RECORD"
    if record.is_file():
        for line in record.read_text().splitlines():
            relative = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if relative:
                artifacts.append(Path(os.path.normpath(site_packages / relative)))
    return tuple(artifacts)


def scan_distributions(site_packages: Path) -> tuple[tuple[str, ...], tuple[EditablePackage, ...]]:
    """``name-version`` of every installed distribution, and the editable ones.

    Example::

        dists, editables = scan_distributions(Path(".venv/lib/python3.11/site-packages"))
    """
    dists: list[str] = []
    editables: list[EditablePackage] = []
    for entry in sorted(site_packages.iterdir()):
        if entry.name.endswith((".dist-info", ".egg-info")):
            name, version = _dist_name_version(entry.name)
            dists.append(f"{name.lower().replace('_', '-')}=={version}")
            location = _editable_location(entry) if entry.name.endswith(".dist-info") else None
            if location is not None:
                artifacts = _record_artifacts(entry, site_packages)
                editables.append(EditablePackage(name, version, location, entry, artifacts))
        elif entry.name.endswith(".egg-link"):
            lines = entry.read_text().splitlines()
            if lines:
                name = entry.name[: -len(".egg-link")]
                editables.append(EditablePackage(name, "", Path(lines[0].strip()), None, (entry,)))
    return tuple(dists), tuple(editables)


def describe_environment(prefix: str | Path | None = None) -> SourceEnvironment:
    """Describe the environment at ``prefix`` (default: the running interpreter's ``sys.prefix``).

    Example::

        env = describe_environment()          # the running venv or conda environment
        print(env.kind, env.python_version, [e.name for e in env.editables])
    """
    prefix = Path(sys.prefix if prefix is None else prefix).resolve()
    kind = environment_kind(prefix)
    site_packages = find_site_packages(prefix)
    dists, editables = scan_distributions(site_packages)
    if kind is EnvKind.CONDA:
        version = _conda_python_version(prefix)
        conda_records = tuple(sorted(p.name[:-5] for p in (prefix / "conda-meta").glob("*.json")))
        return SourceEnvironment(
            prefix, kind, version, site_packages, conda_records + dists, editables, False,
            prefix / "bin" / "python", platform.machine(),
        )
    cfg = read_pyvenv_cfg(prefix)
    version = _venv_python_version(cfg, prefix)
    minor = ".".join(version.split(".")[:2])
    return SourceEnvironment(
        prefix, kind, version, site_packages, dists, editables,
        cfg.get("include-system-site-packages", "false").lower() == "true",
        _venv_base_executable(cfg, minor), platform.machine(),
    )

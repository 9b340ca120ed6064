"""Sample lists in topcoffea's format: cfg files of JSON sample files, and the coffea fileset they make.

A cfg file lists one sample per line (or several, separated by commas)::

    # comments start with '#', blank lines are ignored
    ../../data/sample/ttH_like.json      # a JSON sample file
    /data/extra/mysample.root            # a ROOT file: a sample of its own, named after the file
    root://cmsxrootd.fnal.gov/           # not an existing file: the prefix for the lines below
    ../json/ttZ_UL18.json                # its files are read as root://cmsxrootd.fnal.gov/<file>

Relative paths are looked up next to the cfg file first, then in the current directory (where
topcoffea looked). A JSON sample file holds ``files`` and the sample's description (``xsec``,
``year``, ``treeName``, ``histAxisName``, ``options``, ``WCnames``, ``nEvents``, ``nGenEvents``,
``nSumOfWeights``, ``isData``); the sample is named after the JSON file. Without a prefix, its
relative ``files`` are relative to the JSON file's directory.

A line that names a ``.json``, ``.root`` or ``.cfg`` file that does not exist is an error, not a
prefix (a typo would otherwise silently become a redirector). Every error is a :class:`CfgError`
that names the cfg file and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_SUFFIXES = (".json", ".root", ".cfg")
DEFAULT_TREENAME = "Events"


class CfgError(ValueError):
    """A bad cfg line or sample file; ``str()`` is ``"<file>:<line>: <what is wrong>"``."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = self.path or "<cfg>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


@dataclass
class SampleSpec:
    """One sample: its files and the description from its JSON sample file.

    ``origin`` says where it was declared (``"demo.cfg:3"``), ``source`` is the JSON or ROOT file.
    """

    name: str
    files: list[str]
    treename: str | None = None
    xsec: float | None = None
    year: str | None = None
    hist_axis_name: str | None = None
    options: str = ""
    wc_names: list[str] = field(default_factory=list)
    n_events: int | None = None
    n_gen_events: int | None = None
    sum_of_weights: float | None = None
    is_data: bool = False
    source: str = ""
    origin: str = ""
    prefix: str = ""

    def metadata(self) -> dict:
        """What the processor reads from ``events.metadata`` (besides ``dataset``)."""
        meta: dict = {"isData": self.is_data}
        if self.xsec is not None:
            meta["xsec"] = self.xsec
        if self.year is not None:
            meta["year"] = self.year
        if self.hist_axis_name is not None:
            meta["histAxisName"] = self.hist_axis_name
        return meta


def join_prefix(prefix: str, name: str) -> str:
    """``prefix`` + ``name`` with one ``/`` between them (xrootd's ``host//store/...`` kept).

    Example:
        >>> join_prefix("root://host/", "/store/a.root"), join_prefix("/data", "a.root")
        ('root://host//store/a.root', '/data/a.root')
    """
    if not prefix:
        return name
    if prefix.endswith("/"):
        return prefix + name
    return f"{prefix}/{name}"


def _is_url(text: str) -> bool:
    return "://" in text


def _resolve(entry: str, base_dir: Path) -> Path:
    """An entry's path: next to the cfg when it exists there, else from the current directory."""
    path = Path(os.path.expandvars(os.path.expanduser(entry)))
    if path.is_absolute():
        return path
    beside_cfg = Path(os.path.normpath(base_dir / path))
    if beside_cfg.exists() or not path.exists():
        return beside_cfg
    return path.resolve()


def _expect(data: dict, key: str, types: tuple[type, ...], where: str, what: str):
    value = data.get(key)
    if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
        raise CfgError(f"key {key!r} must be {what}, not {value!r}", where)
    return value


def read_sample_json(path: str | os.PathLike, prefix: str = "", origin: str = "") -> SampleSpec:
    """Read a topcoffea JSON sample file.

    Args:
        path: the JSON file; the sample is named after it (``ttH_like.json`` -> ``ttH_like``).
        prefix: prepended to every entry of ``files`` (a redirector or directory); without one,
            relative entries are relative to the JSON file's directory.
        origin: where the sample was declared, for error messages (``"demo.cfg:3"``).

    Raises:
        CfgError: naming the JSON file (and its line for invalid JSON).

    Example:
        >>> read_sample_json("analysis_examples/data/sample/ttH_like.json").xsec
        0.5071
    """
    path = Path(path)
    where = str(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CfgError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CfgError(f"cannot read sample file: {err}", where) from None
    if not isinstance(data, dict):
        raise CfgError("a sample file must hold a JSON object", where)
    files = data.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise CfgError("key 'files' must be a non-empty list of file names", where)
    number = (int, float)
    spec = SampleSpec(
        name=path.stem,
        files=[_sample_file(f, prefix, path.parent) for f in files],
        treename=_expect(data, "treeName", (str,), where, "a string"),
        xsec=_expect(data, "xsec", number, where, "a number"),
        year=None if data.get("year") is None else str(data["year"]),
        hist_axis_name=_expect(data, "histAxisName", (str,), where, "a string"),
        options=_expect(data, "options", (str,), where, "a string") or "",
        wc_names=list(_expect(data, "WCnames", (list,), where, "a list") or []),
        n_events=_expect(data, "nEvents", (int,), where, "an integer"),
        n_gen_events=_expect(data, "nGenEvents", (int,), where, "an integer"),
        sum_of_weights=_expect(data, "nSumOfWeights", number, where, "a number"),
        is_data=bool(_expect(data, "isData", (bool,), where, "true or false") or False),
        source=str(path),
        origin=origin,
        prefix=prefix,
    )
    return spec


def _sample_file(name: str, prefix: str, json_dir: Path) -> str:
    if prefix:
        return join_prefix(prefix, name)
    if _is_url(name) or os.path.isabs(name):
        return name
    return str((json_dir / name).resolve())


def _root_file_sample(path: Path, origin: str) -> SampleSpec:
    return SampleSpec(name=path.stem, files=[str(path.resolve())], source=str(path), origin=origin)


@dataclass
class _CfgReader:
    """Reads cfg lines in order, keeping the current prefix and the samples seen so far."""

    prefix: str = ""
    samples: dict[str, SampleSpec] = field(default_factory=dict)
    open_cfgs: list[Path] = field(default_factory=list)

    def read_file(self, path: Path) -> None:
        if path.resolve() in self.open_cfgs:
            raise CfgError("cfg includes itself", path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CfgError(f"cannot read cfg file: {err}", path) from None
        self.open_cfgs.append(path.resolve())
        saved_prefix = self.prefix
        self.read_lines(text.splitlines(), path.parent, str(path))
        self.prefix = saved_prefix  # a prefix set inside an included cfg stays there
        self.open_cfgs.pop()

    def read_lines(self, lines: Iterable[str], base_dir: Path, cfg_name: str) -> None:
        for number, raw in enumerate(lines, start=1):
            text = raw.split("#", 1)[0].strip()
            for entry in (part.strip() for part in text.split(",")):
                if entry:
                    self.read_entry(entry, base_dir, cfg_name, number)

    def read_entry(self, entry: str, base_dir: Path, cfg_name: str, number: int) -> None:
        origin = f"{cfg_name}:{number}"
        path = _resolve(entry, base_dir)
        if not path.is_file():
            if not _is_url(entry) and entry.lower().endswith(SAMPLE_SUFFIXES):
                raise CfgError(f"sample file {entry!r} not found (looked in {base_dir} and {Path.cwd()})",
                               cfg_name, number)
            self.prefix = entry
            return
        suffix = path.suffix.lower()
        if suffix == ".json":
            try:
                spec = read_sample_json(path, self.prefix, origin)
            except CfgError as err:
                raise CfgError(str(err), cfg_name, number) from None
        elif suffix == ".root":
            spec = _root_file_sample(path, origin)
        elif suffix == ".cfg":
            self.read_file(path)
            return
        else:
            raise CfgError(f"{entry!r} is neither a JSON sample file, a ROOT file nor a cfg", cfg_name, number)
        self.add(spec, cfg_name, number)

    def add(self, spec: SampleSpec, cfg_name: str, number: int) -> None:
        if spec.name in self.samples:
            first = self.samples[spec.name]
            raise CfgError(f"sample {spec.name!r} ({spec.source}) is already declared at {first.origin} "
                           f"({first.source})", cfg_name, number)
        self.samples[spec.name] = spec


def read_cfg(path: str | os.PathLike, prefix: str = "") -> dict[str, SampleSpec]:
    """Read a topcoffea cfg: JSON sample files / ROOT files per line, ``#`` comments, prefix lines.

    Args:
        path: the cfg file.
        prefix: the prefix in force before the first prefix line (``--prefix``).

    Returns:
        The samples by name, in the cfg's order.

    Raises:
        CfgError: naming the cfg file and line of the first bad entry.

    Example:
        >>> sorted(read_cfg("analysis_examples/topeft/cfg/demo.cfg"))
        ['data_like', 'ttH_like', 'ttZ_like']
    """
    reader = _CfgReader(prefix=prefix)
    reader.read_file(Path(path))
    if not reader.samples:
        raise CfgError("no samples: the cfg names no JSON sample file nor ROOT file", path)
    return reader.samples


def read_inputs(inputs: str, prefix: str = "") -> dict[str, SampleSpec]:
    """What ``work_queue_run.py`` takes: a cfg file, or comma-separated JSON / ROOT files.

    Example:
        >>> list(read_inputs("analysis_examples/data/sample/ttH_like.json"))
        ['ttH_like']
    """
    entries = [e.strip() for e in inputs.split(",") if e.strip()]
    if len(entries) == 1 and entries[0].lower().endswith(".cfg"):
        return read_cfg(entries[0], prefix)
    reader = _CfgReader(prefix=prefix)
    reader.read_lines([", ".join(entries)], Path.cwd(), "<command line>")
    if not reader.samples:
        raise CfgError(f"no samples in {inputs!r}", "<command line>")
    return reader.samples


def fileset_from_samples(samples: Mapping[str, SampleSpec], treename: str = DEFAULT_TREENAME) -> dict:
    """The coffea fileset of ``samples``: ``{name: {"treename", "files", "metadata"}}``.

    Args:
        samples: from :func:`read_cfg`.
        treename: the tree of samples whose JSON gives no ``treeName`` (ROOT-file lines).

    Example:
        >>> fs = fileset_from_samples(read_cfg("analysis_examples/topeft/cfg/demo.cfg"))
        >>> fs["ttH_like"]["metadata"]["xsec"]
        0.5071
    """
    return {
        name: {"treename": spec.treename or treename, "files": list(spec.files), "metadata": spec.metadata()}
        for name, spec in samples.items()
    }

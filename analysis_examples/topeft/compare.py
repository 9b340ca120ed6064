"""Compare two coffea outputs exactly, bin by bin, whatever order their chunks were merged in.

Executors merge chunk outputs in different orders, so growing category axes (``dataset``,
``category``) may list their labels in different orders; :func:`canonical` sorts them away.
Values are compared exactly (``==``), which is right for the example processor whose weights are
integers.

Example:
    >>> assert_outputs_equal(out_iterative, out_work_queue)          # doctest: +SKIP
    AssertionError: histogram 'lep0pt' [dataset=ttH_like, category=3l] bin pt=[40.0, 50.0): value 12.0 != 13.0
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import hist
import numpy as np

CATEGORY_AXES = (hist.axis.StrCategory, hist.axis.IntCategory)


def _bin_labels(axis) -> list[str]:
    """Labels of an axis's bins including flow bins, in the order of ``values(flow=True)``."""
    labels = []
    if axis.traits.underflow:
        labels.append("underflow")
    for index in range(len(axis)):
        edges = axis.bin(index)
        labels.append(f"[{edges[0]}, {edges[1]})" if isinstance(edges, tuple) else str(edges))
    if axis.traits.overflow:
        labels.append("overflow")
    return labels


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _canonical_hist(h: hist.Hist) -> dict:
    category_axes = [a for a in h.axes if isinstance(a, CATEGORY_AXES)]
    other_axes = [a for a in h.axes if not isinstance(a, CATEGORY_AXES)]
    labels = {a.name: sorted(a, key=str) for a in category_axes}
    slices = {}
    for combo in itertools.product(*(labels[a.name] for a in category_axes)):
        selection = {a.name: value for a, value in zip(category_axes, combo, strict=True)}
        view = h[selection] if selection else h
        key = ", ".join(f"{name}={value}" for name, value in selection.items())
        if other_axes:
            variances = view.variances(flow=True)
            slices[key] = {"values": view.values(flow=True).tolist(),
                           "variances": None if variances is None else variances.tolist()}
        else:  # every axis was a category: the slice is one accumulator
            slices[key] = {"values": _plain(getattr(view, "value", view)),
                           "variances": _plain(getattr(view, "variance", None))}
    return {
        "__hist__": True,
        "storage": type(h.storage_type()).__name__,
        "axes": {a.name: {"type": type(a).__name__, "bins": _bin_labels(a)} for a in other_axes},
        "categories": {name: [str(v) for v in values] for name, values in labels.items()},
        "slices": slices,
    }


def canonical(output: Any) -> Any:
    """A plain, order-independent form of a coffea output, for exact comparison.

    Dicts become dicts with string keys; ``hist.Hist`` objects become their per-category-label
    slices (``values`` and ``variances`` with flow bins, as nested lists); sets become sorted lists;
    numpy scalars and arrays become Python numbers and lists.

    Example:
        >>> canonical({"n": {"a": np.int64(3)}, "s": {2, 1}})
        {'n': {'a': 3}, 's': [1, 2]}
    """
    if isinstance(output, hist.Hist):
        return _canonical_hist(output)
    if isinstance(output, Mapping):
        return {str(k): canonical(v) for k, v in sorted(output.items(), key=lambda kv: str(kv[0]))}
    if isinstance(output, set | frozenset):
        return sorted((canonical(v) for v in output), key=repr)
    if isinstance(output, list | tuple):
        return [canonical(v) for v in output]
    return _plain(output)


def _first_array_difference(a, b) -> tuple[tuple[int, ...], Any, Any] | None:
    left, right = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if left.shape != right.shape:
        return (), f"shape {left.shape}", f"shape {right.shape}"
    unequal = np.argwhere(left != right)
    if len(unequal) == 0:
        return None
    index = tuple(int(i) for i in unequal[0])
    return index, left[index], right[index]


def _hist_difference(path: str, a: dict, b: dict) -> str | None:
    for part in ("storage", "axes", "categories"):
        if a[part] != b[part]:
            return f"histogram {path}: {part} differ: {a[part]} != {b[part]}"
    axes = list(a["axes"].items())
    for key in a["slices"]:
        for field in ("values", "variances"):
            if not axes:
                left, right = a["slices"][key][field], b["slices"][key][field]
                if left != right:
                    return f"histogram {path} [{key}]: {field[:-1]} {left!r} != {right!r}"
                continue
            found = _first_array_difference(a["slices"][key][field], b["slices"][key][field])
            if found is not None:
                index, left, right = found
                where = ", ".join(f"{name}={info['bins'][i]}" for (name, info), i in zip(axes, index, strict=False))
                return f"histogram {path} [{key}] bin {where}: {field[:-1]} {left!r} != {right!r}"
    return None


def first_difference(a: Any, b: Any, path: str = "output") -> str | None:
    """The first difference between two canonical outputs, in words, or None when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.get("__hist__") and b.get("__hist__"):
            return _hist_difference(repr(path.split("/")[-1]) if "/" in path else path, a, b)
        if a.keys() != b.keys():
            only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
            return f"{path}: keys differ: only in first {only_a}, only in second {only_b}"
        for key in a:
            found = first_difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
        return f"{path}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if a != b:
        return f"{path}: {a!r} != {b!r}"
    return None


def assert_outputs_equal(a: Any, b: Any) -> None:
    """Raise ``AssertionError`` naming the first differing histogram bin / cutflow entry / key.

    Example:
        >>> assert_outputs_equal({"cutflow": {"tt": {"all": 10}}}, {"cutflow": {"tt": {"all": 11}}})
        Traceback (most recent call last):
        ...
        AssertionError: output/cutflow/tt/all: 10 != 11
    """
    found = first_difference(canonical(a), canonical(b))
    if found is not None:
        raise AssertionError(found)

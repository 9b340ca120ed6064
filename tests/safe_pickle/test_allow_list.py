"""The result allow-list (safe_pickle/allow_list.py): real coffea outputs load, hostile pickles do not."""

from __future__ import annotations

import collections
import enum
import os
import pickle
import subprocess
from functools import partial

import awkward as ak
import hist
import lz4.frame
import numpy as np
import pytest
from coffea import processor

from coffea_wq.safe_pickle.allow_list import (
    RefusedResultError,
    ResultPolicy,
    loads_result,
    pickled_modules,
    user_modules_of,
)
from coffea_wq.safe_pickle.remote_exceptions import rebuild_chain
from tests.executor import nano


class Colour(enum.Enum):
    RED = 1


def _outputs():
    h = hist.Hist.new.Reg(10, 0, 1, name="x").StrCat([], growth=True, name="d").Weight()
    h.fill(x=[0.1, 0.5], d=["a", "b"], weight=[1, 2])
    return [
        h, np.arange(5.0), np.float32(3), np.zeros(2, dtype=[("a", "f4"), ("b", "i8")]), np.ma.masked_array([1, 2], [0, 1]),
        ak.Array([[1, 2], [3]]), ak.Array([{"x": 1, "y": [1.0]}]),
        processor.dict_accumulator({"v": processor.value_accumulator(float), "c": processor.column_accumulator(np.arange(3)),
                                    "s": processor.set_accumulator({"a"}), "d": processor.defaultdict_accumulator(int)}),
        collections.defaultdict(list, {"a": [1]}), collections.OrderedDict(a=1), collections.Counter("aa"), {1, 2}, 1j,
    ]


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_real_coffea_outputs_load(protocol):
    for value in _outputs():
        back = loads_result(pickle.dumps(value, protocol=protocol), ResultPolicy())
        assert type(back) is type(value)
    h = _outputs()[0]
    assert loads_result(pickle.dumps(h), ResultPolicy()) == h


class Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return self.target


@pytest.mark.parametrize("target, refused", [
    ((os.system, ("true",)), "posix.system"),
    ((subprocess.Popen, (["true"],)), "subprocess.Popen"),
    ((np.memmap, ("x", np.uint8, "w+", 0, (4,))), "numpy.memmap"),
    ((np.save, ("x", [1])), "numpy.save"),
    ((eval, ("1",)), "builtins.eval"),
    ((partial, (print, 1)), "functools.partial"),
    ((getattr, (np.ndarray, "tofile")), "builtins.getattr"),
])
def test_hostile_pickles_are_refused_naming_what_they_build(tmp_path, target, refused):
    with pytest.raises(RefusedResultError) as failure:
        loads_result(pickle.dumps(Hostile(target)), ResultPolicy())
    assert failure.value.qualified == refused
    assert not (tmp_path / "x").exists() and not os.path.exists("x.npy")


def test_a_reexported_class_counts_where_it_is_defined():
    import coffea.processor.executor as executor_module

    assert executor_module.partial is partial  # coffea.processor's module imports functools.partial
    # protocol 0 by hand: partial(print, 1) looked up through the allowed module
    data = b"ccoffea.processor.executor\npartial\n(cbuiltins\nprint\nI1\ntR."
    with pytest.raises(RefusedResultError, match="it is functools.partial"):
        loads_result(data, ResultPolicy())


def test_allowed_result_modules_extend_the_list():
    data = pickle.dumps(Colour.RED)
    with pytest.raises(RefusedResultError, match=f"{__name__}.Colour"):
        loads_result(data, ResultPolicy.build([], user_modules=[]))
    assert loads_result(data, ResultPolicy.build([__name__])) is Colour.RED
    assert loads_result(data, ResultPolicy.build([f"{__name__}:Colour"])) is Colour.RED
    assert loads_result(data, ResultPolicy.build([], user_modules=[__name__])) is Colour.RED
    assert loads_result(pickle.dumps(Hostile((os.getcwd, ()))), ResultPolicy.build(["posix:getcwd"])) == os.getcwd()


def test_the_users_modules_are_read_from_the_processor_without_loading_it():
    processor_bytes = lz4.frame.compress(pickle.dumps(nano.LeptonJetProcessor()))
    assert "tests.executor.nano" in pickled_modules(processor_bytes)
    closure = partial(print, processor_instance=processor_bytes)
    modules = user_modules_of(closure)
    assert "tests.executor.nano" in modules
    assert not any(m.split(".")[0] in ("numpy", "coffea", "builtins", "hist") for m in modules)


def test_exceptions_are_rebuilt_from_data_only():
    chain = rebuild_chain([
        {"classes": [["no.such.module", "Boom"], ["builtins", "KeyError"]], "args": ["Jet_pt"]},
        {"classes": [["builtins", "FileNotFoundError"]], "args": [2, "gone"], "attrs": {}},
        {"classes": [["os", "system"]], "args": ["true"]},  # not an exception class: dropped
    ])
    assert type(chain) is KeyError and chain.args == ("Jet_pt",)
    assert isinstance(chain.__cause__, FileNotFoundError) and chain.__cause__.errno == 2
    assert chain.__cause__.__cause__ is None

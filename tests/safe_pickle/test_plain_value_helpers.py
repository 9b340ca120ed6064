"""Plain values that pickles build through helpers: built-in exceptions, and dill's three helpers.

dill pickles a numpy array through ``dill._dill._create_array``, ``ValueError`` through
``_load_type`` and ``range`` through ``_eval_repr`` (an ``eval``). The allow-list hands out
checked stand-ins for these (dill is never imported) and refuses the rest of dill. The hostile
pickles are written by hand, opcode by opcode, as a rogue worker would.
"""

from __future__ import annotations

import io
import pickle

import pytest

from coffea_wq.safe_pickle.allow_list import (
    RefusedResultError,
    ResultPolicy,
    first_refused_global,
    loads_result,
)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_builtin_exceptions_load_as_values(protocol):
    error = KeyError("Jet_pt")
    error.note_here = "kept"  # an attribute travels in the pickle's state
    values = [ValueError("bad", 42), error, FileNotFoundError(2, "gone"), StopIteration(7)]
    data = pickle.dumps(values, protocol=protocol)
    assert first_refused_global(io.BytesIO(data), ResultPolicy()) is None
    back = loads_result(data, ResultPolicy())
    assert [type(v) for v in back] == [ValueError, KeyError, FileNotFoundError, StopIteration]
    assert back[0].args == ("bad", 42) and back[1].note_here == "kept" and back[2].errno == 2
    assert back[3].value == 7


def _dill_call(helper: str, *args: bytes) -> bytes:
    """A protocol-0 pickle calling ``dill._dill.<helper>`` with the already-encoded ``args``."""
    return b"cdill._dill\n" + helper.encode() + b"\n(" + b"".join(args) + b"tR."


def test_dills_range_is_parsed_never_evaluated(tmp_path):
    assert loads_result(_dill_call("_eval_repr", b"Vrange(1, 9, 2)\n"), ResultPolicy()) == range(1, 9, 2)
    assert loads_result(_dill_call("_eval_repr", b"Vrange(-3, 4)\n"), ResultPolicy()) == range(-3, 4)
    marker = tmp_path / "pwned"
    hostile = _dill_call("_eval_repr", f"V__import__('os').system('touch {marker}')\n".encode())
    with pytest.raises(RefusedResultError, match="is not a range") as refused:
        loads_result(hostile, ResultPolicy())
    assert refused.value.qualified == "dill._dill._eval_repr"
    assert not marker.exists()


@pytest.mark.parametrize("name", ["FunctionType", "CodeType", "ModuleType", "eval", 3])
def test_dills_load_type_gives_only_plain_builtin_types(name):
    argument = f"V{name}\n".encode() if isinstance(name, str) else b"I3\n"
    with pytest.raises(RefusedResultError, match="dill's type"):
        loads_result(_dill_call("_load_type", argument), ResultPolicy())
    assert loads_result(_dill_call("_load_type", b"Vlist\n"), ResultPolicy()) is list
    assert loads_result(_dill_call("_load_type", b"VOverflowError\n"), ResultPolicy()) is OverflowError


def test_dills_create_array_must_build_an_array():
    # a rebuilder that is allowed (OrderedDict) but is not numpy's: refused once it built something else
    data = _dill_call("_create_array", b"ccollections\nOrderedDict\n)NN")
    with pytest.raises(RefusedResultError, match="it built a OrderedDict, not an array"):
        loads_result(data, ResultPolicy())


def test_the_rest_of_dill_is_refused_and_flagged_by_name():
    for helper in ("_create_function", "_create_code", "_create_type", "_import_module", "_get_attr"):
        data = _dill_call(helper, b"Vx\n")
        assert first_refused_global(io.BytesIO(data), ResultPolicy()) == f"dill._dill.{helper}"
        with pytest.raises(RefusedResultError) as refused:
            loads_result(data, ResultPolicy())
        assert refused.value.qualified == f"dill._dill.{helper}"
    assert first_refused_global(io.BytesIO(_dill_call("_load_type", b"Vlist\n")), ResultPolicy()) is None

"""topcoffea cfg files: comments, prefixes, JSON sample files, ROOT files, errors naming file:line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis_examples.topeft.cfg import (
    CfgError,
    fileset_from_samples,
    join_prefix,
    read_cfg,
    read_inputs,
    read_sample_json,
)
from tests.support import REPO

SAMPLE_DIR = REPO / "analysis_examples" / "data" / "sample"
DEMO_CFG = REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"


def write_json(path: Path, **fields) -> Path:
    data = {"xsec": 1.5, "year": 2017, "treeName": "Events", "files": ["a.root"], "nEvents": 10,
            "nGenEvents": 10, "nSumOfWeights": 9.5, "isData": False}
    data.update(fields)
    path.write_text(json.dumps(data, indent=1))
    return path


def test_demo_cfg_lists_the_bundled_samples():
    samples = read_cfg(DEMO_CFG)
    assert list(samples) == ["ttH_like", "ttZ_like", "data_like"]
    tth = samples["ttH_like"]
    assert tth.files == [str(SAMPLE_DIR / "ttH_like_0.root"), str(SAMPLE_DIR / "ttH_like_1.root")]
    assert all(Path(f).is_file() for f in tth.files)
    assert tth.xsec == 0.5071 and not tth.is_data and tth.treename == "Events"
    assert samples["data_like"].is_data
    assert tth.origin.endswith("demo.cfg:8")


def test_comments_prefixes_commas_and_root_lines(tmp_path):
    (tmp_path / "json").mkdir()
    write_json(tmp_path / "json" / "ttW.json", files=["/store/mc/ttW_1.root", "/store/mc/ttW_2.root"])
    write_json(tmp_path / "json" / "ttZ.json", files=["ttZ.root"])
    write_json(tmp_path / "json" / "local.json", files=["sub/x.root"])
    root_file = tmp_path / "extra.root"
    root_file.write_bytes(b"")
    cfg = tmp_path / "list.cfg"
    cfg.write_text(
        "# a comment line\n"
        "\n"
        "json/local.json   # no prefix yet: files relative to the JSON file\n"
        "root://xrootd.example.org/\n"
        "json/ttW.json, json/ttZ.json  # two samples on one line\n"
        "/data/eos   # a new prefix\n"
        f"{root_file}\n"
    )
    samples = read_cfg(cfg)
    assert list(samples) == ["local", "ttW", "ttZ", "extra"]
    assert samples["local"].files == [str(tmp_path / "json" / "sub" / "x.root")]
    assert samples["ttW"].files == ["root://xrootd.example.org//store/mc/ttW_1.root",
                                    "root://xrootd.example.org//store/mc/ttW_2.root"]
    assert samples["ttZ"].files == ["root://xrootd.example.org/ttZ.root"]
    assert samples["ttZ"].prefix == "root://xrootd.example.org/"
    assert samples["extra"].files == [str(root_file)]
    assert samples["extra"].treename is None
    assert samples["ttW"].year == "2017"
    assert samples["ttZ"].origin == f"{cfg}:5"


def test_initial_prefix_and_paths_relative_to_the_current_directory(tmp_path, monkeypatch):
    write_json(tmp_path / "s.json", files=["f.root"])
    cfg_dir = tmp_path / "cfgs"
    cfg_dir.mkdir()
    (cfg_dir / "c.cfg").write_text("s.json\n")  # not beside the cfg: found from the current directory
    monkeypatch.chdir(tmp_path)
    samples = read_cfg(cfg_dir / "c.cfg", prefix="/mnt/data")
    assert samples["s"].files == ["/mnt/data/f.root"]


def test_a_cfg_can_include_another_and_its_prefix_stays_inside(tmp_path):
    write_json(tmp_path / "a.json", files=["a.root"])
    write_json(tmp_path / "b.json", files=["b.root"])
    (tmp_path / "inner.cfg").write_text("root://inner/\na.json\n")
    (tmp_path / "outer.cfg").write_text("inner.cfg\nb.json\n")
    samples = read_cfg(tmp_path / "outer.cfg")
    assert samples["a"].files == ["root://inner/a.root"]
    assert samples["b"].files == [str(tmp_path / "b.root")]


def test_join_prefix():
    assert join_prefix("root://host/", "/store/a.root") == "root://host//store/a.root"
    assert join_prefix("root://host", "/store/a.root") == "root://host//store/a.root"
    assert join_prefix("/data", "a.root") == "/data/a.root"
    assert join_prefix("", "a.root") == "a.root"


@pytest.mark.parametrize(
    ("lines", "line_number", "words"),
    [
        (["# header", "", "missing.json"], 3, "sample file 'missing.json' not found"),
        (["ok.json", "typo.root  # not there"], 2, "sample file 'typo.root' not found"),
        (["notes.txt"], 1, "neither a JSON sample file, a ROOT file nor a cfg"),
        (["ok.json", "ok.json"], 2, "already declared at"),
        (["broken.json"], 1, "broken.json:3: invalid JSON"),
        (["nofiles.json"], 1, "key 'files' must be a non-empty list"),
        (["badxsec.json"], 1, "key 'xsec' must be a number"),
        (["baddata.json"], 1, "key 'isData' must be true or false"),
    ],
)
def test_a_bad_line_is_named_with_file_and_line(tmp_path, lines, line_number, words):
    write_json(tmp_path / "ok.json")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "broken.json").write_text('{\n "files": ["a.root"],\n "xsec": ,\n}\n')
    write_json(tmp_path / "nofiles.json", files=[])
    write_json(tmp_path / "badxsec.json", xsec="big")
    write_json(tmp_path / "baddata.json", isData="yes")
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    with pytest.raises(CfgError) as caught:
        read_cfg(cfg)
    message = str(caught.value)
    assert message.startswith(f"{cfg}:{line_number}: "), message
    assert words in message
    assert caught.value.line == line_number and caught.value.path == str(cfg)


def test_empty_or_unreadable_cfg(tmp_path):
    (tmp_path / "empty.cfg").write_text("# nothing here\n\nroot://only-a-prefix/\n")
    with pytest.raises(CfgError, match="empty.cfg: no samples"):
        read_cfg(tmp_path / "empty.cfg")
    with pytest.raises(CfgError, match="absent.cfg: cannot read cfg file"):
        read_cfg(tmp_path / "absent.cfg")


def test_a_cfg_including_itself_is_an_error(tmp_path):
    (tmp_path / "loop.cfg").write_text("loop.cfg\n")
    with pytest.raises(CfgError, match="includes itself"):
        read_cfg(tmp_path / "loop.cfg")


def test_read_sample_json_alone():
    spec = read_sample_json(SAMPLE_DIR / "ttZ_like.json")
    assert spec.name == "ttZ_like" and spec.n_events == 5000 and spec.hist_axis_name == "ttZ_like"
    assert spec.sum_of_weights > 0 and spec.wc_names == []


def test_read_inputs_takes_a_cfg_or_comma_separated_files(monkeypatch):
    monkeypatch.chdir(REPO)
    assert list(read_inputs(os.path.relpath(DEMO_CFG, REPO))) == ["ttH_like", "ttZ_like", "data_like"]
    samples = read_inputs("analysis_examples/data/sample/ttH_like.json,analysis_examples/data/sample/data_like_0.root")
    assert list(samples) == ["ttH_like", "data_like_0"]
    with pytest.raises(CfgError, match="<command line>:1: sample file 'nope.json' not found"):
        read_inputs("nope.json")


def test_fileset_from_samples_carries_tree_and_metadata(tmp_path):
    write_json(tmp_path / "mc.json", treeName="Friends", files=["mc.root"])
    (tmp_path / "lone.root").write_bytes(b"")
    (tmp_path / "c.cfg").write_text("mc.json\nlone.root\n")
    fileset = fileset_from_samples(read_cfg(tmp_path / "c.cfg"), treename="Events")
    assert fileset["mc"] == {"treename": "Friends", "files": [str(tmp_path / "mc.root")],
                             "metadata": {"isData": False, "xsec": 1.5, "year": "2017"}}
    assert fileset["lone"]["treename"] == "Events"
    assert fileset["lone"]["metadata"] == {"isData": False}

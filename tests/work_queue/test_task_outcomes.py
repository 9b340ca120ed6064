"""What a Task's files and command come back as (our own checks of the behaviours CCTools' Python
tests cover), plus ``wait_for_tag``, ``specify_url``, ``specify_file_command`` and file pieces.
Every check runs against both workers.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import stat
import threading

import pytest

import coffea_wq.work_queue as wq
from tests.support import free_port
from tests.work_queue.helpers import WORKER_KINDS, queue_with_worker, wait_for


@pytest.fixture(params=WORKER_KINDS)
def kind_and_queue(request, processes, tmp_path):
    q = queue_with_worker(request.param, processes, tmp_path / "worker")
    yield request.param, q
    q.shutdown()


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("hello world\n")
    shutil.copy("/bin/cat", data / "mycat")
    (data / "mycat").chmod(stat.S_IRWXU)
    return data


def run(q: wq.WorkQueue, task: wq.Task) -> wq.Task:
    q.submit(task)
    return wait_for(q, 60)


@pytest.mark.slow
def test_files_in_and_out_and_exit_codes(kind_and_queue, files):
    _, q = kind_and_queue
    # an executable and an input sent, an output brought back
    t = wq.Task("./mycat input.txt > out1.txt")
    t.specify_input_file(str(files / "mycat"), "mycat")
    t.specify_input_file(str(files / "input.txt"), "input.txt")
    t.specify_output_file(str(files / "out1.txt"), "out1.txt")
    t = run(q, t)
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 0)
    assert (files / "out1.txt").read_text() == "hello world\n"

    # a whole directory sent (recursive), an output written inside it
    t = wq.Task("cd my_dir && ./mycat input.txt > out2.txt")
    t.specify_directory(str(files), "my_dir", recursive=True)
    t.specify_output_file(str(files / "out2.txt"), "my_dir/out2.txt")
    t = run(q, t)
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 0)
    assert (files / "out2.txt").read_text() == "hello world\n"

    # an output directory brought back with what the task wrote in it
    t = wq.Task("mkdir outs && echo inside > outs/one.txt")
    t.specify_directory(str(files / "outs"), "outs", type=wq.WORK_QUEUE_OUTPUT)
    t = run(q, t)
    assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert (files / "outs" / "one.txt").read_text() == "inside\n"

    # a file that is not executable: the shell says 126; a command that does not exist: 127
    t = wq.Task("./input.txt")
    t.specify_input_file(str(files / "input.txt"), "input.txt")
    t = run(q, t)
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 126)
    t = run(q, wq.Task("./not-a-command"))
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 127)

    # an input that does not exist here: INPUT_MISSING, never run
    t = wq.Task("./not-a-command")
    t.specify_input_file(str(files / "absent"), "absent")
    t = run(q, t)
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_INPUT_MISSING, -1)

    # a declared output the command did not make: OUTPUT_MISSING, with the command's own status
    t = wq.Task("./mycat input.txt")
    t.specify_input_file(str(files / "mycat"), "mycat")
    t.specify_input_file(str(files / "input.txt"), "input.txt")
    t.specify_output_file(str(files / "never.txt"), "never.txt")
    t = run(q, t)
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_OUTPUT_MISSING, 0)


@pytest.mark.slow
def test_wait_for_tag_leaves_other_tasks_for_wait(kind_and_queue):
    _, q = kind_and_queue
    for tag in ("first", "second", "third"):
        t = wq.Task(f"echo {tag}")
        t.specify_tag(tag)
        t.specify_cores(1)
        q.submit(t)
    second = wait_for(q, 60, tag="second")
    assert (second.tag, second.output.strip()) == ("second", "second")
    assert q.wait_for_tag("no-such-tag", 0.5) is None
    rest = {wait_for(q, 60).tag, wait_for(q, 60).tag}
    assert rest == {"first", "third"} and q.empty()


@pytest.fixture
def http_root(tmp_path):
    """A file server on 127.0.0.1 serving ``tmp_path / "www"``; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
def test_inputs_made_on_the_worker_from_a_url_and_a_command(kind_and_queue, http_root):
    kind, q = kind_and_queue
    root, base = http_root
    (root / "remote.txt").write_text("served over http\n")
    t = wq.Task("cat fetched.txt made.txt piece.txt")
    t.specify_url(f"{base}/remote.txt", "fetched.txt", cache=True)
    t.specify_file_command("made.txt", "echo made by a command > %%", cache=False)
    t.specify_file_piece(str(root / "remote.txt"), "piece.txt", 7, 10)  # bytes 7..10 included: "over"
    t = run(q, t)
    assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 0), t.output
    assert t.output == "served over http\nmade by a command\nover"
    if kind == "coffea-wq":
        # a URL nobody serves: the task does not run and comes back as INPUT_MISSING
        t = wq.Task("cat gone.txt")
        t.specify_url(f"http://127.0.0.1:{free_port()}/gone.txt", "gone.txt")
        t = run(q, t)
        assert t.result == wq.WORK_QUEUE_RESULT_INPUT_MISSING, (t.result_str, t.output)


def test_outputs_to_urls_or_commands_are_refused():
    t = wq.Task("true")
    with pytest.raises(NotImplementedError, match="URL"):
        t.specify_url("http://example.invalid/x", "x", type=wq.WORK_QUEUE_OUTPUT)
    with pytest.raises(NotImplementedError, match="output commands"):
        t.specify_file_command("x", "cp %% /tmp", type=wq.WORK_QUEUE_OUTPUT)

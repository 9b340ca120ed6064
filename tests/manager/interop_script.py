"""One Work Queue script for both managers: ``--module work_queue`` (CCTools) or ``coffea_wq.work_queue``.

Prints ``PORT <n>`` once listening, waits for the workers the caller starts, runs the task mix and
prints one JSON line: every task's tag, result, return_status, output and the files it produced.
Runs under /usr/bin/python3 with Debian's module too, so it uses only the standard library.
"""

import argparse
import importlib
import json
import os
import socket
import sys
import time


def task_mix(wq, count, workdir):
    """(tag, task) pairs covering inputs, cached inputs, buffers, outputs, dirs, failures."""
    shared = os.path.join(workdir, "shared.txt")
    with open(shared, "w") as handle:
        handle.write("shared input\n")
    os.makedirs(os.path.join(workdir, "out"), exist_ok=True)
    for i in range(count):
        kind = i % 8
        own = os.path.join(workdir, f"in-{i}.txt")
        with open(own, "w") as handle:
            handle.write(f"input {i}\n")
        out = os.path.join(workdir, "out", f"t{i}")
        if kind == 0:
            t = wq.Task("cat in.txt shared.txt > result.txt; echo done $N")
            t.specify_input_file(own, "in.txt", cache=False)
            t.specify_input_file(shared, "shared.txt", cache=True)
            t.specify_output_file(out + ".txt", "result.txt", cache=False)
            t.specify_environment_variable("N", str(i))
        elif kind == 1:
            t = wq.Task("mkdir -p d/sub && echo deep > d/sub/f.txt && echo top > d/g.txt && echo made dir")
            t.specify_directory(out + "-dir", "d", wq.WORK_QUEUE_OUTPUT, recursive=True, cache=False)
        elif kind == 2:
            t = wq.Task("echo no file here")
            t.specify_output_file(out + "-missing.txt", "missing.txt", cache=False)
        elif kind == 3:
            t = wq.Task("echo to-stderr >&2; echo partial; exit 3")
        elif kind == 4:
            t = wq.Task("echo before; kill -9 $$")
        elif kind == 5:
            t = wq.Task("cat buf.txt; wc -c < shared.txt")
            t.specify_buffer(f"buffer {i}\n", "buf.txt", cache=False)
            t.specify_input_file(shared, "shared.txt", cache=True)
        elif kind == 6:
            t = wq.Task('echo "$GREETING" > greeting.txt; cat greeting.txt')
            t.specify_environment_variable("GREETING", f"hello {i} world")
            t.specify_output_file(out + "-greeting.txt", "greeting.txt", cache=False)
        else:
            t = wq.Task("mkdir -p indir-copy && cp -r indir/. indir-copy/ && ls indir-copy | sort")
            indir = os.path.join(workdir, f"indir-{i}")
            os.makedirs(os.path.join(indir, "sub"), exist_ok=True)
            with open(os.path.join(indir, "a.txt"), "w") as handle:
                handle.write("A\n")
            with open(os.path.join(indir, "sub", "b.txt"), "w") as handle:
                handle.write("B\n")
            t.specify_directory(indir, "indir", wq.WORK_QUEUE_INPUT, recursive=True, cache=False)
            t.specify_directory(out + "-copy", "indir-copy", wq.WORK_QUEUE_OUTPUT, recursive=True, cache=False)
        t.specify_tag(f"task-{i}")
        t.specify_cores(1)
        t.specify_memory(50)
        t.specify_disk(50)
        yield f"task-{i}", t


def files_under(path):
    """{relative path: contents} of what a task produced locally."""
    found = {}
    for candidate in sorted(p for p in os.listdir(os.path.dirname(path)) if p.startswith(os.path.basename(path) + ".") or p.startswith(os.path.basename(path) + "-")):
        full = os.path.join(os.path.dirname(path), candidate)
        if os.path.isdir(full):
            for root, _dirs, names in os.walk(full):
                for name in sorted(names):
                    rel = os.path.relpath(os.path.join(root, name), os.path.dirname(path))
                    with open(os.path.join(root, name)) as handle:
                        found[rel] = handle.read()
        else:
            with open(full) as handle:
                found[candidate] = handle.read()
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args()
    wq = importlib.import_module(args.module)
    os.chdir(args.workdir)
    q = wq.WorkQueue(port=0)
    print(f"PORT {q.port}", flush=True)
    tags = {}
    for tag, t in task_mix(wq, args.count, args.workdir):
        tags[q.submit(t)] = tag
    slow = wq.Task("echo started; sleep 20")  # killed by the worker after its maximum running time
    slow.specify_running_time_max(1)
    slow.specify_tag("task-walltime")
    slow.specify_cores(1)
    slow.specify_memory(50)
    slow.specify_disk(50)
    tags[q.submit(slow)] = "task-walltime"
    results = {}
    deadline = time.time() + args.timeout
    while not q.empty() and time.time() < deadline:
        t = q.wait(1)
        if t is None:
            continue
        index = t.tag.split("-")[1]
        output = (t.output or "").replace(t.hostname or socket.gethostname(), "<HOST>")
        results[t.tag] = {
            "id_matches_tag": tags.get(t.id) == t.tag,
            "result": t.result,
            "result_str": t.result_str,
            "return_status": t.return_status,
            "output": output,
            "command": t.command,
            "files": files_under(os.path.join(args.workdir, "out", f"t{index}")),
        }
    print(json.dumps({"results": results, "tasks_done": q.stats.tasks_done}, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

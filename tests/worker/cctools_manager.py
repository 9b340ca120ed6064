"""A real CCTools manager (Debian's python3-workqueue), run with /usr/bin/python3 by the worker tests.

usage: cctools_manager.py MODE WORKDIR [--password FILE] [--name NAME] [--catalog PORT]
Prints "PORT <n>" once listening, then one JSON line per finished task, then "DONE".
MODE: probe (every kind of task), spread (many short tasks), single (one task).
"""

import json
import os
import sys
import time

import work_queue as wq


def option(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


mode, workdir = sys.argv[1], sys.argv[2]
os.chdir(workdir)
name = option("--name")
catalog = option("--catalog")
if catalog:
    os.environ["CATALOG_HOST"] = "127.0.0.1"
    os.environ["CATALOG_PORT"] = catalog
q = wq.WorkQueue(port=0, name=name)
if catalog:
    q.specify_catalog_server("127.0.0.1", int(catalog))
if option("--password"):
    q.specify_password_file(option("--password"))
q.specify_keepalive_interval(2)
print("PORT", q.port, flush=True)

labels = {}


def submit(task, label):
    labels[q.submit(task)] = label


if mode == "probe":
    with open("in.txt", "w") as f:
        f.write("line one\n")
    os.makedirs("indir/sub", exist_ok=True)
    with open("indir/a.txt", "w") as f:
        f.write("AAA\n")
    with open("indir/sub/b.txt", "w") as f:
        f.write("BBB\n")
    t = wq.Task('cat in.txt buf.txt; echo "E=$MYVAR"; echo made > out1.txt')
    t.specify_input_file("in.txt", "in.txt", cache=True)
    t.specify_buffer("buffer-contents\n", "buf.txt", cache=False)
    t.specify_output_file("out1.txt", "out1.txt", cache=False)
    t.specify_environment_variable("MYVAR", "hello world")
    submit(t, "files")
    t = wq.Task("ls indir indir/sub; mkdir -p odir/s; cp indir/a.txt odir/s/")
    t.specify_directory("indir", "indir", wq.WORK_QUEUE_INPUT, recursive=True, cache=False)
    t.specify_directory("odir_out", "odir", wq.WORK_QUEUE_OUTPUT, recursive=True, cache=False)
    t.specify_cores(1)
    t.specify_memory(100)
    t.specify_disk(50)
    submit(t, "dirs")
    t = wq.Task("echo no output")
    t.specify_output_file("missing.txt", "missing.txt", cache=False)
    t.specify_cores(1)
    submit(t, "missing")
    t = wq.Task("kill -9 $$")
    t.specify_cores(1)
    submit(t, "signal")
    t = wq.Task("echo to-stderr >&2; exit 7")
    t.specify_cores(1)
    submit(t, "exit7")
    t = wq.Task("sleep 30")
    t.specify_running_time_max(1)
    t.specify_cores(1)
    submit(t, "walltime")
elif mode == "spread":
    for i in range(8):
        t = wq.Task(f'sleep 0.5; echo "$WORK_QUEUE_SANDBOX {i}"')
        t.specify_cores(1)
        t.specify_memory(10)
        t.specify_disk(10)
        submit(t, f"spread-{i}")
else:
    t = wq.Task("echo single-task")
    t.specify_cores(1)
    submit(t, "single")

deadline = time.time() + float(option("--seconds", "60"))
while not q.empty() and time.time() < deadline:
    t = q.wait(1)
    if t:
        print(json.dumps({"label": labels[t.id], "result": t.result, "return_status": t.return_status,
                          "output": t.output}), flush=True)
print("DONE", flush=True)
if option("--exit-workers", "yes") == "yes":
    q.shutdown_workers(0)
    time.sleep(1)

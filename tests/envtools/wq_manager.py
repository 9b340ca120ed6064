"""A CCTools Work Queue manager run by Debian's /usr/bin/python3 (``import work_queue``).

Usage: wq_manager.py TASKS.json TIMEOUT_S. Prints the port on the first line, then (when every
task is back or the time is up) one JSON line with each task's return status and output.
TASKS.json: [{"command": str, "inputs": [[local_path, remote_name], ...], "cores": int}, ...]
"""

import json
import sys
import time

import work_queue as wq


def main():
    specs = json.load(open(sys.argv[1]))
    deadline = time.time() + float(sys.argv[2])
    queue = wq.WorkQueue(port=0)
    print(queue.port, flush=True)
    for index, spec in enumerate(specs):
        task = wq.Task(spec["command"])
        task.specify_tag(str(index))
        for local, remote in spec["inputs"]:
            task.specify_input_file(local, remote, cache=True)
        task.specify_cores(spec.get("cores", 1))
        task.specify_max_retries(1)
        queue.submit(task)
    results = []
    while not queue.empty() and time.time() < deadline:
        task = queue.wait(1)
        if task is not None:
            results.append({"tag": task.tag, "return_status": task.return_status, "result": task.result,
                            "output": task.output or ""})
    print(json.dumps(sorted(results, key=lambda r: int(r["tag"]))), flush=True)
    queue.shutdown_workers(0)


if __name__ == "__main__":
    main()

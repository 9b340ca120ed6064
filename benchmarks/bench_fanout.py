"""Fan-out of one cached input to many workers on hosts of their own, with and without peer transfers.

Each worker is a ``coffea-wq worker`` in a network namespace of its own (tests/netns_lab.py), the manager
in another, every link shaped to ``--rate`` (tbf, both ways). Every worker runs one task that needs the
cached input (``stat``: the task costs nothing, the transfer is what is measured; a worker checks the
SHA-256 of every file it gets from a peer), so every worker needs the file. Printed, for peer
transfers on and off:

* the makespan from submission to the last result, and its ratio to one transfer of the file over one
  link, measured in the same run two ways: a plain TCP copy between two namespaces, and the same task
  run on one worker through coffea-wq (which adds dispatch and the task): target <= 3x with peers;
* the copies the manager uploaded (its ``bytes_sent`` / the file's size): target <= 2 with peers.

Needs root (namespaces). Run: ``python benchmarks/bench_fanout.py`` (32 workers, 256 MB, 1gbit);
``--workers 8 --size-mb 64`` for a quick look. On a loaded or small machine the workers' CPU (hashing,
copying) rather than the links may bound the peer transfers' makespan.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import coffea_wq.work_queue as wq  # noqa: E402
from tests.netns_lab import NetnsLab, unavailable_reason  # noqa: E402

PORT = 9123
TARGET_TIME_RATIO = 3.0
TARGET_COPIES = 2.0
TIMEOUT_S = 1200


def one_transfer_seconds(lab: NetnsLab, sender, receiver, path: Path) -> float:
    """Seconds to copy ``path`` over one shaped link: a listener in ``receiver``, ``cat``-like sender."""
    with lab.entered(receiver):
        listener = socket.create_server((receiver.address, 0))
    port = listener.getsockname()[1]
    received = []

    def drain() -> None:
        conn, _ = listener.accept()
        total = 0
        while data := conn.recv(1 << 20):
            total += len(data)
        received.append(total)
        conn.close()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    start = time.monotonic()
    code = (f"import socket;s=socket.create_connection(('{receiver.address}',{port}));"
            f"s.sendfile(open({str(path)!r},'rb'));s.close()")
    lab.start(sender, [sys.executable, "-c", code]).wait(TIMEOUT_S)
    reader.join(TIMEOUT_S)
    elapsed = time.monotonic() - start
    listener.close()
    if received != [path.stat().st_size]:
        raise RuntimeError(f"the reference transfer moved {received} bytes, not {path.stat().st_size}")
    return elapsed


def fan_out(path: Path, workers: int, rate: str, peers: bool, workdir: Path,
            per_source: int | None = None) -> tuple[float, float, dict]:
    """(makespan s, copies uploaded by the manager, peer counts) of one run."""
    size = path.stat().st_size
    with NetnsLab() as lab:
        manager = lab.add_host("manager")
        lab.shape(manager, rate)
        with lab.entered(manager), wq.WorkQueue(port=PORT) as q:
            q.tune("peer-transfers", int(peers))
            if per_source:
                q.tune("peer-transfers-per-source", per_source)
            for i in range(workers):
                host = lab.add_host(f"w{i}")
                lab.shape(host, rate)
                where = workdir / f"{'on' if peers else 'off'}-w{i}"
                where.mkdir(parents=True)
                lab.start(host, [sys.executable, "-m", "coffea_wq", "worker", "--cores", "1", "--memory", "1000",
                                 "--disk", str(4 * size >> 20), "-t", "120", "-s", str(where), manager.address,
                                 str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while q.stats.workers_connected < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {q.stats.workers_connected} of {workers} workers connected")
                time.sleep(0.2)
            start = time.monotonic()
            for _ in range(workers):
                task = wq.Task(f"stat -c %s {path.name}")
                task.specify_input_file(str(path), path.name, cache=True)
                task.specify_cores(1)
                q.submit(task)
            outputs = set()
            while len(outputs) < workers and time.monotonic() - start < TIMEOUT_S:
                task = q.wait(1)
                if task is not None:
                    if task.result != wq.WORK_QUEUE_RESULT_SUCCESS or task.return_status != 0:
                        raise RuntimeError(f"task {task.id} failed: {task.result_string} {task.output!r}")
                    outputs.add((task.id, task.output.strip()))
            makespan = time.monotonic() - start
            if len(outputs) < workers or {size for _, size in outputs} != {str(size)}:
                raise RuntimeError(f"{len(outputs)} of {workers} results, sizes {outputs}")
            copies = q.stats.bytes_sent / size
            counts = q._manager.peer_transfer_counts()
    return makespan, copies, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rate", default="1gbit", help="each link's bandwidth, in tc's units (default 1gbit)")
    parser.add_argument("--only", choices=("on", "off"), help="run only peer transfers on, or off")
    parser.add_argument("--per-source", type=int, help="transfers one worker serves at once (default: the manager's)")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"bench_fanout: skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        workdir = Path(tmp)
        path = workdir / "env.tar.gz"
        with open(path, "wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1 << 20))
        with NetnsLab() as lab:
            a, b = lab.add_host("a"), lab.add_host("b")
            lab.shape(a, args.rate)
            lab.shape(b, args.rate)
            reference = one_transfer_seconds(lab, a, b, path)
        single, _, _ = fan_out(path, 1, args.rate, True, workdir / "single")
        print(f"{args.size_mb} MB to {args.workers} workers on {args.rate} links; one transfer: {reference:.2f} s "
              f"(TCP), {single:.2f} s (one worker's task through coffea-wq: transfer and dispatch)")
        ok = True
        for peers in (True, False):
            if args.only and args.only != ("on" if peers else "off"):
                continue
            makespan, copies, counts = fan_out(path, args.workers, args.rate, peers, workdir / f"run-{peers}",
                                               args.per_source)
            ratio, ratio_single = makespan / reference, makespan / single
            label = "peer transfers on " if peers else "peer transfers off"
            print(f"{label}: {makespan:7.2f} s = {ratio:5.2f}x one TCP transfer = {ratio_single:5.2f}x one worker's "
                  f"task; manager uploaded {copies:5.2f} copies; {counts}")
            if peers:
                print(f"targets: time <= {TARGET_TIME_RATIO:g}x one transfer: "
                      f"{'met' if ratio <= TARGET_TIME_RATIO else 'NOT met'} against TCP, "
                      f"{'met' if ratio_single <= TARGET_TIME_RATIO else 'NOT met'} against one worker's task; "
                      f"copies <= {TARGET_COPIES:g}: {'met' if copies <= TARGET_COPIES else 'NOT met'}")
                ok = ok and copies <= TARGET_COPIES
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

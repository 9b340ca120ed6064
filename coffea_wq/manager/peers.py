"""Where a worker gets a cached file from: the manager, or another worker (docs/manager.md,
"Peer transfers"; the messages are in docs/protocol.md, "Our extension: peer transfers").

Only workers that advertised a cache server (``info coffea-wq-peer-port PORT``, coffea-wq workers)
take part; every other worker, and every file that is not a cached regular file of at least
``min_bytes``, goes through the manager's ``put`` as before.

The rules, per cached file (name and local signature):

- the first copy comes from the manager, followed by ``cache-report``: the worker's ``cache-update``
  answer makes it a *holder*;
- later copies come from a holder, or a worker the file is on its way to (it passes the file on as
  it arrives), with a free slot (at most ``per_source`` transfers at once each), named in a
  ``peer-get``; with none free, the worker waits for one (each new copy is a source, so the file
  spreads down a tree whose fan-out is ``per_source``);
- a ``cache-invalid`` (the peer died, sent corrupt bytes, failed the password, ...) is logged with
  the source's address, that source is no longer asked for this file, and the manager sends the
  file itself;
- a task whose inputs are still on their way is held on its worker (resources reserved, block not
  sent) until each has arrived or the manager's ``put`` of it is queued ahead of the block.

Everything here runs on the manager's loop thread, with the manager lock held.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from coffea_wq.manager.queue import Counters
from coffea_wq.manager.task import FileKind, FileSpec
from coffea_wq.manager.transfers import InputMissing, input_pieces
from coffea_wq.manager.workers import Peer
from coffea_wq.protocol import messages as msg

log = logging.getLogger("coffea_wq.manager")

DEFAULT_MIN_BYTES = 1 << 20  # smaller files cost the manager less than a peer's round trips
# Concurrent transfers one worker serves. TaskVine serves 3; here a worker passes a file on while it
# arrives, so every link of the tree runs at 1/per_source of a link's rate and the last copy lands
# after about per_source transfer times: 2 makes that 2 rather than 3, for one more level of tree
# (docs/manager.md, "Peer transfers").
DEFAULT_PER_SOURCE = 2


@dataclass
class SharedFile:
    """One cached file as the peer planner follows it across workers."""

    name: str
    path: str
    signature: tuple
    mode: int
    digest: str = ""  # hex SHA-256, computed off the loop (PeerPlanner._digest_ready)
    hashing: bool = False
    unreadable: bool = False  # the digest could not be computed: every copy comes from the manager
    holders: set[int] = field(default_factory=set)  # workers that confirmed a whole copy
    arriving: dict[int, int] = field(default_factory=dict)  # worker -> its source (0: the manager)
    waiting: list[int] = field(default_factory=list)  # workers waiting for a source with a free slot
    serving: Counter = field(default_factory=Counter)  # source -> transfers it serves now
    refused: set[int] = field(default_factory=set)  # sources that failed once: not asked again
    # workers that held another version: until they confirm the new one, they might serve the old bytes
    stale: set[int] = field(default_factory=set)



def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(1 << 20):
            digest.update(data)
    return digest.hexdigest()


@dataclass
class PeerCounts:
    """What the planner did: copies by peers and by the manager, failures fallen back from."""

    peer_copies: int = 0
    manager_copies: int = 0
    failures: int = 0


class PeerPlanner:
    """Plans peer transfers for the manager's core.

    Args:
        peers: the manager's peers by key (``ManagerCore.peers``).
        counters: the queue's counters (the manager's own copies count in ``bytes_sent``).
    """

    def __init__(self, peers: dict[int, Peer], counters: Counters) -> None:
        self.peers = peers
        self.counters = counters
        self.enabled = True
        self.min_bytes = DEFAULT_MIN_BYTES
        self.per_source = DEFAULT_PER_SOURCE
        self.files: dict[str, SharedFile] = {}
        self.specs: dict[str, FileSpec] = {}
        self.counts = PeerCounts()
        # runs a function on the loop's terms (with the manager lock, then a wake-up); set by the server
        # so a large file's digest is computed in a thread, not on the loop. None: computed inline
        self.run_in_loop: Callable[[Callable[[], object]], object] | None = None
        self.source_names: dict[int, str] = {}  # source key -> "worker HOST (ADDRESS)", kept after it leaves

    # ------------------------------------------------------------------ at commit
    def eligible(self, spec: FileSpec, signature: tuple, worker: Peer) -> bool:
        if not (self.enabled and worker.peer_port and spec.cached and spec.kind is FileKind.FILE):
            return False
        return signature[0] >= self.min_bytes and not stat.S_ISDIR(os.stat(str(spec.local)).st_mode)

    def take(self, spec: FileSpec, signature: tuple, worker: Peer) -> bool:
        """Whether ``worker`` gets this input through the planner (True: the task must wait for it);
        False: the caller sends it with the task as usual (then ``sent_by_manager`` follows)."""
        if not self.eligible(spec, signature, worker):
            return False
        shared = self._shared(spec, signature)
        if worker.key in shared.arriving or worker.key in shared.waiting:
            return True
        if self._start_from_peer(shared, worker):
            return True
        if self._source_to_come(shared, worker):
            shared.waiting.append(worker.key)
            return True
        return False

    def sent_by_manager(self, spec: FileSpec, signature: tuple, worker: Peer) -> None:
        """The manager's put of an eligible file was queued: ask the worker to confirm it, to serve it on."""
        if not self.eligible(spec, signature, worker):
            return
        shared = self._shared(spec, signature)
        if worker.cache.get(spec.cached_name, signature) != signature:
            shared.stale.add(worker.key)
        shared.arriving[worker.key] = 0
        self.counts.manager_copies += 1
        self._digest_ready(shared)  # start hashing now: the next worker's peer-get needs the digest
        worker.send(worker.conn.send(msg.CacheReport(spec.cached_name)))

    def _shared(self, spec: FileSpec, signature: tuple) -> SharedFile:
        shared = self.files.get(spec.cached_name)
        if shared is None or shared.signature != signature:
            # a new version: every old copy is stale; copies on their way are still followed, so their
            # reports release the tasks that wait for them (a copy of the old bytes that serves on
            # fails the new digest, and the manager sends the new version)
            old = shared
            info = os.stat(str(spec.local))
            shared = SharedFile(spec.cached_name, str(spec.local), signature, (info.st_mode | 0o600) & 0o777)
            if old is not None:
                shared.arriving, shared.waiting, shared.serving = old.arriving, old.waiting, old.serving
            self.files[spec.cached_name] = shared
            self.specs[spec.cached_name] = spec
        return shared

    def forget(self, name: str) -> None:
        """The workers were told to drop ``name`` (invalidate_cache_file): none holds it any more."""
        shared = self.files.get(name)
        if shared is not None:
            shared.stale |= shared.holders | shared.arriving.keys()
            shared.holders.clear()

    def _digest_ready(self, shared: SharedFile) -> bool:
        """Whether the file's digest is known; if not, computing it starts in a thread (hashing 1.5 GB
        takes seconds the loop cannot spare), and waiting workers are served when it is done."""
        if shared.digest or shared.unreadable:
            return bool(shared.digest)
        if self.run_in_loop is None:
            self._hashed(shared, self._hash_or_empty(shared))
            return bool(shared.digest)
        if not shared.hashing:
            shared.hashing = True
            threading.Thread(target=lambda: self.run_in_loop(partial(self._hashed, shared, self._hash_or_empty(shared))),
                             name=f"coffea-wq-digest-{shared.name[:40]}", daemon=True).start()
        return False

    def _hash_or_empty(self, shared: SharedFile) -> str:
        try:
            return file_sha256(shared.path)
        except OSError as error:
            log.warning("cannot read %s to pass it between workers (%s); the manager sends every copy",
                        shared.path, error)
            return ""

    def _hashed(self, shared: SharedFile, digest: str) -> None:
        shared.hashing = False
        shared.digest = digest
        shared.unreadable = not digest
        current = self.files.get(shared.name)
        if current is not None:
            self._serve_waiting(current)

    def _start_from_peer(self, shared: SharedFile, worker: Peer) -> bool:
        if not self._digest_ready(shared):
            return False
        source = self._free_source(shared, worker)
        if source is None:
            return False
        if worker.cache.get(shared.name, shared.signature) != shared.signature:
            shared.stale.add(worker.key)  # it holds an older version until the new one is in place
        host = source.address.rpartition(":")[0].strip("[]")
        worker.send(worker.conn.send(msg.PeerGet(shared.name, shared.signature[0], shared.mode, shared.digest,
                                                 host, source.peer_port)))
        shared.arriving[worker.key] = source.key
        shared.serving[source.key] += 1
        self.source_names[source.key] = f"worker {source.hostname} ({source.address})"
        log.debug("worker %s gets %s from worker %s", worker.address, shared.name, source.address)
        return True

    def _source_to_come(self, shared: SharedFile, worker: Peer) -> bool:
        """Whether a peer may serve ``worker`` later: a usable holder (busy now) or a copy on its way."""
        if shared.unreadable:
            return False
        return bool(shared.arriving) or any(self._usable(shared, key, worker) for key in shared.holders)

    def _usable(self, shared: SharedFile, key: int, worker: Peer) -> bool:
        peer = self.peers.get(key)
        fresh = key in shared.holders or key not in shared.stale
        return peer is not None and key != worker.key and key not in shared.refused and not peer.closing and fresh

    def _free_source(self, shared: SharedFile, worker: Peer) -> Peer | None:
        best = None
        # a copy on its way serves too: the worker passes the file on as it arrives (worker/peers.py)
        for key in (*shared.holders, *shared.arriving):
            if not self._usable(shared, key, worker):
                continue
            peer = self.peers[key]
            if shared.serving[key] < self.per_source and (best is None or shared.serving[key] < shared.serving[best.key]):
                best = peer
        return best

    # ------------------------------------------------------------------ worker reports
    def on_cache_update(self, worker: Peer, event: msg.CacheUpdate) -> None:
        """``cache-update``: the worker holds the file, and serves it on."""
        shared = self.files.get(event.name)
        if shared is None or worker.key not in shared.arriving:
            log.debug("worker %s: cache-update for %s not asked for", worker.address, event.name)
            return
        source = shared.arriving.pop(worker.key)
        self._release_slot(shared, source)
        if event.size != shared.signature[0]:
            self._fall_back(shared, worker, source, f"it reports {event.size} bytes, not {shared.signature[0]}")
        else:
            if source:
                self.counts.peer_copies += 1
            shared.holders.add(worker.key)
            worker.cache[event.name] = shared.signature
            self.arrived(worker, event.name)
        self._serve_waiting(shared)

    def on_cache_invalid(self, worker: Peer, event: msg.CacheInvalid) -> None:
        """``cache-invalid``: the copy failed; the manager sends the file itself."""
        shared = self.files.get(event.name)
        if shared is None or worker.key not in shared.arriving:
            log.debug("worker %s: cache-invalid for %s not asked for", worker.address, event.name)
            return
        source = shared.arriving.pop(worker.key)
        self._release_slot(shared, source)
        self._fall_back(shared, worker, source, event.reason)
        self._serve_waiting(shared)

    def _fall_back(self, shared: SharedFile, worker: Peer, source: int, reason: str) -> None:
        if source == 0:  # the manager's own put did not land: the task reports the missing input
            log.warning("worker %s (%s) does not hold %s after the manager sent it: %s", worker.hostname,
                        worker.address, shared.name, reason)
            self.arrived(worker, shared.name)
            return
        self.counts.failures += 1
        where = self.source_names.get(source, "another worker")
        if source not in self.peers:
            where += ", which has left"
        log.warning("worker %s (%s) could not get %s from %s: %s; the manager sends it", worker.hostname,
                    worker.address, shared.name, where, reason)
        shared.refused.add(source)
        shared.holders.discard(source)
        self._manager_copy(shared, worker)

    def _manager_copy(self, shared: SharedFile, worker: Peer) -> None:
        spec = self.specs[shared.name]
        self.send_from_manager(worker, spec, shared.signature)
        self.sent_by_manager(spec, shared.signature, worker)
        worker.cache[shared.name] = shared.signature
        self.arrived(worker, shared.name)  # the put is queued ahead of any task block sent from now on

    def _release_slot(self, shared: SharedFile, source: int) -> None:
        if source and shared.serving[source] > 0:
            shared.serving[source] -= 1

    def _serve_waiting(self, shared: SharedFile) -> None:
        """Start transfers to waiting workers while sources have free slots (a waiting worker whose
        file can no longer come from any peer gets it from the manager)."""
        waiting, shared.waiting = shared.waiting, []
        for key in waiting:
            worker = self.peers.get(key)
            if worker is None:
                continue
            if self._start_from_peer(shared, worker):
                continue
            if self._source_to_come(shared, worker):
                shared.waiting.append(key)
            else:
                self._manager_copy(shared, worker)

    def send_from_manager(self, worker: Peer, spec: FileSpec, signature: tuple) -> None:
        """The manager's own copy of an input, when no other worker could give it."""
        try:
            for part in input_pieces(spec):
                worker.send(part)
        except InputMissing as error:
            log.warning("worker %s: %s", worker.address, error)
            return
        worker.bytes_sent += signature[0]
        self.counters.bytes_sent += signature[0]

    def arrived(self, worker: Peer, name: str) -> None:
        """Send the blocks of the worker's held tasks that waited only for ``name``."""
        for task_id, held in list(worker.held_tasks.items()):
            held.names.discard(name)
            if not held.names:
                del worker.held_tasks[task_id]
                worker.send(worker.conn.send(held.message))

    # ------------------------------------------------------------------ workers leaving
    def forget_worker(self, worker: Peer) -> None:
        """A worker left: it holds nothing now; what it was receiving or serving is let go."""
        for shared in self.files.values():
            shared.holders.discard(worker.key)
            if worker.key in shared.waiting:
                shared.waiting.remove(worker.key)
            source = shared.arriving.pop(worker.key, None)
            if source is not None:
                self._release_slot(shared, source)
            # transfers it was serving fail on their own (the fetching worker reports cache-invalid)
            self._serve_waiting(shared)

"""``encode(message) -> bytes`` for every message that crosses the wire, in either direction.

Rules of this module:

- one function per message class, found through ``_ENCODERS`` (a table, not an ``isinstance``
  chain); a message with no entry (an event that only comes out of a connection, such as
  ``FileData`` or ``ConnectionFailed``) raises ``TypeError``;
- the bytes are exactly what CCTools' peers send, field order and quirks included (the env
  setting's trailing newline, ``777`` for buffers), so a C peer and our connections read them
  alike; docs/protocol.md describes each line;
- what the receiving connection decodes from ``encode(m)`` is ``m`` again (the round trip
  ``tests/protocol/test_messages.py`` checks), except for a ``task`` block (``TaskMessage`` in,
  ``TaskReceived`` out: the worker keeps resources as whole numbers, as the C worker does) and a
  ``PutBuffer`` (read back as ``PutFile`` + chunks);
- a payload that follows a header (a file's bytes, a task's output) is sent after it, whole
  or in chunks: ``PutFile``, ``FileReply`` and ``ResultStart`` encode the header only, and
  ``FileChunk``, ``FileData`` and ``ResultOutput`` encode to their raw bytes.

No I/O, no state: a connection's ``send`` calls ``encode`` and updates what it awaits.
"""

from __future__ import annotations

from collections.abc import Callable

from coffea_wq.protocol import messages as m
from coffea_wq.protocol.framing import encode_line
from coffea_wq.protocol.urlcode import url_encode


def encode(message: object) -> bytes:
    """The wire bytes of ``message`` (one of the classes in ``messages``)."""
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise TypeError(f"{type(message).__name__} is not sent on the wire")
    return encoder(message)


def encode_all(messages: tuple | list) -> bytes:
    return b"".join(encode(message) for message in messages)


# ---------------------------------------------------------------- manager -> worker


def _put_file(msg: m.PutFile) -> bytes:
    return encode_line(f"put {url_encode(msg.path)} {msg.length} 0{msg.mode & 0o777:o}")


def _put_buffer(msg: m.PutBuffer) -> bytes:
    return encode_line(f"put {url_encode(msg.path)} {len(msg.data)} 777") + msg.data


def _url_file(msg: m.UrlFile) -> bytes:
    data = msg.url.encode("utf-8")
    return encode_line(f"url {msg.name} {len(data)} 0{msg.mode & 0o777:o} {int(msg.flags)}") + data


def _third_party(msg: m.ThirdParty) -> bytes:
    return encode_line(f"{'thirdput' if msg.put else 'thirdget'} {msg.mode} {msg.name} {msg.path}")


def _dir_start(msg: m.DirStart) -> bytes:
    return encode_line(f"dir {url_encode(msg.path)}")


def _symlink(msg: m.Symlink) -> bytes:
    data = msg.target.encode("utf-8")
    return encode_line(f"symlink {url_encode(msg.path)} {len(data)}") + data


def _task(task: m.TaskMessage) -> bytes:
    """The ``task`` block, fields in CCTools' order (env has its trailing-newline quirk)."""
    command = task.command.encode("utf-8")
    parts = [
        encode_line(f"task {task.task_id}"),
        encode_line(f"cmd {len(command)}"),
        command,
        encode_line(f"category {task.category}"),
        encode_line(f"cores {task.cores:.3f}"),
        encode_line(f"gpus {task.gpus:.0f}"),
        encode_line(f"memory {task.memory:.0f}"),
        encode_line(f"disk {task.disk:.0f}"),
    ]
    if task.end_time > 0:
        parts.append(encode_line(f"end_time {task.end_time:.6f}"))
    if task.wall_time > 0:
        parts.append(encode_line(f"wall_time {task.wall_time:.6f}"))
    for name, value in task.env:
        setting = f"{name}={value}".encode()
        parts += [encode_line(f"env {len(setting)}"), setting, b"\n"]
    parts += [encode_line(f"dir {name}") for name in task.empty_dirs]
    parts += [encode_line(f"infile {f.cached_name} {url_encode(f.remote_name)} {int(f.flags)}") for f in task.inputs]
    parts += [encode_line(f"outfile {f.cached_name} {url_encode(f.remote_name)} {int(f.flags)}") for f in task.outputs]
    parts.append(b"end\n")
    return b"".join(parts)


def _get(msg: m.GetRequest) -> bytes:
    return encode_line(f"get {msg.name} {1 if msg.recursive else 0}")


# ---------------------------------------------------------------- worker -> manager


def _handshake(msg: m.Handshake) -> bytes:
    return encode_line(f"workqueue {msg.protocol} {msg.hostname} {msg.os} {msg.arch} {msg.version}")


def _resource(msg: m.ResourceReport) -> bytes:
    return encode_line(f"resource {msg.name} {msg.total} {msg.smallest} {msg.largest}")


def _result_start(msg: m.ResultStart) -> bytes:
    return encode_line(f"result {int(msg.status)} {int(msg.exit_code)} {int(msg.output_length)} "
                       f"{int(msg.execution_time_us)} {int(msg.task_id)}")


def _watch_update(msg: m.WatchUpdate) -> bytes:
    return encode_line(f"update {msg.task_id} {url_encode(msg.path)} {msg.offset} {len(msg.data)}") + msg.data


def _http(msg: m.HttpRequest) -> bytes:
    return encode_line(f"GET {msg.path} HTTP/1.1") + b"\n"


def _line(text: Callable[[object], str]) -> Callable[[object], bytes]:
    return lambda msg: encode_line(text(msg))


_ENCODERS: dict[type, Callable] = {
    # manager -> worker
    m.PutFile: _put_file,
    m.PutBuffer: _put_buffer,
    m.FileChunk: lambda msg: msg.data,
    m.UrlFile: _url_file,
    m.ThirdParty: _third_party,
    m.DirStart: _dir_start,
    m.Symlink: _symlink,
    m.DirEnd: lambda _: b"end\n",
    m.TaskMessage: _task,
    m.GetRequest: _get,
    m.KillTask: _line(lambda msg: f"kill {msg.taskid}"),
    m.UnlinkFile: _line(lambda msg: f"unlink {msg.name}"),
    m.InvalidateFile: _line(lambda msg: f"invalidate-file {url_encode(msg.name)}"),
    m.SendResults: _line(lambda msg: f"send_results {msg.count}"),
    m.Check: lambda _: b"check\n",
    m.Release: lambda _: b"release\n",
    m.Exit: lambda _: b"exit\n",
    m.ProjectName: _line(lambda msg: msg.name),
    # worker (or status client) -> manager
    m.Handshake: _handshake,
    m.WorkerIdentified: _line(lambda msg: f"info worker-id {msg.worker_id}"),
    m.Feature: _line(lambda msg: f"feature {url_encode(msg.name)}"),
    m.Alive: lambda _: b"alive\n",
    m.ResourceReport: _resource,
    m.ResourceTag: _line(lambda msg: f"resource tag {msg.tag}"),
    m.Info: _line(lambda msg: f"info {msg.field} {msg.value}"),
    m.ResultsAvailable: lambda _: b"available_results\n",
    m.ResultStart: _result_start,
    m.ResultOutput: lambda msg: msg.data,
    m.FileReply: _line(lambda msg: f"file {msg.name} {msg.size}"),
    m.FileData: lambda msg: msg.data,
    m.DirectoryStart: _line(lambda msg: f"dir {msg.name} 0"),
    m.FileMissing: _line(lambda msg: f"missing {msg.name} {msg.errno}"),
    m.ReplyEnd: lambda _: b"end\n",
    m.WatchUpdate: _watch_update,
    m.ThirdPutComplete: _line(lambda msg: f"thirdput-complete {1 if msg.ok else 0}"),
    m.StatusRequest: _line(lambda msg: msg.kind),
    m.HttpRequest: _http,
    m.NameRequest: lambda _: b"name\n",
    # our extension (docs/protocol.md, "Our extension: peer transfers")
    m.CacheReport: _line(lambda msg: f"cache-report {msg.name}"),
    m.PeerGet: _line(lambda msg: f"peer-get {msg.name} {msg.size} 0{msg.mode & 0o777:o} {msg.digest} {msg.host} {msg.port}"),
    m.CacheUpdate: _line(lambda msg: f"cache-update {msg.name} {msg.size}"),
    m.CacheInvalid: _line(lambda msg: f"cache-invalid {msg.name} {msg.reason}"),
}

"""Seeds and mutators for fuzzing the protocol state machines (used by test_fuzz.py and the live fuzz).

Seeds are real byte streams: every connection of the CCTools transcripts in
``tests/data/cctools-samples`` (each direction), plus hand-written valid streams for the messages
those captures never show. A mutated stream is a seed split into lines, with a few lines changed,
dropped, repeated, swapped in from another seed or made up, then fed in random chunk sizes.
"""

from __future__ import annotations

import random

from tests.transcripts import SAMPLES, read_proxy_log

PASSWORD = b"fuzz-password"
CHALLENGE = "c" * 63

_EXTREME_NUMBERS = (b"-1", b"0", b"1", b"-0", b"nan", b"inf", b"-inf", b"1e308", b"9" * 40, b"0x10", b"1.5",
                    b"18446744073709551616", b"-9223372036854775809", b"", b" ", b"1e-9", b"00", b"+7")
_KEYWORDS_TO_MANAGER = (b"workqueue", b"info", b"resource", b"result", b"file", b"dir", b"missing", b"update",
                        b"end", b"alive", b"available_results", b"feature", b"name", b"GET", b"queue_status",
                        b"task_status", b"auth", b"ready", b"tlq", b"symlink")
_KEYWORDS_TO_WORKER = (b"put", b"dir", b"symlink", b"url", b"task", b"cmd", b"env", b"infile", b"outfile", b"end",
                       b"get", b"kill", b"unlink", b"send_results", b"check", b"release", b"exit", b"thirdget",
                       b"thirdput", b"invalidate-file", b"auth", b"category", b"cores", b"wall_time", b"end_time")
_ODD_NAMES = (b"../x", b"/etc/passwd", b"a/../../b", b".", b"..", b"%2e%2e/x", b"%00", b"a%2Fb", b"%", b"%zz",
              b"\xff\xfe", b"a" * 5000, b"d/link/f", b"x\x00y", b"\r", b" ")

# valid streams for messages the captures do not show
_WORKER_TO_MANAGER = [
    b"workqueue 9 h Linux x86_64 8.0.0\ninfo worker-id w1\nresource workers 1 1 1\nresource cores 4 4 4\n"
    b"resource memory 1000 1000 1000\nresource disk 2000 2000 2000\nresource gpus 0 0 0\nresource tag 3\n"
    b"feature my%20feature\ninfo end_of_resource_update 0\ninfo worker-end-time 0\ninfo tasks_running 0\n"
    b"alive\navailable_results\nresult 0 0 5 1000 1\nhello\nresult 0 1 0 10 2\nupdate 1 log%2Etxt 0 3\nabc\n"
    b"end\nfile out.txt 4\ndatadir d 0\nfile d/a 1\nxmissing d/b 2\nend\nmissing nothing 2\nend\ntlq\n"
    b"info idle-disconnecting 900\n",
    b"GET /queue_status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"name\n",
    b"worker_status\n",
]
_MANAGER_TO_WORKER = [
    b"put file-0-abc-in.txt 5 0644\nhello"
    b"dir file-0-d\nput a 2 0600\nxydir sub\nsymlink l 3\n../end\nend\n"
    b"url file-1-u 18 0644 0\nhttp://127.0.0.1/x"
    b"task 7\ncmd 10\necho hello"
    b"category default\ncores 1.000\ngpus 0\nmemory 100\ndisk 10\nend_time 5.5\nwall_time 3.000000\nenv 5\nFOO=1\n"
    b"dir d\ninfile file-0-abc-in.txt in.txt 1\noutfile file-2-out out%20put.txt 0\nend\n"
    b"send_results -1\nget file-2-out 1\nkill 7\nunlink file-2-out\ncheck\ninvalidate-file file-0-abc-in.txt\n"
    b"thirdget 2 file-3 /tmp/x\nthirdput 3 file-3 /tmp/y\nrelease\n",
    b"exit\n",
]


def seeds(direction: str) -> list[bytes]:
    """Valid streams towards the manager (``W->M``) or towards the worker (``M->W``), with no password."""
    found = []
    for path in sorted(SAMPLES.rglob("*proxy*.log")):
        if "password" in path.parts:
            continue  # their streams open with the password exchange: see password_seeds
        for pair in read_proxy_log(path).values():
            if pair[direction]:
                found.append(pair[direction])
    return found + (_WORKER_TO_MANAGER if direction == "W->M" else _MANAGER_TO_WORKER)


def mutate_stream(rng: random.Random, stream: bytes, others: list[bytes], to_worker: bool) -> list[bytes]:
    """The lines of ``stream`` (LF kept) after 1-4 mutations."""
    lines = stream.splitlines(keepends=True) or [b"\n"]
    for _ in range(rng.randint(1, 4)):
        lines = _MUTATIONS[rng.randrange(len(_MUTATIONS))](rng, lines, others, to_worker)
        if not lines:
            lines = [b"\n"]
    return lines


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` cut at random places (what one recv() after another could return)."""
    out, at = [], 0
    while at < len(data):
        size = rng.choice((1, 2, 7, 64, 4096, len(data)))
        out.append(data[at:at + size])
        at += size
    return out


def _pick(rng: random.Random, lines: list[bytes]) -> int:
    return rng.randrange(len(lines))


def _flip_byte(rng, lines, others, to_worker):
    i = _pick(rng, lines)
    line = bytearray(lines[i])
    if line:
        line[rng.randrange(len(line))] = rng.randrange(256)
    lines[i] = bytes(line)
    return lines


def _replace_field(rng, lines, others, to_worker):
    i = _pick(rng, lines)
    body, newline = (lines[i][:-1], b"\n") if lines[i].endswith(b"\n") else (lines[i], b"")
    fields = body.split(b" ")
    pool = _EXTREME_NUMBERS + _ODD_NAMES + (_KEYWORDS_TO_WORKER if to_worker else _KEYWORDS_TO_MANAGER)
    fields[rng.randrange(len(fields))] = rng.choice(pool)
    lines[i] = b" ".join(fields) + newline
    return lines


def _drop_line(rng, lines, others, to_worker):
    del lines[_pick(rng, lines)]
    return lines


def _repeat_line(rng, lines, others, to_worker):
    i = _pick(rng, lines)
    lines[i:i] = [lines[i]] * rng.randint(1, 3)
    return lines


def _swap_in_foreign_line(rng, lines, others, to_worker):
    foreign = rng.choice(others).splitlines(keepends=True) or [b"\n"]
    lines.insert(_pick(rng, lines), rng.choice(foreign))
    return lines


def _made_up_line(rng, lines, others, to_worker):
    keyword = rng.choice(_KEYWORDS_TO_WORKER if to_worker else _KEYWORDS_TO_MANAGER)
    fields = [rng.choice(_EXTREME_NUMBERS + _ODD_NAMES) for _ in range(rng.randint(0, 5))]
    lines.insert(_pick(rng, lines), b" ".join([keyword, *fields]) + b"\n")
    return lines


def _random_bytes(rng, lines, others, to_worker):
    lines.insert(_pick(rng, lines), bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
    return lines


def _cut_stream(rng, lines, others, to_worker):
    i = _pick(rng, lines)
    return lines[:i] + [lines[i][: rng.randrange(len(lines[i]) + 1)]]


def _long_line(rng, lines, others, to_worker):
    lines.insert(_pick(rng, lines), b"info x " + b"y" * rng.choice((4088, 4089, 5000)) + b"\n")
    return lines


_MUTATIONS = (_flip_byte, _replace_field, _replace_field, _drop_line, _repeat_line, _swap_in_foreign_line,
              _made_up_line, _random_bytes, _cut_stream, _long_line)

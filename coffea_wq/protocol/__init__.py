"""Sans-IO Work Queue wire protocol (CCTools protocol 9): bytes in, events out (docs/protocol.md).

- ``messages``: every message, for both roles, as small frozen dataclasses;
- ``encoding``: ``encode(message) -> bytes``, for either direction;
- ``manager_side``: ``WorkerConnection``, the manager's end of one connection;
- ``worker_side``: ``ManagerConnection``, the worker's end of its connection to a manager;
- ``framing``: lines, length-prefixed payloads and the numbers in lines;
- ``auth``: the password challenge-response; ``urlcode``: CCTools' name encoding;
  ``codes``: result codes, task states and file flags.

Both connections work the same way: ``start()`` once, ``receive_data(bytes)``, drain
``next_event()`` until ``NEED_DATA``, send ``data_to_send()`` and ``send(message)``'s bytes; each
ends with one ``ConnectionClosed`` or ``ConnectionFailed`` event. Nothing here touches sockets,
files, threads or the clock.
"""

PROTOCOL_VERSION = 9
CCTOOLS_VERSION = "8.0.0"

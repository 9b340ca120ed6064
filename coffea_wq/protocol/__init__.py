"""Sans-IO Work Queue wire protocol (CCTools protocol 9): bytes in, events out.

- ``framing``: lines and length-prefixed payloads;
- ``urlcode``: CCTools' name encoding;
- ``auth``: the password challenge-response;
- ``manager_side``: the manager's view of one worker connection (its events and the task
  block in ``manager_messages``);
- ``worker_side``: the worker's view of its manager connection.

Nothing here touches sockets, threads or the clock.
"""

PROTOCOL_VERSION = 9
CCTOOLS_VERSION = "8.0.0"

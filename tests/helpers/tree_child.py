"""A command for ``etcd-elector run`` tests that starts a process tree and shows who still runs.

Usage: ``tree_child.py DIR [ignore-term]``. The process starts two children and one grandchild
that escapes by a double fork and ``setsid`` (a session of its own, its parent gone), so the
tree spans two sessions. Each of the four processes writes the Unix time to ``DIR/beat.<pid>``
every 20 ms: its last beat is when it last ran. Once all four beat, ``DIR/pids`` lists them
(written atomically). With ``ignore-term`` they all ignore SIGTERM: only SIGKILL ends them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

BEAT = 0.02
BOUND = 120.0  # never outlive a broken test by much


def beat_forever(where: Path) -> None:
    fd = os.open(where / f"beat.{os.getpid()}", os.O_WRONLY | os.O_CREAT, 0o644)
    stop = time.monotonic() + BOUND
    while time.monotonic() < stop:
        os.pwrite(fd, b"%020.6f\n" % time.time(), 0)
        time.sleep(BEAT)
    os._exit(0)


def spawn(where: Path, *, escape: bool) -> None:
    """Fork a heartbeat process: a plain child, or (``escape``) a grandchild in a session of
    its own whose parent exits at once."""
    if os.fork() != 0:
        return
    if escape:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
    beat_forever(where)


def main() -> int:
    where = Path(sys.argv[1])
    if sys.argv[2:] == ["ignore-term"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by every fork below
    for escape in (False, False, True):
        spawn(where, escape=escape)
    (where / f"beat.{os.getpid()}").write_text(f"{time.time():020.6f}\n")
    deadline = time.monotonic() + 20
    while len(list(where.glob("beat.*"))) < 4 and time.monotonic() < deadline:
        time.sleep(BEAT)
    pids = sorted(int(path.name.split(".")[1]) for path in where.glob("beat.*"))
    (where / "pids.tmp").write_text("".join(f"{pid}\n" for pid in pids))
    os.replace(where / "pids.tmp", where / "pids")
    beat_forever(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())

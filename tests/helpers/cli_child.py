"""A command for ``etcd-elector run`` tests: records what it sees, then runs until stopped.

Usage: ``cli_child.py DIR MODE [EXIT_CODE]``. It writes ``DIR/pid`` and ``DIR/env.json`` (the
``ETCD_ELECTOR_*`` variables), then, by MODE:

* ``trap``: on SIGTERM, append ``term <unix time>`` to ``DIR/marker`` and exit 0;
* ``ignore``: ignore SIGTERM (only SIGKILL stops it);
* ``exit``: exit at once with EXIT_CODE;
* ``flaky``: exit 1 the first time (counted in ``DIR/runs``), then run like ``trap``;
* ``slow``: on SIGTERM, keep working for EXIT_CODE seconds (a float: finishing the unit at
  hand), append ``last <unix time>`` to ``DIR/marker`` (its last action) and exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> int:
    where, mode = Path(sys.argv[1]), sys.argv[2]
    runs_file = where / "runs"
    runs = int(runs_file.read_text()) + 1 if runs_file.exists() else 1
    runs_file.write_text(str(runs))
    env = {k: v for k, v in os.environ.items() if k.startswith("ETCD_ELECTOR_")}
    (where / "env.json").write_text(json.dumps(env))
    (where / "pid.tmp").write_text(str(os.getpid()))
    os.replace(where / "pid.tmp", where / "pid")
    if mode == "exit":
        return int(sys.argv[3])
    if mode == "flaky" and runs == 1:
        return 1

    def on_term(signum: int, frame: FrameType | None) -> None:
        with open(where / "marker", "a") as marker:
            marker.write(f"term {time.time()!r}\n")
        os._exit(0)

    def on_term_slowly(signum: int, frame: FrameType | None) -> None:
        time.sleep(float(sys.argv[3]))
        with open(where / "marker", "a") as marker:
            marker.write(f"last {time.time()!r}\n")
        os._exit(0)

    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "slow":
        signal.signal(signal.SIGTERM, on_term_slowly)
    else:
        signal.signal(signal.SIGTERM, on_term)
    while True:
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())

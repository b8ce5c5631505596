"""The watchdog of ``etcd-elector run``: a small process that holds the lease deadline and
kills the command's whole process tree by it, whatever happens to the supervisor.

The supervisor runs this file as a program of its own (``python -I -S _watchdog.py``: standard
library only, no site packages, started in a few tens of milliseconds) in a new session, and
the watchdog starts the command. Why a separate process: the supervisor can be killed
(SIGKILL) or frozen (SIGSTOP, or a terminal's Ctrl-Z to its process group), and the deadline
must hold all the same. In its own session the watchdog gets no signal aimed at the
supervisor's process group or terminal.

What it does, on the supervisor's clock (``CLOCK_BOOTTIME``, system-wide):

* marks itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so that every orphaned
  descendant of the command, even one that forked twice and called ``setsid``, is re-parented
  to it and can still be found;
* starts the command in a process group of its own, with a parent-death SIGKILL (if the
  watchdog itself is SIGKILLed, the command still dies; its orphans then escape);
* at ``deadline - grace`` SIGTERMs every process of the tree, and at the deadline SIGKILLs
  whatever is left, without waiting for any word from the supervisor;
* when its control socket reaches end of file (the supervisor is gone), it stops the tree the
  same way, with the grace but never past the deadline;
* after the command's own process exits, it SIGTERMs what the command left behind, SIGKILLs it
  after the grace, and exits once no process of the tree is left.

"The tree" is every process that descends from the watchdog, found by walking ``/proc``; each
is signalled through a pidfd after checking its start time, so a recycled pid is never hit.
Without ``/proc`` (not Linux) the tree is the command's process group.

Protocol: text lines over a socketpair whose descriptor is the first argument.

    supervisor -> watchdog     deadline T     the local lease deadline moved to T
                               stop           SIGTERM the tree; SIGKILL after the grace
                               stop B         the same with a budget of B seconds (a drain)
                               kill           SIGKILL the tree now
                               (end of file)  the supervisor is gone: stop
    watchdog -> supervisor     started PID    the command runs, as PID
                               failed CODE    it could not be started (126, 127; why: stderr)
                               stopping WHY   it began stopping the tree by itself: deadline,
                                              supervisor-gone, signal
                               exited RC SENT the command's process ended: RC as subprocess
                                              gives it (-N: signal N); SENT, the strongest
                                              signal we had sent it: -, SIGTERM or SIGKILL
                               done N         no process of the tree is left; N of them
                                              needed SIGKILL
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

__all__ = ["REASONS", "main"]

# What "stopping WHY" means, for the supervisor's report.
REASONS = {
    "deadline": "lease renewal overdue",
    "supervisor-gone": "supervisor gone",
    "signal": "watchdog signalled",
}

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_TFD_TIMER_ABSTIME = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_JOB_CONTROL = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)  # must not stop the watchdog
_STOP_POLL = 0.05  # while stopping: how often to look for what is left of the tree
_IDLE_POLL = 5.0  # a safety net only: the timer wakes us when anything is due
_IDLE_POLL_NO_TIMER = 0.25  # without a CLOCK_BOOTTIME timer, wake often enough after a suspend
_KILL_ROUNDS = 100  # bound on SIGKILL rounds against a tree that keeps forking
_PROC = "/proc"

_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _now() -> float:
    """The clock of etcd_elector._clock (which this program cannot import)."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


def _libc_call(name: str) -> Callable[..., int] | None:
    try:
        import ctypes

        function: Callable[..., int] = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (ImportError, OSError, AttributeError):
        return None
    return function


_prctl = _libc_call("prctl") if sys.platform.startswith("linux") else None


class _BoottimeTimer:
    """A timerfd on CLOCK_BOOTTIME: it fires at its absolute time even if the machine was
    suspended meanwhile (a poll timeout counts on CLOCK_MONOTONIC, which stops in suspend)."""

    def __init__(self) -> None:
        self.fd = -1
        create = _libc_call("timerfd_create") if sys.platform.startswith("linux") else None
        self._settime = _libc_call("timerfd_settime")
        if create is not None and self._settime is not None and _BOOTTIME is not None:
            self.fd = create(_BOOTTIME, _TFD_CLOEXEC | _TFD_NONBLOCK)

    def arm(self, at: float) -> None:
        if self.fd < 0 or self._settime is None or not math.isfinite(at):
            return
        import ctypes

        seconds = min(max(math.floor(at), 0), 2**31 - 1)  # far enough: the poll cap wakes us
        nanos = min(max(int((at - seconds) * 1e9), 0), 999_999_999)
        if seconds == 0 and nanos == 0:
            nanos = 1  # zero would disarm it
        spec = (ctypes.c_long * 4)(0, 0, seconds, nanos)  # it_interval, it_value
        if self._settime(self.fd, _TFD_TIMER_ABSTIME, spec, None) != 0:
            os.close(self.fd)
            self.fd = -1

    def clear(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 8)


def _stat(pid: int | str) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time) of a process, or None once it is gone."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the name may hold spaces and parens
    return int(fields[1]), fields[0].decode(), int(fields[19])


class _Tree:
    """The processes that descend from this one: find them, signal them."""

    def __init__(self, command_group: int) -> None:
        self.me = os.getpid()
        self.group = command_group
        self.proc = os.path.exists(f"{_PROC}/{self.me}/stat")

    def live(self) -> dict[int, int]:
        """Every live (not zombie) descendant: pid -> start time."""
        if not self.proc:
            return self._group_alive()
        children: dict[int, list[int]] = {}
        started: dict[int, int] = {}
        for name in os.listdir(_PROC):
            if not name.isdigit():
                continue
            stat = _stat(name)
            if stat is None:
                continue
            parent, state, start = stat
            if state not in ("Z", "X"):
                started[int(name)] = start
            children.setdefault(parent, []).append(int(name))
        found: dict[int, int] = {}
        todo = list(children.get(self.me, ()))
        while todo:
            pid = todo.pop()
            if pid in started:
                found[pid] = started[pid]
            todo.extend(children.get(pid, ()))  # a zombie's children are still ours
        return found

    def _group_alive(self) -> dict[int, int]:
        try:
            os.killpg(self.group, 0)
        except (ProcessLookupError, PermissionError):
            return {}
        return {self.group: 0}

    def signal(self, processes: dict[int, int], signum: int) -> None:
        if not self.proc:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.group, signum)
            return
        for pid, start in processes.items():
            _signal_exactly(pid, start, signum)


def _signal_exactly(pid: int, start: int, signum: int) -> None:
    """Signal ``pid`` only if it is still the process that started at ``start``."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfds (Linux < 5.3): a short race remains
        stat = _stat(pid)
        if stat is not None and stat[2] == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return
    try:
        stat = _stat(pid)
        if stat is not None and stat[2] == start:  # the pidfd holds that very process
            signal.pidfd_send_signal(handle, signum)
    except ProcessLookupError:
        pass
    finally:
        os.close(handle)


class Watchdog:
    """One command, its tree, its deadline."""

    def __init__(self, control: int, grace: float, deadline: float) -> None:
        self.control: int | None = control
        self.grace = grace
        self.deadline = deadline
        self.command: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.sent = "-"  # the strongest signal sent to the command's own process
        self.stop_began: float | None = None
        self.stop_budget: float | None = None  # the grace, unless the supervisor said
        self.kill_now = False
        self.killed: set[int] = set()
        self.tree = _Tree(0)
        self.timer = _BoottimeTimer()
        self._inbox = b""
        self._wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
        for signum in (*_STOP_SIGNALS, signal.SIGCHLD, *_JOB_CONTROL):
            # A handler (not SIG_IGN) so that the command, after exec, gets the defaults back.
            signal.signal(signum, _note)

    # -- talking to the supervisor ---------------------------------------------------------

    def report(self, line: str) -> None:
        if self.control is None:
            return
        with contextlib.suppress(OSError):  # the supervisor is gone: end of file tells us
            os.write(self.control, line.encode() + b"\n")  # a short line: one write

    def _read_control(self) -> None:
        assert self.control is not None
        try:
            chunk = os.read(self.control, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            os.close(self.control)
            self.control = None
            self.begin_stop("supervisor-gone")
            return
        self._inbox += chunk
        while b"\n" in self._inbox:
            line, self._inbox = self._inbox.split(b"\n", 1)
            self._obey(line.decode(errors="replace").split())
        self._inbox = self._inbox[-256:]  # a line never gets that long

    def _obey(self, words: list[str]) -> None:
        if words[:1] == ["deadline"] and len(words) == 2:
            try:
                value = float(words[1])
            except ValueError:
                return
            if math.isfinite(value):
                self.deadline = value
        elif words == ["stop"]:
            self.begin_stop(None)
        elif words[:1] == ["stop"] and len(words) == 2:
            try:
                budget = float(words[1])
            except ValueError:
                return
            if math.isfinite(budget) and budget >= 0:
                self.stop_budget = budget  # a drain: never past the deadline all the same
            self.begin_stop(None)
        elif words == ["kill"]:
            self.kill_now = True

    # -- the command -----------------------------------------------------------------------

    def start(self, argv: list[str]) -> bool:
        watchdog = os.getpid()

        def in_child() -> None:
            # Dies with the watchdog; and if the watchdog died before this, dies now.
            if _prctl is not None:
                _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != watchdog:
                os._exit(137)

        try:
            self.command = subprocess.Popen(argv, preexec_fn=in_child, process_group=0)
        except FileNotFoundError:
            _complain(f"command {argv[0]!r} not found")
            self.report("failed 127")
            return False
        except OSError as exc:
            _complain(f"cannot execute {argv[0]!r}: {exc.strerror or exc}")
            self.report("failed 126")
            return False
        self.tree = _Tree(self.command.pid)
        self.report(f"started {self.command.pid}")
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.command is not None and pid == self.command.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                self.command.returncode = self.returncode
                self.report(f"exited {self.returncode} {self.sent}")

    def _signal_tree(self, signum: int) -> dict[int, int]:
        processes = self.tree.live()
        if self.command is not None and self.returncode is None and signum == signal.SIGKILL:
            self.sent = "SIGKILL"
        elif self.command is not None and self.returncode is None and self.sent == "-":
            self.sent = "SIGTERM"
        self.tree.signal(processes, signum)
        return processes

    def begin_stop(self, reason: str | None) -> None:
        """SIGTERM every process of the tree (and SIGCONT, so a stopped one sees it)."""
        if self.stop_began is not None:
            return
        self.stop_began = _now()
        if reason is not None:
            self.report(f"stopping {reason}")
        if self.returncode is None or self.tree.live():
            self._signal_tree(signal.SIGTERM)
            self.tree.signal(self.tree.live(), signal.SIGCONT)

    def kill_tree(self) -> None:
        """SIGKILL the tree until nothing is left: a dying parent hands its children to us,
        and the next round finds them."""
        for _ in range(_KILL_ROUNDS):
            self._reap()
            left = self.tree.live()
            if not left:
                return
            self._signal_tree(signal.SIGKILL)
            self.killed.update(left)
            time.sleep(0.005)
        self._reap()
        left = self.tree.live()
        if left:
            _complain(f"processes still alive after SIGKILL: {sorted(left)}")

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self._reap()
            now = _now()
            if self.stop_began is None:
                if self.returncode is not None:
                    self.begin_stop(None)  # what the command left behind gets the grace
                elif now >= self.deadline - self.grace:
                    self.begin_stop("deadline")
            if self.kill_now:
                self.kill_tree()
                break
            if self.stop_began is not None:
                budget = self.grace if self.stop_budget is None else self.stop_budget
                kill_at = min(self.stop_began + budget, self.deadline)
                if now >= kill_at:
                    self.kill_tree()
                    break
                if self.returncode is not None and not self.tree.live():
                    break
                self._wait(min(kill_at, now + _STOP_POLL))
            else:
                self._wait(self.deadline - self.grace)
        self._reap()
        self.report(f"done {len(self.killed)}")

    def _wait(self, until: float) -> None:
        """Sleep until ``until`` (on the clock), a message, a signal or a child's exit."""
        self.timer.arm(until)
        poller = select.poll()
        poller.register(self._wakeup_r, select.POLLIN)
        if self.timer.fd >= 0:
            poller.register(self.timer.fd, select.POLLIN)
        if self.control is not None:
            poller.register(self.control, select.POLLIN)
        cap = _IDLE_POLL if self.timer.fd >= 0 else _IDLE_POLL_NO_TIMER
        timeout = min(max(until - _now(), 0.0), cap)
        ready = {fd for fd, _ in poller.poll(math.ceil(timeout * 1000))}
        if self.timer.fd in ready:
            self.timer.clear()
        if self._wakeup_r in ready:
            self._read_signals()
        if self.control is not None and self.control in ready:
            self._read_control()

    def _read_signals(self) -> None:
        try:
            received = os.read(self._wakeup_r, 256)
        except BlockingIOError:
            return
        if any(signum in received for signum in _STOP_SIGNALS):
            self.begin_stop("signal")


def _note(signum: int, frame: object) -> None:
    """Signals only wake the loop (through the wakeup fd); the loop decides."""


def _complain(message: str) -> None:
    try:
        sys.stderr.write(f"etcd-elector: error: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str]) -> int:
    """``_watchdog.py FD GRACE DEADLINE -- COMMAND [ARGS...]``"""
    fd, grace, deadline, dashes, *command = argv
    if dashes != "--" or not command:
        _complain("watchdog: bad arguments")
        return 2
    if _prctl is not None:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    control = int(fd)
    os.set_blocking(control, False)
    watchdog = Watchdog(control, float(grace), float(deadline))
    if watchdog.start(command):
        watchdog.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

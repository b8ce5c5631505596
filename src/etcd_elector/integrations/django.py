"""Django: one candidate per process group, started after the fork, in a process that serves.

::

    # reports/leadership.py: nothing starts at import
    leadership = ProcessLeadership("reports", ttl=10, group_lock="/run/reports/leader.lock")

    # reports/apps.py
    class ReportsConfig(AppConfig):
        name = "reports"

        def ready(self) -> None:
            leadership.start_on_request()   # not start(): see below

    # anywhere in a request, or a thread of a process that serves
    if leadership.is_leader(): ...

The trap this avoids: ``AppConfig.ready()`` runs in every process that loads Django: the
gunicorn master under ``--preload`` (which then forks the workers), every worker, each
``manage.py`` command, and both processes of ``runserver``'s autoreloader. An elector started
there would campaign from processes that never serve, and one started before a fork does not
survive it: its threads and its etcd connection stay in the parent, while the children
inherit a copy that looks started and never renews.

So :class:`ProcessLeadership` starts nothing until :meth:`~ProcessLeadership.start` is called
in the process that serves: :meth:`~ProcessLeadership.start_on_request` calls it on the first
request the process handles (gunicorn's ``post_worker_init`` hook can call it sooner). A
leadership started before a fork refuses to be used after it (``ConfigurationError`` saying
where to start it instead), by pid and by ``os.register_at_fork``.

With ``group_lock`` (a file path), only one process of the group campaigns at a time: the one
holding an exclusive ``flock`` on the file. The kernel releases the lock when that process
exits, however it exits, and another process of the group takes it over and campaigns.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

try:
    from django.core.signals import request_started
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "etcd_elector.integrations.django needs Django: pip install 'etcd-elector[django]'"
    ) from exc

from etcd_elector import Client, ConfigurationError, Term
from etcd_elector.integrations._leadership import Leadership, TermCallback

__all__ = ["ProcessLeadership"]

log = logging.getLogger(__name__)

_LOCK_RETRY_S = 0.2  # how often a process without the group lock tries again
_CLOSE_TIMEOUT_S = 30.0

_instances: weakref.WeakSet[ProcessLeadership] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ProcessLeadership:
    """A :class:`~etcd_elector.integrations.leader_only.Leadership` for this process,
    started late and never carried across a fork.

    :param name: the election's name.
    :param group_lock: a file that the processes of one group (a gunicorn master's workers)
        lock, so that only one of them campaigns at a time; ``None``: every process that
        starts campaigns.
    :param client: makes this process's client when it starts (default: ``Client()``,
        endpoints from ``ETCD_ENDPOINTS``).
    :param on_elected: ``on_elected(term)`` on the leadership's thread.
    :param on_lost: ``on_lost(term)`` likewise.
    :param elector_options: passed to ``client.elector(name, ...)``: ``ttl``, ``namespace``...
    """

    def __init__(
        self,
        name: str,
        *,
        group_lock: str | os.PathLike[str] | None = None,
        client: Callable[[], Client] = Client,
        on_elected: TermCallback | None = None,
        on_lost: TermCallback | None = None,
        **elector_options: Any,
    ) -> None:
        self.name = name
        self.group_lock = None if group_lock is None else os.fspath(group_lock)
        self._make_client = client
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._elector_options = elector_options
        self._lock = threading.Lock()
        self._started_in: int | None = None  # the pid that called start()
        self._client: Client | None = None
        self._leadership: Leadership | None = None
        self._lock_fd: int | None = None
        self._lock_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._failure: BaseException | None = None  # why the group-lock thread could not start
        _instances.add(self)

    def __repr__(self) -> str:
        where = f"started in pid {self._started_in}" if self._started_in else "not started"
        return f"<ProcessLeadership {self.name!r} {where}>"

    # -- starting in the process that serves ---------------------------------------------

    def start(self) -> ProcessLeadership:
        """Campaign from this process (with ``group_lock``: once it holds the lock).

        Idempotent in one process. Call it where the process serves (the first request, a
        gunicorn ``post_worker_init`` hook), not in ``AppConfig.ready()``.

        :raises ConfigurationError: if it was started in a process this one was forked from.
        """
        with self._lock:
            self._refuse_if_forked()
            if self._started_in is not None:
                return self
            self._started_in = os.getpid()
            self._closing.clear()
            # A worker that exits normally (gunicorn's SIGTERM) resigns: the next candidate
            # takes over at once, not a TTL later. In any other process close() does nothing.
            atexit.register(self.close)
            if self.group_lock is None:
                self._campaign()
            else:
                self._lock_thread = threading.Thread(
                    target=self._wait_for_group_lock,
                    name=f"etcd-elector-group-lock-{self.name}",
                    daemon=True,
                )
                self._lock_thread.start()
        return self

    def start_on_request(self) -> None:
        """Start on the first request this process handles (Django's ``request_started``).

        Safe in ``AppConfig.ready()``: it only connects a signal. Processes that never serve
        (a ``--preload`` master, ``manage.py`` commands, the autoreloader's parent) never
        campaign.
        """
        request_started.connect(
            self._on_request, dispatch_uid=f"etcd-elector-{self.name}-{id(self)}", weak=False
        )

    def _on_request(self, sender: object, **kwargs: object) -> None:
        if self._started_in != os.getpid():
            self.start()

    def close(self) -> None:
        """Resign (the next candidate takes over at once) and release the group lock.
        Idempotent; a no-op in a process that did not start it. Called at exit too."""
        with self._lock:
            if self._started_in != os.getpid():
                return
            self._closing.set()
            thread, self._lock_thread = self._lock_thread, None
        if thread is not None:
            thread.join(_CLOSE_TIMEOUT_S)  # it campaigns under the lock, or not at all now
        with self._lock:
            leadership, self._leadership = self._leadership, None
            client, self._client = self._client, None
        if leadership is not None:
            leadership.close()
        if client is not None:
            client.close()
        with self._lock:
            self._release_group_lock()
            self._started_in = None

    # -- asking ----------------------------------------------------------------------------

    @property
    def leadership(self) -> Leadership | None:
        """This process's running leadership (for ``leader_only``), ``None`` until it
        campaigns (not started, or waiting for the group lock).

        :raises ConfigurationError: if it was started in a process this one was forked from.
        :raises Exception: the error that kept it from campaigning, if one did.
        """
        self._refuse_if_forked()
        if self._failure is not None:
            raise self._failure
        return self._leadership

    def current(self) -> Term | None:
        """The term if this process leads at this very moment, else ``None``. Local, no I/O.

        :raises ConfigurationError: if it was started in a process this one was forked from.
        :raises Exception: the error that stopped the background elector, if one did.
        """
        leadership = self.leadership
        return None if leadership is None else leadership.current()

    def is_leader(self) -> bool:
        """Whether this process leads at this very moment. Local, no I/O.

        :raises ConfigurationError: as :meth:`current` does.
        """
        return self.current() is not None

    def wait(self, timeout: float | None = None) -> Term | None:
        """Block until this process leads; the term, or ``None`` after ``timeout`` seconds
        (or at once, if this process does not campaign: not started, or without the lock).

        :raises ConfigurationError: as :meth:`current` does.
        """
        leadership = self.leadership
        return None if leadership is None else leadership.wait(timeout)

    # -- inside ----------------------------------------------------------------------------

    def _refuse_if_forked(self) -> None:
        started = self._started_in
        if started is not None and started != os.getpid():
            raise ConfigurationError(
                f"the leadership of {self.name!r} was started in process {started}, and this "
                f"process ({os.getpid()}) was forked from it: a started elector cannot cross a "
                "fork (its thread and etcd connection stay behind). Start it after the fork, "
                "in the process that serves: start_on_request() in AppConfig.ready(), or "
                "start() in gunicorn's post_worker_init hook"
            )

    def _forked(self) -> None:
        """In a child just forked: let go of what belongs to the parent, without closing it
        (closing would act on the parent's connection); the pid check refuses the rest."""
        self._lock = threading.Lock()  # it may have been held by another thread at the fork
        self._leadership = None
        self._client = None
        self._lock_thread = None
        if self._lock_fd is not None:
            # Our copy of the descriptor: the lock stays the parent's while it keeps its own.
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def _campaign(self) -> None:
        client = self._make_client()
        leadership = Leadership(
            client.elector(self.name, **self._elector_options),
            on_elected=self._on_elected,
            on_lost=self._on_lost,
        )
        self._client, self._leadership = client, leadership.start()
        log.info("campaigning election=%s pid=%d", self.name, os.getpid())

    def _wait_for_group_lock(self) -> None:
        assert self.group_lock is not None
        fd = os.open(self.group_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while not self._closing.is_set():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self._closing.wait(_LOCK_RETRY_S)
            else:
                os.close(fd)
                return
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            if self._closing.is_set():
                os.close(fd)
                return
            self._lock_fd = fd
            log.info("holding group lock=%s pid=%d", self.group_lock, os.getpid())
            try:
                self._campaign()
            except Exception as exc:
                self._failure = exc
                log.error("cannot campaign for election=%s: %s", self.name, exc)

    def _release_group_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock

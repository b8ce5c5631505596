"""gunicorn settings: each worker starts its leadership as soon as it is ready, rather than
at the first request it serves (``gunicorn -c django_leader/gunicorn_conf.py ...``)."""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    # After the fork, in the worker that serves: the right place to start.
    from django_leader.leadership import leadership

    leadership.start()

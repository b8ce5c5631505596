"""The blocking twins of the async API, for threaded code (Django, Flask, Celery, threads).

Each ``Client`` runs the async core on one event loop in a background thread (see
:mod:`etcd_elector._portal`), started at its first use; the twins only carry calls into that
loop, so keepalives and watches keep running while your thread blocks. Objects may be shared
between threads. Local checks (``is_leader()``, ``alive``, ``remaining()``) read state directly
and cost no loop round trip. No logic is written twice: a twin's method is its async method,
carried (:mod:`._bridge`).
"""

"""A Django site whose worker processes share one candidate: see ``leadership.py``.

    cd examples
    ETCD_ENDPOINTS=127.0.0.1:2379 DJANGO_SETTINGS_MODULE=django_leader.settings \
        gunicorn --preload --workers 3 --bind 127.0.0.1:8000 django_leader.wsgi

``GET /leader`` answers 200 (with the term's token) from the worker that leads, 503 from the
others; the worker that holds the group lock is the one campaigning. Settings:
``ETCD_ENDPOINTS``, ``ETCD_ELECTOR_NAMESPACE``, ``ETCD_ELECTOR_TTL`` and
``EXAMPLE_GROUP_LOCK`` (the lock file, default ``/tmp/django_leader.lock``).
"""

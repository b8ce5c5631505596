"""Leader election where Python schedulers need it: one module per integration.

* :mod:`etcd_elector.integrations.leader_only`: ``@leader_only`` and ``Leadership``, for
  any function, sync or async (no extra dependency);
* :mod:`etcd_elector.integrations.apscheduler`: APScheduler 3 jobs that fire only on the
  leader (``pip install 'etcd-elector[apscheduler]'``);
* :mod:`etcd_elector.integrations.celery`: a ``celery beat`` scheduler that sends only from
  the leader, and a worker-side fence (``pip install 'etcd-elector[celery]'``).

Each is built on the library's public API only.
"""

"""The site's one leadership: built at import, started by nothing here.

``AppConfig.ready()`` runs in every process that loads Django (a ``--preload`` master, each
worker, ``manage.py`` commands, both processes of ``runserver``'s autoreloader), so it only
asks for a start on the first request a process serves (``apps.py``). The group lock makes
one worker of the group campaign; if it exits, another takes the lock and campaigns.
"""

from __future__ import annotations

import os

from etcd_elector.integrations.django import ProcessLeadership

leadership = ProcessLeadership(
    "django-reports",
    group_lock=os.environ.get("EXAMPLE_GROUP_LOCK", "/tmp/django_leader.lock"),
    namespace=os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector"),
    ttl=int(os.environ.get("ETCD_ELECTOR_TTL", "10")),
)

from __future__ import annotations

from django.apps import AppConfig

from django_leader.leadership import leadership


class LeaderConfig(AppConfig):
    name = "django_leader"

    def ready(self) -> None:
        # Not leadership.start(): this runs in processes that never serve, and before
        # gunicorn --preload forks its workers. Start on the first request instead.
        leadership.start_on_request()

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse

from django_leader.leadership import leadership


def leader(request: HttpRequest) -> JsonResponse:
    term = leadership.current()  # local: computed from the lease deadline
    if term is None:
        return JsonResponse({"leader": False, "pid": os.getpid()}, status=503)
    return JsonResponse({"leader": True, "token": term.token, "pid": os.getpid()})

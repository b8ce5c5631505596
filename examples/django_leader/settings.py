"""The smallest settings a Django site runs with: no database, one app."""

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django_leader.apps.LeaderConfig"]
ROOT_URLCONF = "django_leader.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"etcd_elector": {"handlers": ["console"], "level": "INFO"}},
}

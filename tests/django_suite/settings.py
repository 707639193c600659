"""Settings for Django's own cache tests run against TierCacheBackend (tests/test_django_suite.py): those
of Django's test runner (tests/test_sqlite.py in Django), with the backend at $TIERCACHE_DJANGO_LOCATION."""

import os

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3"}, "other": {"ENGINE": "django.db.backends.sqlite3"}}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", "cache"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
CACHES = {
    "default": {
        "BACKEND": "tiercache.contrib.django.TierCacheBackend",
        "LOCATION": os.environ["TIERCACHE_DJANGO_LOCATION"],
    },
}

"""Django's BaseCacheTests against TierCacheBackend, declared as Django declares RedisCacheTests: every
cache alias of its test settings but the culling ones (culling is Django's local backends' own policy)."""

from cache.tests import BaseCacheTests, caches_setting_for_tests
from django.conf import settings
from django.test import TestCase, override_settings

TIERCACHE_PARAMS = settings.CACHES["default"]


@override_settings(CACHES=caches_setting_for_tests(base=TIERCACHE_PARAMS, exclude={"cull", "zero_cull"}))
class TierCacheTests(BaseCacheTests, TestCase):
    pass

# The read path's I/O-free steps, compiled (twin of tiercache/manager/_readpath_py.py, which documents them).
#
#   get(ns, key) ──> _front: last namespace, or the dict of NamespaceState ──> a plain namespace's HashCache
#                      │ hit: the value, no Python frame         │ miss: the manager's `miss` callable
#   get_many     ──> plan_many ──> (the manager's L2 round trip) ──> finish
#
# The manager builds the NamespaceState objects and hands this class its collaborators as callables; no
# attribute of the manager is read here. finish is the one place where L2 bytes become a value in L1.

cdef object _random = __import__("random").random

MISSING = _MISSING  # what lookup() answers for "not in L1"


cdef inline double _spread(double seconds, double jitter) except? -1.0:
    """`seconds` times a random factor in [1 - jitter, 1 + jitter]."""
    return seconds * (1.0 + jitter * (2.0 * _random() - 1.0))


def jittered(seconds, jitter):
    """`seconds` spread by ± `jitter` (a fraction), so entries written together do not expire together."""
    if seconds is None or not jitter:
        return seconds
    return _spread(seconds, jitter)


@cython.final
cdef class ReadCounts:
    """The read path's counters of one namespace: L2 hits and misses, promotions (made, skipped because a write
    overtook the read, declined by the strategy), and L2 hits promoted without a decision."""

    def as_dict(self):
        """{counter: value} in tiercache.observability.counters' names (`promoted` is promotion's own)."""
        return {"l2_hits": self.l2_hits, "l2_misses": self.l2_misses, "promotions": self.promotions,
                "promotions_skipped_stale": self.promotions_skipped_stale,
                "promotions_declined": self.promotions_declined}


@cython.final
cdef class NamespaceState:
    """One namespace as the read and write paths see it: its L1, settings, codec and write version.

    Built by the manager, replaced whole when the namespace's settings change; `version` is bumped by every
    write and invalidation, so a read that an update overtook does not copy its old value into L1."""

    def __init__(self, str name, HashCache l1, cfg, loads, immediate, str l2_base, codec=None):
        self.name = name
        self.l1 = l1
        self.cfg = cfg
        self.loads = loads
        self.codec = codec
        self.plain = not cfg.l1_grace_period
        self.immediate = bool(immediate)
        self.persist = bool(cfg.persist_to_l2)
        self.version = 0
        self.counts = ReadCounts()
        self.l2_base = l2_base

    def bump(self):
        self.version += 1

    def inherit(self, NamespaceState previous):
        """Count on in the counters of the state this one replaces (a read still finishing on that one counts
        there too)."""
        self.counts = previous.counts


@cython.final
@cython.freelist(8)
cdef class _L1Ttl:
    """A namespace's L1 TTL settings (and value size cap) as C numbers, read once per finish rather than
    once per value."""
    cdef bint has_l1_ttl
    cdef double l1_ttl, jitter, grace
    cdef Py_ssize_t max_value

    def __cinit__(self, cfg):
        self.max_value = cfg.max_value_bytes
        self.has_l1_ttl = cfg.l1_ttl is not None
        self.l1_ttl = cfg.l1_ttl if self.has_l1_ttl else 0.0
        self.jitter = cfg.ttl_jitter or 0.0
        self.grace = cfg.l1_grace_period or 0.0


@cython.final
cdef class ReadPath:
    """The steps of a read that do no I/O, over the manager's namespaces (see the pure twin for the
    arguments: spaces, miss, amiss, decide, corrupt, timer)."""

    cdef:
        # -- what the manager hands over
        dict _spaces
        object _miss, _amiss, _decide, _corrupt, _timer
        # -- the namespace of the previous hit (callers repeat the same str object) and its L1
        object _last_namespace
        HashCache _last_l1
        # -- L1 latency sampling: one lookup in (_sample_mask + 1) timed into _samples[namespace];
        #    _sample_mask < 0 turns it off (the hit path then pays one compare)
        int64_t _sample_mask
        uint64_t _tick
        dict _samples
        Ready _ready                   # reused by aget while nobody else holds it

    def __cinit__(self):
        self._sample_mask = -1
        self._tick = 0
        self._samples = {}
        self._ready = Ready.__new__(Ready)

    def __init__(self, dict spaces, miss, amiss, decide, corrupt, timer):
        self._spaces = spaces
        self._miss = miss
        self._amiss = amiss
        self._decide = decide
        self._corrupt = corrupt
        self._timer = timer
        self._last_namespace = None
        self._last_l1 = None

    # ------------------------------------------------------------------ L1 latency sampling

    def set_sampling(self, every):
        """Time one L1 lookup in `every` (a power of two); 0 turns sampling off."""
        if every == 0:
            self._sample_mask = -1
            return
        if isinstance(every, bool) or not isinstance(every, int) or every < 1 or every & (every - 1):
            raise ValueError(f"l1 sampling needs a power of two, got {every!r}")
        self._sample_mask = every - 1

    cdef SampleHistogram _histogram(self, object namespace):
        cdef PyObject* found = PyDict_GetItem(self._samples, namespace)
        if found != NULL:
            return <SampleHistogram>found
        h = SampleHistogram()
        self._samples[namespace] = h
        return h

    def record_l1_sample(self, namespace, double seconds):
        """Add one timed L1 lookup of `namespace`."""
        self._histogram(namespace)._add(seconds)

    def l1_samples(self, reset_window=False):
        """{namespace: {counts, count, sum, max, window_max}} of the timed L1 lookups."""
        return {ns: (<SampleHistogram>h).state(reset_window) for ns, h in list(self._samples.items())}

    def forget(self):
        """The namespaces changed (one replaced or dropped): drop the shortcut to the last one."""
        self._last_namespace = None
        self._last_l1 = None

    cdef inline object _sampled_get(self, object namespace, HashCache l1, object key):
        cdef double t0
        cdef object value
        if self._sample_mask >= 0:
            self._tick += 1
            if (self._tick & <uint64_t>self._sample_mask) == 0:
                t0 = tc_monotonic()
                value = l1._get(key, _MISSING)
                self._histogram(namespace)._add(tc_monotonic() - t0)
                return value
        return l1._get(key, _MISSING)

    # ------------------------------------------------------------------ get's L1 step

    cdef inline object _front(self, object namespace, object key, bint* checked):
        """The L1 value of a plain namespace, else _MISSING; `checked`: L1 was consulted (a miss counted)."""
        cdef HashCache l1 = None
        cdef PyObject* found
        cdef object tp = type(key)
        if tp is str or tp is int or tp is bytes:
            if namespace is self._last_namespace:
                l1 = self._last_l1
            elif type(namespace) is str:
                found = PyDict_GetItem(self._spaces, namespace)
                if found != NULL and type(<object>found) is NamespaceState and (<NamespaceState>found).plain:
                    l1 = (<NamespaceState>found).l1
                    self._last_namespace = namespace
                    self._last_l1 = l1
            if l1 is not None:
                checked[0] = True
                return self._sampled_get(namespace, l1, key)
        return _MISSING

    def get(self, namespace, key, default=None):
        """The value from L1, else L2 (copied into L1), else `default`."""
        cdef bint checked = False
        cdef object value = self._front(namespace, key, &checked)
        if value is not _MISSING:
            return value
        return self._miss(namespace, key, default, checked)

    def aget(self, namespace, key, default=None):
        """get() for the async manager: an L1 hit is a Ready awaitable (no coroutine, no I/O)."""
        cdef bint checked = False
        cdef object value = self._front(namespace, key, &checked)
        cdef Ready ready
        if value is not _MISSING:
            if Py_REFCNT(<PyObject*>self._ready) == 1:  # nobody else holds the last one: reuse it
                ready = self._ready
            else:  # the last one is still held (not awaited yet, or kept): a fresh one
                ready = Ready.__new__(Ready)
                self._ready = ready
            ready._hold(value)
            return ready
        return self._amiss(namespace, key, default, checked)

    # ------------------------------------------------------------------ plans

    def lookup(self, NamespaceState state, key, bint count=True):
        """(fresh L1 value or MISSING, stale value within the grace period or MISSING); `count=False`
        peeks (no hit or miss counted, no sample)."""
        cdef object entry
        if count:
            entry = self._sampled_get(state.name, state.l1, key)
        else:
            entry = state.l1.peek(key, _MISSING)
        if entry is _MISSING or state.plain:
            return entry, _MISSING
        value, fresh_until = entry
        if fresh_until is None or self._timer() < fresh_until:
            return value, _MISSING
        return _MISSING, value

    def l2_key(self, NamespaceState state, key):
        """The L2 key of `key` in the namespace (TypeError / ValueError for a key L2 cannot hold)."""
        cdef object tp = type(key)
        if tp is str and PyUnicode_IS_ASCII(key) and PyUnicode_IS_ASCII(state.l2_base) and not (
                PyUnicode_GET_LENGTH(key) and PyUnicode_READ_CHAR(key, 0) == WIRE_KEY_MARK):
            return _ascii_concat(state.l2_base, key)
        return state.l2_base + <str>_encode_key(key)

    def plan_many(self, NamespaceState state, keys):
        """get_many's L1 step: (found in L1, missing, stale copies, their L2 keys or None when L2 has nothing
        to add). Each key once, in order; TypeError / ValueError for the first bad key, before anything."""
        cdef Py_ssize_t i, n
        cdef object key, tp, value, old
        cdef dict found, stale = {}
        cdef list missing = [], l2_keys = [], parts, todo
        cdef str base = state.l2_base
        cdef bint simple = True, ascii_base = PyUnicode_IS_ASCII(base)
        cdef HashCache l1 = state.l1
        if type(keys) is not list:
            keys = list(keys)
        n = len(keys)
        for key in keys:
            tp = type(key)
            if tp is str:
                if not PyUnicode_IS_ASCII(key) or (PyUnicode_GET_LENGTH(key) and
                                                    PyUnicode_READ_CHAR(key, 0) == WIRE_KEY_MARK):
                    simple = False
            elif tp is not int:
                simple = False
        if not simple:
            parts = [_encode_key(key) for key in keys]  # (raises for the first bad key)
        if not _distinct(keys, n):
            keys = list(dict.fromkeys(keys))  # each key once, in order
            if not simple:
                parts = [_encode_key(key) for key in keys]
        todo = keys
        found = tc_dict_presized(len(todo))
        for i in range(len(todo)):
            key = todo[i]
            if state.plain:
                value = l1._get(key, _MISSING)
            else:
                value, old = self.lookup(state, key)
                if old is not _MISSING:
                    stale[key] = old
            if value is not _MISSING:
                found[key] = value
                continue
            missing.append(key)
            if not state.persist:
                continue
            if not simple:
                l2_keys.append(base + <str>parts[i])
            elif type(key) is not str:
                l2_keys.append(f"{base}#i:{key}")
            elif ascii_base:
                l2_keys.append(_ascii_concat(base, key))
            else:
                l2_keys.append(base + <str>key)
        return found, missing, stale, (l2_keys if missing and state.persist else None)

    # ------------------------------------------------------------------ finish

    def finish(self, NamespaceState state, list keys, list l2_keys, list datas, version, dict found):
        """What happens to the bytes L2 answered: `datas[i]` for `keys[i]` (None: L2 does not hold it).
        See the pure twin for the rules. Returns (hits, misses, skipped, declined)."""
        cdef Py_ssize_t i, n = len(keys), size, start
        cdef Py_ssize_t hits = 0, misses = 0, skipped = 0, declined = 0
        cdef object key, data, value
        cdef double left = 0.0, now = 0.0
        cdef bint has_now = False, expires
        cdef bint overtaken = state.version != version
        cdef const char* p
        cdef _L1Ttl rule = _L1Ttl(state.cfg)
        if len(datas) != n or len(l2_keys) != n:
            raise ValueError("keys, l2_keys and datas differ in length")
        for i in range(n):
            data = datas[i]
            if data is None:
                misses += 1
                continue
            try:
                if not PyBytes_CheckExact(data):
                    raise _SerializationError(f"L2 answered {type(data).__name__}, not bytes")
                p = PyBytes_AS_STRING(data)
                size = PyBytes_GET_SIZE(data)
                expires = False
                start = 0
                if size and <unsigned char>p[0] == WIRE_EXPIRY_TAG:
                    if size < WIRE_EXPIRY_HEADER_SIZE:
                        raise _SerializationError("truncated expiry header")
                    if not has_now:
                        now = tc_wallclock()
                        has_now = True
                    left = tc_read_le_double(p + 1) - now
                    if left != left or left == INFINITY or left == -INFINITY:
                        raise _SerializationError("expiry header is not a finite time")
                    if left <= 0:
                        misses += 1
                        continue
                    expires = True
                    start = WIRE_EXPIRY_HEADER_SIZE
                if size - start - WIRE_FORMAT_HEADER_SIZE > rule.max_value:
                    raise _SerializationError(f"L2 value of {size} bytes is larger than max_value_bytes "
                                              f"({rule.max_value})")
                value = _decode_l2(data, start, state.loads, l2_keys[i])
            except _SerializationError as exc:
                self._corrupt(state.name, l2_keys[i], exc)
                continue
            key = keys[i]
            found[key] = value
            hits += 1
            if overtaken:
                skipped += 1
            elif not state.immediate and not self._decide(state.name, state.cfg, state.l1, key, size,
                                                          left if expires else None):
                declined += 1
            else:
                self._put(state, rule, key, value, -1, expires, left, True)  # (weighed by the L1's sizer)
        cdef ReadCounts counts = state.counts
        if state.immediate:
            counts.promoted += hits - skipped
        counts.l2_hits += hits
        counts.l2_misses += misses
        counts.promotions += hits - skipped - declined
        counts.promotions_skipped_stale += skipped
        counts.promotions_declined += declined
        return hits, misses, skipped, declined

    def store(self, NamespaceState state, key, value, size, ttl, bint promoted=False):
        """Put `value` into the namespace's L1 for no longer than `ttl` (None: no limit of its own) nor the
        namespace's (jittered) L1 TTL; with a grace period it is kept, stale, that much longer. `promoted`:
        an L2 hit copied up (HashCache.promote), else a write (HashCache.set)."""
        cdef bint has_ttl = ttl is not None
        cdef double seconds = _ttl_seconds(ttl) if has_ttl else 0.0
        self._put(state, _L1Ttl(state.cfg), key, value, -1 if size is None else _size_value(size, "size"),
                  has_ttl, seconds, promoted)

    cdef int _put(self, NamespaceState state, _L1Ttl rule, object key, object value, int64_t size,
                  bint has_ttl, double ttl, bint promoted) except -1:
        """`size` < 0: weigh what is stored (the value, or its (value, fresh_until) pair), as HashCache would."""
        cdef double base
        if rule.has_l1_ttl:
            base = rule.l1_ttl
            if rule.jitter:
                base = _spread(base, rule.jitter)
            if not has_ttl or base < ttl:
                ttl = base
                has_ttl = True
        if not state.plain:
            value = (value, self._timer() + ttl if has_ttl else None)
            if has_ttl:
                ttl = ttl + rule.grace
        if has_ttl and not (ttl > 0.0 and ttl < INFINITY):
            check_ttl(ttl)  # raises: the same message as for any other bad TTL
        if size < 0:
            size = state.l1._weigh(value, None)
        state.l1._store(key, _hash(key), value, has_ttl, ttl, size, promoted)
        return 0

# HashCache: the hash table, recency list, byte accounting and TTL heap as one object (included by
# _core_c.pyx; twin of tiercache/l1/_hashcache_py.py).



@cython.final
cdef class HashCache:
    """A bounded in-process LRU cache with per-entry TTLs and exact byte accounting (compiled).

    HashCache(max_bytes=10 MiB, max_entries=None, default_ttl=None, *, sizer=None, timer=None,
    cleanup_interval=None, policy="lru", on_evict=None). Thread-safe: any number of threads may share one
    instance.
    """

    def __cinit__(self):
        self.entries = NULL
        self.table.slots = NULL
        self.heap.items = NULL
        self.pending = NULL
        self.lru.head = -1
        self.lru.tail = -1
        self.probation.head = self.probation.tail = -1
        self.protected.head = self.protected.tail = -1
        self.sketch.table = NULL
        self.free_head = -1

    def __init__(self, max_bytes=10 * 1024 * 1024, max_entries=None, default_ttl=None, *,
                 sizer=None, timer=None, cleanup_interval=None, policy="lru", on_evict=None):
        cdef int policy_code = check_policy(policy)
        check_callable("on_evict", on_evict)
        max_bytes = check_max_bytes(max_bytes)
        max_entries = check_max_entries(max_entries)
        default_ttl = check_default_ttl(default_ttl)
        check_callable("sizer", sizer)
        check_callable("timer", timer)
        interval = check_interval(cleanup_interval)
        if self.entries != NULL:
            raise RuntimeError("HashCache.__init__ called twice")
        self.max_bytes_ = BYTES_CEILING if max_bytes is None else max_bytes
        self.bytes_unbounded = max_bytes is None
        self.max_entries_ = -1 if max_entries is None else max_entries
        self.has_default_ttl = default_ttl is not None
        self.default_ttl_ = default_ttl if default_ttl is not None else 0.0
        self.sizer = sizer
        self.timer = None if timer is _monotonic else timer
        self.policy_id = policy_code
        self.on_evict = on_evict
        self._allocate()
        if self.policy_id:
            wt_reset(self)
        self.cleaner = _cleanup.start(self, interval) if interval is not None else None

    cdef int _allocate(self) except -1:
        # Small to start with; both the slab and the table double as needed.
        self.capacity = _MIN_SLOTS
        self.entries = <Entry*>PyMem_Malloc(self.capacity * sizeof(Entry))
        self.pending_capacity = 16
        self.pending = <PyObject**>PyMem_Malloc(self.pending_capacity * sizeof(PyObject*))
        if self.entries == NULL or self.pending == NULL:
            raise MemoryError("tiercache: cannot allocate the cache")
        table_alloc(&self.table, 2 * _MIN_SLOTS)  # 16 slots
        heap_reserve(&self.heap)
        return 0

    def __dealloc__(self):
        slab_drop_evicted(self)  # (no callback now: the cache is going)
        slab_release_all(self)
        PyMem_Free(self.entries)
        tc_table_free(self.table.slots)
        PyMem_Free(self.heap.items)
        PyMem_Free(self.pending)
        PyMem_Free(self.evicted)
        sketch_free(&self.sketch)
        minisim_free(&self.minisim)

    # ------------------------------------------------------------------ internals

    cdef double _now(self) except? -1.0:
        if self.timer is None:
            return tc_monotonic()
        return float(self.timer())

    cdef Py_ssize_t _lookup(self, object key, Py_hash_t h) except -2:
        """Index of the entry holding `key`, or -1. May run key.__eq__; restarts if the cache changed."""
        cdef PyObject* k = <PyObject*>key
        cdef PyObject* stored
        cdef uint32_t tag = hash_tag(h)
        cdef uint8_t fp = tag_ctrl(tag)
        cdef uint8_t c
        cdef size_t i
        cdef int32_t idx
        cdef Entry* e
        cdef uint64_t version
        cdef int same
        while True:
            i = table_home(&self.table, tag)
            tc_prefetch_read(&self.table.slots[i])  # a hit reads it next: load it with the control byte
            while True:
                c = self.table.ctrl[i]
                if c == CTRL_EMPTY:
                    return -1
                if (c & CTRL_PRINT) == fp:
                    idx = self.table.slots[i]
                    e = &self.entries[idx]
                    if (e.tag & ~<uint32_t>TAG_LOW_BITS) != tag:
                        i = (i + 1) & self.table.mask
                        continue
                    if e.key == k:
                        return idx
                    stored = e.key
                    if (Py_TYPE(stored) == Py_TYPE(k)
                            and (PyLong_CheckExact(key) or PyUnicode_CheckExact(key))):
                        # equal-typed ints and strs compare in C without running Python code
                        if tc_rich_compare_bool(stored, k, Py_EQ) == 1:
                            return idx
                        i = (i + 1) & self.table.mask
                        continue
                    version = self.version
                    Py_XINCREF(stored)  # __eq__ may drop the cache's own reference
                    same = tc_rich_compare_bool(stored, k, Py_EQ)
                    Py_XDECREF(stored)
                    if same < 0:
                        return -2
                    if version != self.version:
                        break  # the table changed under __eq__: probe again
                    if same:
                        return idx
                i = (i + 1) & self.table.mask

    cdef Py_ssize_t _find_live(self, object key, Py_hash_t h, double* now, bint* has_now) except -2:
        """Like _lookup, but an expired entry is dropped (and counted) and reported absent.

        Reads the timer only when the entry found has an expiry and `has_now` is false.
        """
        cdef Py_ssize_t idx
        cdef uint64_t version
        while True:
            idx = self._lookup(key, h)
            if idx < 0 or self.entries[idx].heap_pos < 0:
                return idx
            if not has_now[0]:
                version = self.version
                now[0] = self._now()
                has_now[0] = True
                if version != self.version:
                    continue  # a user timer ran code that changed the cache
                if self.entries[idx].heap_pos < 0:
                    return idx  # ... or gave this key a new value without a TTL
            if now[0] >= self.entries[idx].expires:
                slab_evict(self, idx, EVICTED_EXPIRED)
                self.expirations += 1
                return -1
            return idx

    cdef bint _ttl_or_default(self, object ttl, double* seconds) except -1:
        """Whether an expiry applies: `ttl` checked into `seconds`, or default_ttl when None."""
        if ttl is None:
            seconds[0] = self.default_ttl_
            return self.has_default_ttl
        seconds[0] = _ttl_seconds(ttl)
        return True

    cdef int64_t _weigh(self, object value, object size) except -1:
        cdef int64_t weight
        if size is not None:
            return _size_value(size, "size")
        if self.sizer is None:
            weight = _default_size(value)
        elif self.sizer is _DEEP_SIZER:
            weight = _deep_size(value)
        else:
            return _size_value(self.sizer(value), "sizer result")
        if weight >= (<int64_t>1) << 56:  # (an entry holds its weight in 57 bits: check_size refuses it)
            return check_size(weight, "sizer result")
        return weight

    cdef void _set_expiry(self, Py_ssize_t idx, bint has_ttl, double expires) noexcept:
        """Give entry `idx` an expiry (heap room reserved) or none."""
        cdef Entry* e = &self.entries[idx]
        if has_ttl:
            e.expires = expires
            if e.heap_pos >= 0:
                heap_update(&self.heap, self.entries, <int32_t>idx)
            else:
                heap_push(&self.heap, self.entries, <int32_t>idx)
        elif e.heap_pos >= 0:
            heap_remove(&self.heap, self.entries, <int32_t>idx)

    cdef Py_ssize_t _drop_expired(self, double now) noexcept:
        cdef Py_ssize_t removed = 0
        cdef int32_t top
        while self.heap.length > 0:
            top = self.heap.items[0]
            if self.entries[top].expires > now:
                break
            slab_evict(self, top, EVICTED_EXPIRED)
            removed += 1
        self.expirations += removed
        return removed

    cdef bint _over(self) noexcept:
        return (self.bytes > self.max_bytes_
                or (self.max_entries_ >= 0 and self.count > self.max_entries_))

    cdef void _make_room(self, bint has_now, double now) noexcept:
        """Evict until both limits hold: expired entries first (when the time is known), then LRU."""
        if self.policy_id:
            wt_maintain(self, has_now, now)
            return
        if not self._over():
            return
        if has_now and self.heap.length > 0:
            self._drop_expired(now)
        while self._over():
            if self.bytes > self.max_bytes_:
                self.evictions_by_size += 1
                slab_evict(self, self.lru.tail, EVICTED_SIZE)
            else:
                slab_evict(self, self.lru.tail, EVICTED_COUNT)
            self.evictions += 1

    cdef bint _store(self, object key, Py_hash_t h, object value, bint has_ttl, double ttl,
                     int64_t size, bint promoted=False) except -1:
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx
        cdef Entry* e
        cdef PyObject* old
        cdef int32_t victim = self.lru.tail
        cdef bint count_later = False
        cdef Entry* v
        cdef size_t home
        # The new key's control byte: the probe below reads it first (and an insert writes it)
        tc_prefetch(&self.table.ctrl[table_home(&self.table, hash_tag(h))])
        if has_ttl or self.heap.length > 0:
            now = self._now()
            has_now = True
        if self.policy_id:
            sketch_prefetch(&self.sketch, hash_tag(h))  # (a new key's count reads it)
        if victim >= 0 and (self.count >= self.max_entries_ >= 0 or self.bytes + size > self.max_bytes_):
            # An eviction is likely: start loading all that removing the victim reads, at once — its slot
            # and control byte, its successor as tail, and its key and value objects (releasing them reads
            # their reference counts) — instead of one cache miss after another. Under "tinylfu" the
            # window's last entry is the candidate, which loses its duel most often (its count then goes
            # back to the sketch if it has uses the sketch has not seen); it meets probation's last.
            v = &self.entries[victim]
            if self.policy_id:
                if v.unsaved:
                    sketch_prefetch(&self.sketch, v.tag & ~<uint32_t>TAG_LOW_BITS)
                if self.probation.tail >= 0:
                    tc_prefetch(&self.entries[self.probation.tail])
                    tc_prefetch(&self.entries[self.probation.head])
            home = table_home(&self.table, v.tag)
            tc_prefetch(&self.table.slots[home])
            tc_prefetch(&self.table.ctrl[home])
            tc_prefetch(v.key)
            tc_prefetch(v.value)
            if v.prev >= 0:
                tc_prefetch(&self.entries[v.prev])
        idx = self._lookup(key, h)
        # From here to _flush() no Python code runs.
        if size > self.max_bytes_:
            if idx >= 0:
                slab_remove(self, idx)
            self.rejections += 1
            slab_flush(self)
            return False
        if not (<size_t>(self.count + 1) * 2 <= self.table.mask + 1  # else _reserve() grows something
                and (self.free_head >= 0 or self.high_water < self.capacity)
                and self.heap.length < self.heap.capacity):
            slab_reserve(self)
        if idx >= 0:
            e = &self.entries[idx]
            old = e.value
            Py_INCREF(value)
            e.value = <PyObject*>value
            self.bytes += size - e.size
            if self.policy_id:
                if (e.tag & ENTRY_SEGMENT) == SEG_WINDOW:
                    self.win_bytes += size - e.size
                elif (e.tag & ENTRY_SEGMENT) == SEG_PROTECTED:
                    self.prot_bytes += size - e.size
            e.size = size
            e.tag &= ~<uint32_t>ENTRY_FLAGS  # a new value: its own history
            wt_access(self, <int32_t>idx)
            slab_defer(self, old)
        else:
            idx = slab_insert(self, key, hash_tag(h), value, size)
            if self.policy_id:
                if self.max_entries_ < 0 and self.count > self.sketch.capacity:
                    wt_grow_sketch(self)
                count_later = wt_count_can_wait(self, <int32_t>idx)
                if not count_later:
                    wt_count_new(self, <int32_t>idx, hash_tag(h))
        if promoted:
            self.entries[idx].tag |= ENTRY_PROMOTED
            self.promoted += 1
        if has_ttl or self.entries[idx].heap_pos >= 0:
            self._set_expiry(idx, has_ttl, now + ttl)
        self.sets += 1
        if self.policy_id:
            if self._over() or wt_window_over(self):
                wt_maintain(self, has_now, now)
            if count_later:
                wt_count_new(self, <int32_t>idx, hash_tag(h))
        elif self._over():
            self._make_room(has_now, now)
        if TIERCACHE_DEBUG:
            self._check()
        if self.n_pending or self.n_evicted:
            slab_flush(self)
        return True

    # ------------------------------------------------------------------ W-TinyLFU (policy="tinylfu")
    #
    #   new entry ──> window (LRU, ~1 % to start) ──overflow──> probation ──hit──> protected (80 % of main)
    #                                                  ^                               │ overflow, demoted
    #                                                  └───────────────────────────────┘ on the next write
    # When the cache is over its limits, the entry the window just pushed out (the candidate, at the head
    # of probation) meets the probation's LRU (the victim): the one used less often lately goes (each
    # entry counts its uses: _wtinylfu.pxi). The window's size is the one that hit most in miniature simulations of the cache on a sample
    # of its lookups (_minisim.pxi), so recency-heavy workloads get a large window (LRU-like) and
    # frequency-heavy ones a small one. tiercache._core_py does the same, step for step.

    cdef void _evict(self, int32_t idx) noexcept:
        if self.bytes > self.max_bytes_:
            self.evictions_by_size += 1
            slab_evict(self, idx, EVICTED_SIZE)
        else:
            slab_evict(self, idx, EVICTED_COUNT)
        self.evictions += 1

    def admits(self, key, size):
        """Whether storing `key` (weighing `size`) now would displace nothing, or (policy "tinylfu") `key`
        wins the admission duel against the entry that would go first (the sketch's estimate for `key` above
        that entry's count, or warm and lucky: FrequencySketch.admit_counts); always True under "lru",
        which has no sketch. The promotion gate (tiercache.manager.promotion)."""
        cdef int64_t weight = _size_value(size, "size")
        cdef uint64_t tag = hash_tag(_hash(key))
        cdef int32_t victim
        if ((self.max_entries_ < 0 or self.count < self.max_entries_)
                and self.bytes + weight <= self.max_bytes_):
            return True
        if not self.policy_id:
            return True  # no frequency sketch under "lru": nothing to judge by, so no veto
        victim = self.probation.tail if self.probation.tail >= 0 else (
            self.protected.tail if self.protected.tail >= 0 else self.lru.tail)
        if victim < 0:
            return True
        return counts_admit(&self.sketch, sketch_frequency(&self.sketch, tag), self.entries[victim].freq)

    def has_room(self, size):
        """Whether an entry weighing `size` fits now without displacing another."""
        cdef int64_t weight = _size_value(size, "size")
        return ((self.max_entries_ < 0 or self.count < self.max_entries_)
                and self.bytes + weight <= self.max_bytes_)

    def was_hit(self, key):
        """For a promoted entry: whether it has been hit since (None when `key` is not held)."""
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, _hash(key), &now, &has_now)
        slab_flush(self)
        if idx < 0:
            return None
        return bool(self.entries[idx].tag & ENTRY_HIT)

    def held_bytes(self):
        """Bytes held now (expired entries not yet dropped included): cheap, for the manager's global cap."""
        return self.bytes

    def evict_one(self):
        """Evict the entry this policy would evict next; returns its weight, or None when empty. Counted as
        an eviction for size (the manager's global L1 cap)."""
        cdef int32_t victim
        cdef int64_t size
        if self.count == 0:
            return None
        if self.policy_id:
            victim = self.probation.tail if self.probation.tail >= 0 else (
                self.protected.tail if self.protected.tail >= 0 else self.lru.tail)
        else:
            victim = self.lru.tail
        size = self.entries[victim].size
        slab_evict(self, victim, EVICTED_SIZE)
        self.evictions += 1
        self.evictions_by_size += 1
        slab_flush(self)
        return size

    def record_use(self, key):
        """Count a use of `key` that did not reach this cache (an L1 miss served by L2), so the sketch
        judges a candidate by all its uses (policy "tinylfu"; nothing under "lru")."""
        if self.policy_id:
            sketch_increment(&self.sketch, hash_tag(_hash(key)))
            if self.sketch.agings != self.agings_seen:
                wt_halve_counts(self)

    def frequency(self, key):
        """How often `key` was used lately, 0..16 (policy "tinylfu"; 0 under "lru"): a held key's own count,
        else the sketch's estimate."""
        cdef Py_hash_t h
        cdef Py_ssize_t idx
        if not self.policy_id:
            return 0
        h = _hash(key)
        idx = self._lookup(key, h)
        if idx >= 0:
            return self.entries[idx].freq
        return sketch_frequency(&self.sketch, hash_tag(h))

    @property
    def policy(self):
        """The eviction policy: "lru" or "tinylfu"."""
        return "tinylfu" if self.policy_id else "lru"

    # ------------------------------------------------------------------ public API

    def get(self, key, default=None):
        """The value for `key`, or `default` when absent or expired; counts a hit or a miss."""
        return self._get(key, default)

    cdef object _get(self, object key, object default):
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        if self.policy_id:
            return self._get_wt(key, h, default)
        cdef Py_ssize_t idx = self._lookup(key, h)
        if idx >= 0 and self.entries[idx].heap_pos >= 0:  # an expiry to check: the slow path
            idx = self._find_live(key, h, &now, &has_now)
        if idx < 0:
            return self._missed(default)
        lru_touch(&self.lru, self.entries, <int32_t>idx)
        return self._hit(idx)

    cdef object _get_wt(self, object key, Py_hash_t h, object default):
        """_get under "tinylfu": a hit counts in the entry (wt_hit); a sampled lookup feeds the window's
        copies."""
        cdef double now = 0.0
        cdef bint has_now = False
        cdef uint32_t tag = hash_tag(h)
        cdef Py_ssize_t idx = self._lookup(key, h)
        if idx >= 0 and self.entries[idx].heap_pos >= 0:
            idx = self._find_live(key, h, &now, &has_now)
        if idx >= 0:
            wt_hit(self, <int32_t>idx, tag)
        if (tag & self.sample_mask) == 0:
            wt_sample(self, tag)
        if idx < 0:
            return self._missed(default)
        return self._hit(idx)

    cdef inline object _missed(self, object default):
        self.misses += 1
        if self.n_pending or self.n_evicted:
            slab_flush(self)
        return default

    cdef inline object _hit(self, Py_ssize_t idx):
        self.hits += 1
        if (self.entries[idx].tag & ENTRY_FLAGS) == ENTRY_PROMOTED:  # a promotion's first hit
            self.entries[idx].tag |= ENTRY_HIT
            self.promoted_hits += 1
        return <object>self.entries[idx].value

    def peek(self, key, default=None):
        """The value for `key` without marking it used or counting a hit/miss."""
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        if idx < 0:
            slab_flush(self)
            return default
        return <object>self.entries[idx].value

    def __contains__(self, key):
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        slab_flush(self)
        return idx >= 0

    def set(self, key, value, ttl=None, size=None):
        """Store `value`; False (and a rejection) when it alone outweighs max_bytes, which also drops `key`.

        `ttl` defaults to the cache's `default_ttl`; `size` defaults to `sizer(value)`. Least recently used
        entries (expired ones first) are evicted until max_bytes and max_entries hold.
        """
        return self._set(key, value, ttl, size)

    def __setitem__(self, key, value):
        """`cache[key] = value`: set() with the default ttl; ValueError where set() would return False."""
        if not self._set(key, value, None, None):
            raise too_heavy(self.max_bytes)

    def __getitem__(self, key):
        """`cache[key]`: get() (a hit or a miss is counted), but KeyError when absent or expired."""
        value = self._get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key):
        """`del cache[key]`: delete(), but KeyError when absent or expired."""
        self.pop(key)

    cdef bint _set(self, object key, object value, object ttl, object size) except -1:
        cdef bint has_ttl
        cdef double seconds
        if self.count >= self.max_entries_ >= 0 and self.lru.tail >= 0:
            tc_prefetch(&self.entries[self.lru.tail])  # the likely victim: load it while we hash
        has_ttl = self._ttl_or_default(ttl, &seconds)
        cdef Py_hash_t h = _hash(key)
        cdef int64_t weight = self._weigh(value, size)
        return self._store(key, h, value, has_ttl, seconds, weight)

    def promote(self, key, value, ttl=None, size=None):
        """`set`, marking the entry as promoted from L2: stats() counts it in `promoted`, and its first hit
        in `promoted_hits` (the promotion's precision). For CacheManager."""
        cdef bint has_ttl
        cdef double seconds
        has_ttl = self._ttl_or_default(ttl, &seconds)
        cdef Py_hash_t h = _hash(key)
        cdef int64_t weight = self._weigh(value, size)
        return self._store(key, h, value, has_ttl, seconds, weight, True)

    def set_many(self, mapping, ttl=None):
        """`set` each item with the same ttl; returns how many were stored. Checks every item first."""
        cdef bint has_ttl
        cdef double seconds
        cdef Py_ssize_t stored = 0
        has_ttl = self._ttl_or_default(ttl, &seconds)
        items = list(mapping.items() if isinstance(mapping, _Mapping) else mapping)
        weighed = []
        for key, value in items:
            weighed.append((key, _hash(key), value, self._weigh(value, None)))
        for key, h, value, weight in weighed:
            stored += self._store(key, h, value, has_ttl, seconds, weight)
        return stored

    def get_many(self, keys):
        """A dict of the present, unexpired keys among `keys`; counts a hit or miss for each."""
        keys = list(keys)
        for key in keys:
            _hash(key)
        found = {}
        for key in keys:
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                found[key] = value
        return found

    def delete(self, key):
        """Remove `key`; True when a live entry was removed."""
        return self.pop(key, _ABSENT) is not _ABSENT  # _MISSING would mean "raise"

    def pop(self, key, default=_MISSING):
        """Remove `key` and return its value; `default` (or KeyError) when absent or expired."""
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        if idx >= 0:
            value = <object>self.entries[idx].value
            slab_remove(self, idx)
            slab_flush(self)
            return value
        slab_flush(self)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def touch(self, key, ttl=None):
        """Mark `key` used and restart its expiry with `ttl` (or default_ttl; neither: expiry unchanged)."""
        cdef bint has_ttl
        cdef double seconds
        cdef double now = 0.0
        cdef bint has_now = False
        has_ttl = self._ttl_or_default(ttl, &seconds)
        cdef Py_hash_t h = _hash(key)
        if has_ttl:
            now = self._now()
            has_now = True
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        if idx < 0:
            slab_flush(self)
            return False
        slab_reserve(self)  # heap room for a first expiry
        wt_access(self, <int32_t>idx)
        if has_ttl:
            self._set_expiry(idx, True, now + seconds)
        return True

    def ttl(self, key):
        """Seconds until `key` expires, None when it never does; KeyError when absent or expired."""
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        slab_flush(self)
        if idx < 0:
            raise KeyError(key)
        if self.entries[idx].heap_pos < 0:
            return None
        return self.entries[idx].expires - now

    def expire(self):
        """Drop every expired entry now; returns how many. Costs O(expired · log n)."""
        cdef Py_ssize_t removed
        if self.heap.length == 0:
            return 0
        removed = self._drop_expired(self._now())
        slab_flush(self)
        return removed

    def clear(self):
        """Remove every entry (stats counters are kept)."""
        cdef int32_t i
        if self.policy_id:  # (their counts go back to the sketch)
            for i in range(self.high_water):
                if self.entries[i].key != NULL:
                    wt_give_back(self, &self.entries[i])
        slab_release_all(self)

    def __len__(self):
        self.expire()
        return self.count

    def __iter__(self):
        """Iterate over a snapshot of the live keys, least recently used first."""
        self.expire()
        keys = []
        cdef int32_t idx
        cdef Lru* lists[3]
        cdef int n = 1, i
        lists[0] = &self.lru
        if self.policy_id:  # eviction order, roughly: probation, protected, then the window
            lists[0] = &self.probation
            lists[1] = &self.protected
            lists[2] = &self.lru
            n = 3
        for i in range(n):
            idx = lists[i].tail
            while idx >= 0:
                keys.append(<object>self.entries[idx].key)
                idx = self.entries[idx].prev
        return iter(keys)

    def stats(self):
        """Counters and sizes; expired entries are dropped first so entries/bytes count live entries."""
        self.expire()
        cdef uint64_t lookups = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "evictions": self.evictions,
            "evictions_by_size": self.evictions_by_size,
            "evictions_by_count": self.evictions - self.evictions_by_size,
            "expirations": self.expirations,
            "rejections": self.rejections,
            "entries": self.count,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "max_entries": None if self.max_entries_ < 0 else self.max_entries_,
            "hit_rate": self.hits / <double>lookups if lookups else 0.0,
            "promoted": self.promoted,
            "promoted_hits": self.promoted_hits,
        }

    @property
    def max_bytes(self):
        return None if self.bytes_unbounded else self.max_bytes_

    @property
    def max_entries(self):
        return None if self.max_entries_ < 0 else self.max_entries_

    @property
    def default_ttl(self):
        return self.default_ttl_ if self.has_default_ttl else None

    def set_limits(self, max_bytes=10 * 1024 * 1024, max_entries=None):
        """Change the limits (same rules as the constructor); a smaller budget evicts down to it at once
        (expired entries first, then least recently used). Returns how many entries were removed. Under
        "tinylfu", a new max_entries restarts the sketch and the window's sizing; a new max_bytes alone
        keeps them."""
        max_bytes = check_max_bytes(max_bytes)
        max_entries = check_max_entries(max_entries)
        cdef uint64_t before = self.evictions + self.expirations
        cdef double now = 0.0
        cdef bint has_now = False
        if self.heap.length > 0:
            now = self._now()
            has_now = True
        cdef int64_t old_bytes = self.max_bytes_, old_entries = self.max_entries_
        cdef bint old_unbounded = self.bytes_unbounded
        self.max_bytes_ = BYTES_CEILING if max_bytes is None else max_bytes
        self.bytes_unbounded = max_bytes is None
        self.max_entries_ = -1 if max_entries is None else max_entries
        if self.policy_id and self.max_entries_ == old_entries:
            wt_maintain(self, has_now, now)  # (a new max_bytes alone keeps the sketch and the window's sizing)
            wt_regain(self)
        elif self.policy_id:
            try:
                wt_reset(self)  # the window and the sketch follow the new capacity
            except MemoryError:
                self.max_bytes_, self.max_entries_, self.bytes_unbounded = old_bytes, old_entries, old_unbounded
                raise
            wt_maintain(self, has_now, now)
        elif self._over():
            self._make_room(has_now, now)
        slab_flush(self)
        return self.evictions + self.expirations - before

    def close(self):
        """Stop the cleanup thread, if any. The cache stays usable."""
        cleaner, self.cleaner = self.cleaner, None
        if cleaner is not None:
            cleaner.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<HashCache compiled entries={self.count} bytes={self.bytes} "
                f"max_bytes={self.max_bytes} max_entries={self.max_entries}>")

    # ------------------------------------------------------------------ debugging

    def _check(self):
        """Raise AssertionError unless every internal invariant holds (tests call this after each step)."""
        check_invariants(self)

    def size_curve(self):
        """Under "tinylfu", what the window's simulations saw of the hit ratio at other sizes: {"entries": the
        size they stand for, "lookups": lookups sampled, "hits": (at half that size, at it, at twice it)},
        counted since they were made (a new max_entries, a sketch that grew, max_bytes binding at another
        size) and filled (not before the copy of that size is full and 4 x its entries of lookups were
        sampled, or 16 x); None under "lru" and in caches too small to simulate."""
        if not self.policy_id or self.minisim.copies == NULL:
            return None
        return {"entries": self.plan_entries, "lookups": self.minisim.sampled,
                "hits": (self.minisim.size_hits[0], self.minisim.size_hits[1], self.minisim.size_hits[2])}

    def _window(self):
        """(window share, capacity) in entries under the "tinylfu" policy, else None (for tests)."""
        return (self.wmax, self.cap_) if self.policy_id else None

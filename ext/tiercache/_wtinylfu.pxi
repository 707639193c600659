# The W-TinyLFU policy of a HashCache: window, probation and protected lists, the admission duel and the
# window's sizing (included by _core_c.pyx; twin of tiercache/l1/_wtinylfu_py.py).

cdef enum:
    WT_MOVES = 64  # entries wt_maintain moves between lists per call, at most, from each of window and protected


cdef Lru* wt_list(HashCache self, int32_t idx) noexcept:
    cdef uint32_t seg = self.entries[idx].tag & ENTRY_SEGMENT
    if seg == SEG_WINDOW:
        return &self.lru
    if seg == SEG_PROBATION:
        return &self.probation
    return &self.protected

cdef void wt_move(HashCache self, int32_t idx, Lru* dest, uint32_t seg) noexcept:
    """Move entry `idx` to the head of `dest` (list `seg`), keeping the per-list counts."""
    cdef Entry* e = &self.entries[idx]
    cdef uint32_t old = e.tag & ENTRY_SEGMENT
    lru_unlink(wt_list(self, idx), self.entries, idx)
    if old == SEG_WINDOW:
        self.win_count -= 1
        self.win_bytes -= e.size
    elif old == SEG_PROTECTED:
        self.prot_count -= 1
        self.prot_bytes -= e.size
    if seg == SEG_WINDOW:
        self.win_count += 1
        self.win_bytes += e.size
    elif seg == SEG_PROTECTED:
        self.prot_count += 1
        self.prot_bytes += e.size
    e.tag = (e.tag & ~<uint32_t>ENTRY_SEGMENT) | seg
    lru_link_front(dest, self.entries, idx)

# A held key's frequency lives in its entry (Entry.freq, 0..16), not in the sketch: a hit adds one to it, and
# to the sketch's aging clock, without hashing the key; the duel compares the entries' counts; when an entry
# leaves, its count goes back to the sketch (sketch_raise). The sketch keeps the history of keys not held
# (misses, new keys, L2 reads counted by record_use) and every use of the keys the window copies sample, so
# that the copies judge by the same counts. Each aging of the sketch halves the entries' counts too, rounding
# up: a use does not become no use (a count of 1 stays 1, so a resident used once still ties a newcomer, and
# the tie keeps it, instead of losing to every newcomer after each aging).
# Entry.unsaved is set when the sketch may hold less than the entry's count (a use counted in the entry only;
# an aging, which clears the doorkeeper): an entry leaving without it would change nothing in the sketch, so
# the write-back, a likely cache miss, is skipped. The pure twin writes back every time, to the same effect;
# the tests check after every step that an entry without the flag is held by the sketch (sketch_holds).

cdef inline void wt_give_back(HashCache self, Entry* e) noexcept:
    """The held entry `e` is leaving: its count goes back to the sketch, if the sketch may lack it."""
    if e.unsaved:
        sketch_raise(&self.sketch, e.tag & ~<uint32_t>TAG_LOW_BITS, e.freq)


cdef void wt_halve_counts(HashCache self) noexcept:
    """The sketch aged: so do the entries' counts (halved, rounding up); and with a max_entries, the next
    period is set for the entries held (a cache its bytes bind below max_entries ages as one of its real
    size)."""
    cdef int32_t i
    self.agings_seen = self.sketch.agings
    for i in range(self.high_water):
        if self.entries[i].key != NULL:
            self.entries[i].freq = (self.entries[i].freq + 1) >> 1
            if self.entries[i].freq:
                self.entries[i].unsaved = -1  # (a one-bit signed field: -1 is set)
    if self.max_entries_ >= 0:
        sketch_age_for(&self.sketch, self.count)


cdef inline void wt_count(HashCache self, Entry* e, uint32_t tag) noexcept:
    """One use of the held entry `e`, tagged `tag`."""
    if (tag & self.sample_mask) == 0:  # (a key the copies sample: the sketch counts its every use)
        if e.freq < 16:
            e.freq += 1
        sketch_increment(&self.sketch, tag)
    elif e.freq < 16:
        e.freq += 1
        e.unsaved = -1
        sketch_tick(&self.sketch)
    if self.sketch.agings != self.agings_seen:
        wt_halve_counts(self)


cdef bint wt_count_can_wait(HashCache self, int32_t idx) noexcept:
    """Whether the first count of the entry `idx`, new, may wait until the set has made room (by then its
    sketch block, prefetched, has loaded): only when making room cannot involve the entry for size or
    count (the window holds older entries, keeps at least one, and the entry fits its share of the bytes)
    and the count will not age the sketch, so no eviction of the set changes (the count and the set's
    write-backs then land in the other order, which matters only where keys share counters; an entry
    expiring at once is counted all the same). The pure twin decides alike."""
    if self.lru.tail == idx or self.wmax < 1 or self.sketch.size + 1 >= self.sketch.sample:
        return False
    return self.bytes_unbounded or self.entries[idx].size <= wt_window_bytes(self)


cdef void wt_count_new(HashCache self, int32_t idx, uint32_t tag) noexcept:
    """A new key's first use, tagged `tag`: counted in the sketch; the entry `idx`, if still held, starts
    from the sketch's estimate."""
    cdef int f = sketch_count(&self.sketch, tag)
    cdef bint aged = self.sketch.agings != self.agings_seen
    if aged:
        wt_halve_counts(self)
    if self.entries[idx].key != NULL:
        self.entries[idx].freq = f
        if aged and f:
            self.entries[idx].unsaved = -1


cdef inline void wt_hit(HashCache self, int32_t idx, uint32_t tag) noexcept:
    """A use of entry `idx` (tagged `tag`) under "tinylfu": counted, and moved to the front of its list (from
    probation to protected, which may then be over its share: wt_maintain demotes on the next write)."""
    cdef Entry* e = &self.entries[idx]
    cdef uint32_t seg = e.tag & ENTRY_SEGMENT
    wt_count(self, e, tag)
    if seg == SEG_PROTECTED:
        lru_touch(&self.protected, self.entries, idx)
    elif seg == SEG_WINDOW:
        lru_touch(&self.lru, self.entries, idx)
    else:
        wt_move(self, idx, &self.protected, SEG_PROTECTED)


cdef void wt_access(HashCache self, int32_t idx) noexcept:
    """A use of entry `idx` (a hit, an update, a touch)."""
    if not self.policy_id:
        lru_touch(&self.lru, self.entries, idx)
        return
    wt_hit(self, idx, self.entries[idx].tag & ~<uint32_t>TAG_LOW_BITS)

cdef inline int64_t wt_window_bytes(HashCache self) noexcept:
    """The window's share of max_bytes (meaningful when the bytes are bounded)."""
    return <int64_t>((<double>self.max_bytes_) * self.wmax / self.cap_)


cdef bint wt_window_over(HashCache self) noexcept:
    if self.max_entries_ >= 0 and self.win_count > self.wmax:
        return True
    return not self.bytes_unbounded and self.win_bytes > wt_window_bytes(self)

cdef bint wt_protected_over(HashCache self) noexcept:
    if self.max_entries_ >= 0 and self.prot_count > <int64_t>((self.cap_ - self.wmax) * 0.8):
        return True
    return (not self.bytes_unbounded
            and self.prot_bytes > <int64_t>((<double>self.max_bytes_) * (self.cap_ - self.wmax) / self.cap_ * 0.8))

cdef void wt_maintain(HashCache self, bint has_now, double now) noexcept:
    """Window and protected overflow into probation (at most WT_MOVES of each per call: after the window's
    size changes, the lists follow over the next writes), then evict until both limits hold (expired
    entries first)."""
    cdef int64_t candidates = 0, moved = 0
    cdef int32_t victim, candidate
    if has_now and self.heap.length > 0 and self._over():
        self._drop_expired(now)
    while moved < WT_MOVES and wt_protected_over(self) and self.protected.tail >= 0:
        wt_move(self, self.protected.tail, &self.probation, SEG_PROBATION)
        moved += 1
    while candidates < WT_MOVES and wt_window_over(self) and self.lru.tail >= 0:
        wt_move(self, self.lru.tail, &self.probation, SEG_PROBATION)
        candidates += 1
    while self._over():
        if self.probation.tail < 0:
            if self.protected.tail >= 0:
                wt_move(self, self.protected.tail, &self.probation, SEG_PROBATION)
            else:
                self._evict(self.lru.tail)
            continue
        victim = self.probation.tail
        candidate = self.probation.head
        if candidates == 0 or victim == candidate:
            self._evict(victim)
            continue
        if counts_admit(&self.sketch, self.entries[candidate].freq, self.entries[victim].freq):
            self._evict(victim)
        else:
            self._evict(candidate)
            candidates -= 1

cdef void wt_sample(HashCache self, uint32_t tag) noexcept:
    """A lookup of the key tagged `tag`, one that `tag & sample_mask == 0` picked for the simulations."""
    cdef int percent = minisim_lookup(&self.minisim, &self.sketch, tag)
    if percent >= 0:
        self.wmax = window_share(self.cap_, percent)
    if self.minisim.copies != NULL:
        wt_follow(self)


cdef void wt_follow(HashCache self) noexcept:
    """When max_bytes binds (the cache is 7/8 full by bytes, below its entry limit), the copies should stand
    for the entries it holds, not for its capacity in entries: made again for them (filled from the old
    ones) when the two differ by more than a quarter."""
    if self.bytes_unbounded or self.bytes * 8 < self.max_bytes_ * 7:
        return
    if self.max_entries_ >= 0 and self.count >= self.max_entries_:
        return
    cdef int64_t gap = self.count - self.plan_entries
    if gap * 4 > self.plan_entries or -gap * 4 > self.plan_entries:
        wt_plan(self, self.count, self.minisim.choice, True)
        if self.max_entries_ >= 0:  # (one bounded by bytes only sized its sketch as it grew)
            sketch_age_for(&self.sketch, self.count)


cdef void wt_regain(HashCache self) noexcept:
    """A new max_bytes: a cache without copies (its bytes held too few entries for them) makes them for the
    entries the new budget holds at its average entry size, once that is a quarter more than they were last
    planned for (wt_follow, which needs copies to run, adjusts them when the bytes bind)."""
    cdef int64_t entries
    if self.minisim.copies != NULL or self.bytes_unbounded or self.count == 0:
        return
    entries = self.max_bytes_ // max(1, self.bytes // self.count)
    if self.max_entries_ >= 0 and entries > self.max_entries_:
        entries = self.max_entries_
    if entries * 4 > self.plan_entries * 5:
        wt_plan(self, entries, self.minisim.choice, True)


cdef void wt_plan(HashCache self, int64_t entries, int choice, bint carry) noexcept:
    """Copies for a cache of `entries` entries (with `carry`, filled from those they replace)."""
    self.plan_entries = entries
    minisim_init(&self.minisim, entries, &self.sample_mask, choice, carry)

cdef int wt_reset(HashCache self) except -1:
    """Size the sketch, the window and the simulations for the current limits (the simulations restart)."""
    cdef int64_t cap = self.max_entries_ if self.max_entries_ >= 0 else 64
    cdef Sketch fresh
    cdef int32_t i
    if cap < 1:
        cap = 1
    sketch_init(&fresh, cap)  # (MemoryError: the cache keeps its sketch)
    sketch_free(&self.sketch)
    self.sketch = fresh
    for i in range(self.high_water):  # (the entries' counts are all the new sketch will know of them)
        if self.entries[i].key != NULL and self.entries[i].freq:
            self.entries[i].unsaved = -1
    self.agings_seen = 0
    self.cap_ = cap
    self.wmax = window_share(cap, _MINI_PERCENTS[MINI_START])
    wt_plan(self, cap, MINI_START, False)
    return 0

cdef int wt_grow_sketch(HashCache self) except -1:
    """A cache bounded by bytes only outgrew its sketch: double it (keeping its counts), scale the window,
    size the copies for the entries held (fewer than the new capacity: the bytes may bind first)."""
    cdef int64_t old = self.cap_
    cdef int64_t cap = self.sketch.capacity * 2
    try:
        sketch_grow(&self.sketch, cap)
    except MemoryError:
        return 0  # growing is optional: the cache goes on with the sketch it has
    self.cap_ = cap
    self.wmax = self.wmax * cap // old
    wt_plan(self, self.count, self.minisim.choice, True)
    return 0

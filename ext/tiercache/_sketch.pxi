# The frequency sketch: a count-min sketch of 4-bit counters with a doorkeeper and periodic aging
# (TinyLFU, Einziger & Friedman). It answers "about how often was this key seen lately?" in O(1) time and
# in memory bounded by the capacity it was sized for, whatever the number of distinct keys.
#
#   table      64-byte blocks (one cache line each) of 7 words of 16 4-bit counters and one doorkeeper
#              word; a key's 4 counters and 2 doorkeeper bits lie in one block.
#   doorkeeper 64 bits per block in front of the counters: a key's first sighting only sets its 2
#              doorkeeper bits, so one-off keys never reach the counters.
#   aging      after `sample` additions (10 x capacity, or 10 x the entries a cache bound by bytes holds:
#              sketch_age_for) every counter is halved and the doorkeeper cleared, so old popularity fades.
#   duel       sketch_admits: whether a candidate for the cache beats the entry it would displace.
#
# frequency = min of the 4 counters (+1 when the doorkeeper has the key), 0..16. A key is its 28-bit hash
# tag (hash_tag in _table.pxi), which HashCache keeps per entry: eviction never rehashes a key.
# tiercache._core_py has the same sketch in Python, operation for operation.

cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    # splitmix64's finalizer: every output bit depends on every input bit (a tag's low bits are all 0)
    x = (x ^ (x >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * <uint64_t>0x94D049BB133111EB
    return x ^ (x >> 31)


cdef inline uint64_t _mix2(uint64_t x) noexcept nogil:
    return _mix(x + <uint64_t>0x9E3779B97F4A7C15)


cdef int sketch_init(Sketch* s, int64_t capacity) except -1:
    cdef uint64_t n = 8
    if capacity < 1:
        capacity = 1
    while <int64_t>n < 2 * capacity:  # 16 bytes per entry: 2 blocks per 8 entries
        n <<= 1
    s.table = <uint64_t*>tc_table_alloc(n * sizeof(uint64_t))  # line-aligned: a block is one line
    if s.table == NULL:
        raise MemoryError("tiercache: cannot allocate the frequency sketch")
    memset(s.table, 0, n * sizeof(uint64_t))
    s.words = n
    s.block_mask = n // 8 - 1
    s.capacity = capacity
    s.sample = 10 * (capacity if capacity > 16 else 16)
    s.size = 0
    s.draws = 0
    s.agings = 0
    return 0


cdef int sketch_grow(Sketch* s, int64_t capacity) except -1:
    """Size the sketch for `capacity` (more than it has) keeping every key's counts: the table only doubles,
    a key's block in the larger table is its block in the smaller one or that plus the smaller one's size,
    and the larger table starts as copies of the smaller one, so every key's counters, doorkeeper bits and
    frequency are what they were. Additions since the last aging carry over; the aging period grows."""
    cdef Sketch fresh
    cdef uint64_t i
    sketch_init(&fresh, capacity)
    if fresh.words < s.words:  # (not a larger sketch: nothing to keep it from)
        sketch_free(&fresh)
        return 0
    for i in range(0, fresh.words, s.words):
        memcpy(&fresh.table[i], s.table, s.words * sizeof(uint64_t))
    fresh.size = s.size
    fresh.draws = s.draws
    fresh.agings = s.agings
    sketch_free(s)
    s[0] = fresh
    return 0


cdef inline void sketch_age_for(Sketch* s, int64_t entries) noexcept nogil:
    """Age as a sketch for `entries` entries would (every 10 x entries additions), up to the capacity's
    period: for a cache whose byte limit holds fewer entries than the sketch was sized for. Additions
    counted past half the new period are dropped, so a shorter period ages once, not at every addition."""
    if entries > s.capacity:
        entries = s.capacity
    s.sample = 10 * (entries if entries > 16 else 16)
    if s.size > s.sample // 2:
        s.size = s.sample // 2


cdef void sketch_free(Sketch* s) noexcept:
    tc_table_free(s.table)
    s.table = NULL
    s.words = 0


# A block is one 64-byte line: words 0-6 hold 112 counters, word 7 is the block's doorkeeper (64 bits). A
# key's 4 counters and its 2 doorkeeper bits all lie in its block: a lookup touches one cache line.
#   m  = _mix(key):  block = (m >> 32) & block_mask; counter i's word = ((m >> 8i) & 0xFF) * 7 >> 8
#   m2 = _mix2(key): counter i's nibble = (m2 >> (16 + 4i)) & 15; doorkeeper bits (m2 >> 32) & 63 and
#                    (m2 >> 40) & 63


cdef inline uint64_t _word(uint64_t m, int i) noexcept nogil:
    """The word, within its block, of a key's counter i (see the layout above)."""
    return (((m >> (8 * i)) & 0xFF) * 7) >> 8


cdef inline uint64_t _shift(uint64_t m2, int i) noexcept nogil:
    """The bit offset, within that word, of a key's counter i."""
    return ((m2 >> (16 + 4 * i)) & 15) * 4


cdef inline uint64_t _base(const Sketch* s, uint64_t m) noexcept nogil:
    """The first word of the block of the key whose first mix is `m`."""
    return ((m >> 32) & s.block_mask) * 8


cdef inline uint64_t _door_bits(uint64_t m2) noexcept nogil:
    """The key's two doorkeeper bits, in its block's last word."""
    return ((<uint64_t>1) << ((m2 >> 32) & 63)) | ((<uint64_t>1) << ((m2 >> 40) & 63))


cdef inline bint _door_has(const Sketch* s, uint64_t base, uint64_t m2) noexcept nogil:
    cdef uint64_t bits = _door_bits(m2)
    return (s.table[base + 7] & bits) == bits


cdef inline int sketch_frequency(const Sketch* s, uint64_t h) noexcept nogil:
    cdef uint64_t m = _mix(h)
    cdef uint64_t m2 = _mix2(h)
    return _estimate(s, _base(s, m), m, m2)


cdef inline int _estimate(const Sketch* s, uint64_t base, uint64_t m, uint64_t m2) noexcept nogil:
    cdef int i, c, f = 15
    for i in range(4):
        c = <int>((s.table[base + _word(m, i)] >> _shift(m2, i)) & 15)
        if c < f:
            f = c
    return f + (1 if _door_has(s, base, m2) else 0)


cdef void sketch_reset(Sketch* s) noexcept nogil:
    """Halve every counter, clear the doorkeepers (aging)."""
    cdef uint64_t i
    cdef int64_t odd = 0
    for i in range(s.words):
        if (i & 7) == 7:
            s.table[i] = 0
        else:
            odd += tc_popcount64(s.table[i] & <uint64_t>0x1111111111111111)
            s.table[i] = (s.table[i] >> 1) & <uint64_t>0x7777777777777777
    s.agings += 1
    s.size = (s.size - odd // 4) // 2
    if s.size < 0:  # (a grown sketch's tiles count each odd counter again)
        s.size = 0


cdef inline void sketch_tick(Sketch* s) noexcept nogil:
    """One addition on the aging clock (an increment that raised a counter, or a use a held entry counted
    in itself): the sketch ages every `sample` of them."""
    s.size += 1
    if s.size >= s.sample:
        sketch_reset(s)


cdef inline void sketch_increment(Sketch* s, uint64_t h) noexcept nogil:
    cdef uint64_t m = _mix(h)
    cdef uint64_t m2 = _mix2(h)
    _increment(s, _base(s, m), m, m2)


cdef inline void sketch_prefetch(Sketch* s, uint64_t h) noexcept nogil:
    """Start loading the block of the key tagged `h` (one line), which a count or a write-back reads next."""
    tc_prefetch(&s.table[_base(s, _mix(h))])


cdef inline int sketch_count(Sketch* s, uint64_t h) noexcept nogil:
    """sketch_increment, then sketch_frequency (after any aging the increment caused), hashing once."""
    cdef uint64_t m = _mix(h)
    cdef uint64_t m2 = _mix2(h)
    cdef uint64_t base = _base(s, m)
    _increment(s, base, m, m2)
    return _estimate(s, base, m, m2)


cdef inline void _increment(Sketch* s, uint64_t base, uint64_t m, uint64_t m2) noexcept nogil:
    cdef uint64_t w, shift
    cdef int i
    cdef bint added = False
    if not _door_has(s, base, m2):
        s.table[base + 7] |= _door_bits(m2)
        return
    for i in range(4):
        w = _word(m, i)
        shift = _shift(m2, i)
        if ((s.table[base + w] >> shift) & 15) < 15:
            s.table[base + w] += (<uint64_t>1) << shift
            added = True
    if added:
        sketch_tick(s)


# The admission duel. A candidate used more often lately than the victim wins. Otherwise it loses, except
# that a warm candidate (used WARM_CANDIDATE times lately) wins one duel in JITTER + 1 at random: a victim
# with a count it no longer earns (or, judged by the sketch, counters shared with a hot key's) would else
# turn away every candidate until the next aging, and so would a key an attacker keeps hot (Caffeine's
# answer to both). The draws are splitmix64's finalizer over 1, 2, 3, ..., the same in both implementations.
cdef enum:
    WARM_CANDIDATE = 6
    JITTER = 127


cdef inline bint counts_admit(Sketch* s, int f, int fv) noexcept nogil:
    """Whether a candidate used `f` times lately should displace a victim used `fv` times (the duel)."""
    if f > fv:
        return True
    if f < WARM_CANDIDATE:
        return False
    s.draws += 1
    return (_mix(s.draws) & JITTER) == 0


cdef inline void sketch_raise(Sketch* s, uint64_t h, int f) noexcept nogil:
    """The key `h` was used `f` times lately (counted elsewhere: a held entry's count, leaving the cache):
    its estimate becomes at least that (doorkeeper bits set, counters raised to f - 1). Adds nothing to the
    aging clock."""
    cdef uint64_t m = _mix(h)
    cdef uint64_t m2 = _mix2(h)
    cdef uint64_t base = _base(s, m)
    cdef uint64_t w, shift, c
    cdef int i
    if f <= 0:
        return
    s.table[base + 7] |= _door_bits(m2)
    f -= 1
    if f > 15:
        f = 15
    for i in range(4):
        w = _word(m, i)
        shift = _shift(m2, i)
        c = (s.table[base + w] >> shift) & 15
        if c < <uint64_t>f:
            s.table[base + w] += (<uint64_t>f - c) << shift


cdef bint sketch_holds(const Sketch* s, uint64_t h, int f) noexcept nogil:
    """Whether sketch_raise(s, h, f) would change nothing (for the invariant checks)."""
    cdef uint64_t m = _mix(h)
    cdef uint64_t m2 = _mix2(h)
    cdef uint64_t base = _base(s, m)
    cdef int i
    if f <= 0:
        return True
    if f > 16:
        f = 16
    if not _door_has(s, base, m2):
        return False
    for i in range(4):
        if <int>((s.table[base + _word(m, i)] >> _shift(m2, i)) & 15) < f - 1:
            return False
    return True


cdef inline bint sketch_admits(Sketch* s, uint64_t candidate, uint64_t victim) noexcept nogil:
    """counts_admit for the keys tagged `candidate` and `victim`, by the sketch's estimates."""
    return counts_admit(s, sketch_frequency(s, candidate), sketch_frequency(s, victim))


@cython.final
cdef class FrequencySketch:
    """TinyLFU's frequency sketch: 4-bit count-min counters, a doorkeeper, periodic aging (_sketch.pxi).

    O(1) per key and memory bounded by `capacity` (about 16 bytes per entry it is sized for), whatever the
    number of distinct keys. `frequency(key)` is 0..16, an estimate of recent uses.
    """

    cdef Sketch s

    def __cinit__(self, capacity):
        self.s.table = NULL
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__} {capacity!r}")
        sketch_init(&self.s, max(1, capacity))

    def __dealloc__(self):
        sketch_free(&self.s)

    def increment(self, key):
        """Count one use of `key`."""
        sketch_increment(&self.s, hash_tag(_hash(key)))

    def frequency(self, key):
        """About how often `key` was used lately (0..16)."""
        return sketch_frequency(&self.s, hash_tag(_hash(key)))

    def increment_tag(self, uint64_t t):
        sketch_increment(&self.s, t)

    def frequency_tag(self, uint64_t t):
        return sketch_frequency(&self.s, t)

    def admits(self, candidate, victim):
        """Whether `candidate` should displace `victim` in the cache: it is rated above it, or it is warm
        and wins one of the random draws (see the admission duel above)."""
        return sketch_admits(&self.s, hash_tag(_hash(candidate)), hash_tag(_hash(victim)))

    def admit_tag(self, uint64_t candidate, uint64_t victim):
        return sketch_admits(&self.s, candidate, victim)

    def admit_counts(self, int f, int victim):
        return counts_admit(&self.s, f, victim)

    def raise_tag(self, uint64_t t, int f):
        sketch_raise(&self.s, t, f)

    def age_for(self, entries):
        """Age as a sketch for `entries` entries would, up to the capacity's period (see sketch_age_for)."""
        if isinstance(entries, bool) or not isinstance(entries, int):
            raise TypeError(f"entries must be an int, got {type(entries).__name__} {entries!r}")
        sketch_age_for(&self.s, max(0, min(entries, self.s.capacity)))

    @property
    def agings(self):
        return self.s.agings

    @property
    def draws(self):
        return self.s.draws

    def tick(self):
        """One addition on the aging clock without a key (a use counted elsewhere)."""
        sketch_tick(&self.s)

    def reset(self):
        """Aging: halve every counter and clear the doorkeeper."""
        sketch_reset(&self.s)

    def grow(self, capacity):
        """Size the sketch for a larger `capacity`, keeping every key's frequency."""
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__} {capacity!r}")
        if capacity > self.s.capacity:
            sketch_grow(&self.s, capacity)

    @property
    def capacity(self):
        return self.s.capacity

    @property
    def sample(self):
        return self.s.sample

    @property
    def size(self):
        return self.s.size

    @property
    def words(self):
        return self.s.words

# The frequency sketch: a count-min sketch of 4-bit counters with a doorkeeper and periodic aging
# (TinyLFU, Einziger & Friedman). It answers "about how often was this key seen lately?" in O(1) time and
# in memory bounded by the capacity it was sized for, whatever the number of distinct keys.
#
#   table      words of 16 4-bit counters, grouped in 64-byte blocks of 8 words; a key's 4 counters all
#              lie in one block (one cache line): block from the hash's high half, then per counter one
#              byte of the hash picks a word (3 bits) and a nibble (4 bits).
#   doorkeeper a bit set (2 bits per key) in front of the table: a key's first sighting only sets its
#              doorkeeper bits, so one-off keys never reach the counters.
#   aging      after `sample` (10 x capacity) additions every counter is halved and the doorkeeper
#              cleared, so old popularity fades.
#
# frequency = min of the 4 counters (+1 when the doorkeeper has the key), 0..16. A key is its 28-bit hash
# tag (hash_tag in _table.pxi), which HashCache keeps per entry: eviction never rehashes a key.
# tiercache._core_py has the same sketch in Python, operation for operation.

cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    return h * <uint64_t>0x9E3779B97F4A7C15


cdef inline uint64_t _mix2(uint64_t h) noexcept nogil:
    return h * <uint64_t>0xC2B2AE3D27D4EB4F


cdef int sketch_init(Sketch* s, int64_t capacity) except -1:
    cdef uint64_t n = 8
    if capacity < 1:
        capacity = 1
    while <int64_t>n < capacity:
        n <<= 1
    s.table = <uint64_t*>PyMem_Malloc(n * sizeof(uint64_t))
    s.door = <uint64_t*>PyMem_Malloc(n * sizeof(uint64_t))
    if s.table == NULL or s.door == NULL:
        PyMem_Free(s.table)
        PyMem_Free(s.door)
        s.table = s.door = NULL
        raise MemoryError("tiercache: cannot allocate the frequency sketch")
    memset(s.table, 0, n * sizeof(uint64_t))
    memset(s.door, 0, n * sizeof(uint64_t))
    s.words = n
    s.block_mask = n // 8 - 1
    s.door_mask = n * 64 - 1
    s.capacity = capacity
    s.sample = 10 * (capacity if capacity > 16 else 16)
    s.size = 0
    return 0


cdef void sketch_free(Sketch* s) noexcept:
    PyMem_Free(s.table)
    PyMem_Free(s.door)
    s.table = s.door = NULL
    s.words = 0


cdef inline bint _door_has(const Sketch* s, uint64_t h) noexcept nogil:
    cdef uint64_t m = _mix2(h)
    cdef uint64_t p1 = (m >> 32) & s.door_mask
    cdef uint64_t p2 = (m >> 11) & s.door_mask
    return ((s.door[p1 >> 6] >> (p1 & 63)) & 1) and ((s.door[p2 >> 6] >> (p2 & 63)) & 1)


cdef inline void _door_add(Sketch* s, uint64_t h) noexcept nogil:
    cdef uint64_t m = _mix2(h)
    cdef uint64_t p1 = (m >> 32) & s.door_mask
    cdef uint64_t p2 = (m >> 11) & s.door_mask
    s.door[p1 >> 6] |= (<uint64_t>1) << (p1 & 63)
    s.door[p2 >> 6] |= (<uint64_t>1) << (p2 & 63)


cdef inline int sketch_frequency(const Sketch* s, uint64_t h) noexcept nogil:
    cdef uint64_t m = _mix(h)
    cdef uint64_t base = ((m >> 32) & s.block_mask) * 8
    cdef uint64_t b
    cdef int i, c, f = 15
    for i in range(4):
        b = (m >> (8 * i)) & 0xFF
        c = <int>((s.table[base + (b & 7)] >> (((b >> 3) & 15) * 4)) & 15)
        if c < f:
            f = c
    return f + (1 if _door_has(s, h) else 0)


cdef void sketch_reset(Sketch* s) noexcept nogil:
    """Halve every counter, clear the doorkeeper (aging)."""
    cdef uint64_t i
    cdef int64_t odd = 0
    for i in range(s.words):
        odd += tc_popcount64(s.table[i] & <uint64_t>0x1111111111111111)
        s.table[i] = (s.table[i] >> 1) & <uint64_t>0x7777777777777777
        s.door[i] = 0
    s.size = (s.size - odd // 4) // 2


cdef inline void sketch_increment(Sketch* s, uint64_t h) noexcept nogil:
    cdef uint64_t m, base, b, shift
    cdef int i
    cdef bint added = False
    if not _door_has(s, h):
        _door_add(s, h)
        return
    m = _mix(h)
    base = ((m >> 32) & s.block_mask) * 8
    for i in range(4):
        b = (m >> (8 * i)) & 0xFF
        shift = ((b >> 3) & 15) * 4
        if ((s.table[base + (b & 7)] >> shift) & 15) < 15:
            s.table[base + (b & 7)] += (<uint64_t>1) << shift
            added = True
    if added:
        s.size += 1
        if s.size >= s.sample:
            sketch_reset(s)

# The hash table: open addressing, linear probing, backward-shift deletion, over tagged slots.
#
# A slot is 8 bytes: an entry index (-1 = empty) and a 32-bit tag, the top half of hash * 2**64/phi
# (Fibonacci hashing: Python hashes ints to themselves, and the product spreads strided keys). The home
# slot is the tag's top bits. A probe compares tags in the table and reads an entry only when its tag
# matches, so a miss touches no entry at all; deletion pulls later members of the run back into the hole
# (no tombstones: a probe ends at the first empty slot), and growing rehashes from the tags alone.
# These functions never run Python code; comparing keys is the caller's business.

from libc.string cimport memset


cdef inline uint32_t hash_tag(Py_hash_t h) noexcept nogil:
    # (the four low bits are left 0: in Entry.tag they hold the entry's flags and list)
    return <uint32_t>((<uint64_t>h * <uint64_t>0x9E3779B97F4A7C15) >> 32) & ~<uint32_t>TAG_LOW_BITS


cdef inline size_t table_home(const Table* t, uint32_t tag) noexcept nogil:
    return <size_t>(tag >> t.shift)


cdef int table_alloc(Table* t, size_t nslots) except -1:
    """Point `t` at `nslots` fresh empty slots (`nslots` a power of two, 16 to 2**31)."""
    cdef Slot* slots = <Slot*>tc_table_alloc(nslots * sizeof(Slot))
    cdef int bits = 0
    if slots == NULL:
        raise MemoryError("tiercache: cannot allocate the hash table")
    memset(slots, 0xFF, nslots * sizeof(Slot))
    while (<size_t>1 << bits) < nslots:
        bits += 1
    t.slots = slots
    t.mask = nslots - 1
    t.shift = 32 - bits
    return 0


cdef inline void table_put(Table* t, int32_t idx, uint32_t tag) noexcept nogil:
    """Place entry `idx` in the first empty slot of its run (its key is known to be absent)."""
    cdef size_t mask = t.mask
    cdef size_t i = table_home(t, tag)
    while t.slots[i].index >= 0:
        i = (i + 1) & mask
    t.slots[i].index = idx
    t.slots[i].tag = tag


cdef inline void table_remove(Table* t, int32_t idx, uint32_t tag) noexcept nogil:
    """Take entry `idx` (whose tag is `tag`) out of the table and close the gap it leaves."""
    cdef size_t mask = t.mask
    cdef Slot* slots = t.slots
    cdef size_t i = table_home(t, tag)
    cdef size_t j, home
    while slots[i].index != idx:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        if slots[j].index < 0:
            break
        home = table_home(t, slots[j].tag)
        # the slot at j may fill the hole at i unless its home lies cyclically in (i, j]
        if ((j - home) & mask) >= ((j - i) & mask):
            slots[i] = slots[j]
            i = j
    slots[i].index = -1


cdef int table_grow(Table* t) except -1:
    """Double the slot count, re-placing every entry by its tag."""
    cdef Slot* old = t.slots
    cdef size_t n = t.mask + 1
    cdef size_t i
    table_alloc(t, 2 * n)
    for i in range(n):
        if old[i].index >= 0:
            table_put(t, old[i].index, old[i].tag)
    tc_table_free(old)
    return 0

# The hash table: open addressing, linear probing, Fibonacci hashing, backward-shift deletion.
#
# Slots hold int32 entry indices (-1 = empty). Python's hashes of ints are the ints themselves, so the
# home slot takes the top bits of hash * 2**64/phi: strided keys (multiples of 1024, say) spread out
# instead of piling into one run. Deletion pulls later members of the run back into the hole, so there are
# no tombstones and a probe ends at the first empty slot. Comparing keys is the caller's business: these
# functions never run Python code.

from libc.string cimport memset



cdef inline size_t table_home(const Table* t, Py_hash_t h) noexcept nogil:
    return <size_t>((<uint64_t>h * <uint64_t>0x9E3779B97F4A7C15) >> t.shift)


cdef int table_alloc(Table* t, size_t nslots) except -1:
    """Point `t` at `nslots` fresh empty slots (`nslots` a power of two >= 8)."""
    cdef int32_t* slots = <int32_t*>PyMem_Malloc(nslots * sizeof(int32_t))
    cdef int bits = 0
    if slots == NULL:
        raise MemoryError("tiercache: cannot allocate the hash table")
    memset(slots, 0xFF, nslots * sizeof(int32_t))
    while (<size_t>1 << bits) < nslots:
        bits += 1
    t.slots = slots
    t.mask = nslots - 1
    t.shift = 64 - bits
    return 0


cdef inline void table_put(Table* t, const Entry* entries, int32_t idx) noexcept nogil:
    """Place entry `idx` in the first empty slot of its run (its key is known to be absent)."""
    cdef size_t mask = t.mask
    cdef size_t i = table_home(t, entries[idx].hash)
    while t.slots[i] >= 0:
        i = (i + 1) & mask
    t.slots[i] = idx


cdef inline void table_remove(Table* t, const Entry* entries, int32_t idx) noexcept nogil:
    """Take entry `idx` out of the table and close the gap it leaves."""
    cdef size_t mask = t.mask
    cdef int32_t* slots = t.slots
    cdef size_t i = table_home(t, entries[idx].hash)
    cdef size_t j, home
    cdef int32_t moved
    while slots[i] != idx:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        moved = slots[j]
        if moved < 0:
            break
        home = table_home(t, entries[moved].hash)
        # `moved` may fill the hole at i unless its home lies cyclically in (i, j]
        if ((j - home) & mask) >= ((j - i) & mask):
            slots[i] = moved
            i = j
    slots[i] = -1


cdef int table_rebuild(Table* t, const Entry* entries, int32_t high_water, size_t nslots) except -1:
    """Re-insert every live entry into `nslots` new slots."""
    cdef int32_t* old = t.slots
    cdef int32_t idx
    table_alloc(t, nslots)
    for idx in range(high_water):
        if entries[idx].key != NULL:
            table_put(t, entries, idx)
    PyMem_Free(old)
    return 0

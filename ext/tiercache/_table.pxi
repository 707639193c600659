# The hash table: open addressing, linear probing, backward-shift deletion, with a control byte per slot.
#
# A slot is a 4-byte entry index (-1 = empty); the entry holds its 32-bit hash tag, the top half of
# hash * 2**64/phi (Fibonacci hashing: Python hashes ints to themselves, and the product spreads strided
# keys), and the home slot is the tag's top bits. Beside the slots, one control byte per slot (SwissTable's
# idea): 0x80 for empty, else 6 more bits of the tag and a bit saying the entry sits away from its home.
# A probe walks the control bytes (1 byte a slot: a table of 100k entries probes 256 KiB), reads a slot
# and its entry only where the bits match: a miss usually touches one byte, a hit one byte, one index and
# its entry. Deletion pulls later members of the run back into the hole (no tombstones: a probe ends at the
# first empty byte), reading the tags of those away from home for their home slots; growing re-places
# every entry by its tag. These functions never run Python code; comparing keys is the caller's business.

from libc.string cimport memset


cdef enum:
    CTRL_EMPTY = 0x80      # an empty slot
    CTRL_AWAY = 0x40       # an occupied slot whose entry is not in its home slot (deletion reads its tag)
    CTRL_PRINT = 0x3F      # the 6 tag bits of an occupied slot


cdef inline uint32_t hash_tag(Py_hash_t h) noexcept nogil:
    # (the four low bits are left 0: in Entry.tag they hold the entry's flags and list)
    return <uint32_t>((<uint64_t>h * <uint64_t>0x9E3779B97F4A7C15) >> 32) & ~<uint32_t>TAG_LOW_BITS


cdef inline uint8_t tag_ctrl(uint32_t tag) noexcept nogil:
    # bits 4-9 of the tag: below the home bits for tables of up to 2**22 slots, so they sort out most
    # members of a run; larger tables share some of them with the home, which only makes matches likelier
    return <uint8_t>((tag >> 4) & CTRL_PRINT)


cdef inline size_t table_home(const Table* t, uint32_t tag) noexcept nogil:
    return <size_t>(tag >> t.shift)


cdef int table_alloc(Table* t, size_t nslots) except -1:
    """Point `t` at `nslots` fresh empty slots (`nslots` a power of two, 16 to 2**31), with their control
    bytes in the same block, after the slots."""
    cdef int32_t* slots = <int32_t*>tc_table_alloc(nslots * (sizeof(int32_t) + 1))
    if slots == NULL:
        raise MemoryError("tiercache: cannot allocate the hash table")
    table_place(t, slots, nslots)
    return 0


cdef void table_place(Table* t, int32_t* slots, size_t nslots) noexcept nogil:
    """Point `t` at the block `slots` (from tc_table_alloc, nslots * 5 bytes) and empty it."""
    cdef int bits = 0
    t.slots = slots
    t.ctrl = <uint8_t*>(slots + nslots)
    while (<size_t>1 << bits) < nslots:
        bits += 1
    t.mask = nslots - 1
    t.shift = 32 - bits
    table_empty(t)


cdef inline void table_empty(Table* t) noexcept nogil:
    """Mark every slot empty."""
    memset(t.slots, 0xFF, (t.mask + 1) * sizeof(int32_t))
    memset(t.ctrl, CTRL_EMPTY, t.mask + 1)


cdef inline void table_put(Table* t, int32_t idx, uint32_t tag) noexcept nogil:
    """Place entry `idx` (hash tag `tag`) in the first empty slot of its run (its key is known to be absent)."""
    cdef size_t mask = t.mask
    cdef size_t i = table_home(t, tag)
    cdef size_t home = i
    while t.ctrl[i] != CTRL_EMPTY:
        i = (i + 1) & mask
    t.slots[i] = idx
    t.ctrl[i] = tag_ctrl(tag) | (CTRL_AWAY if i != home else 0)


cdef inline void table_remove(Table* t, const Entry* entries, int32_t idx, uint32_t tag) noexcept nogil:
    """Take entry `idx` (whose tag is `tag`) out of the table and close the gap it leaves."""
    cdef size_t mask = t.mask
    cdef int32_t* slots = t.slots
    cdef uint8_t* ctrl = t.ctrl
    cdef size_t i = table_home(t, tag)
    cdef size_t j, home
    cdef uint8_t c
    while slots[i] != idx:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        c = ctrl[j]
        if c == CTRL_EMPTY:
            break
        if not (c & CTRL_AWAY):
            continue  # in its home slot, which lies in (i, j]: it stays (and its entry is not read)
        home = table_home(t, entries[slots[j]].tag)
        # the slot at j may fill the hole at i unless its home lies cyclically in (i, j]
        if ((j - home) & mask) >= ((j - i) & mask):
            slots[i] = slots[j]
            ctrl[i] = (c & CTRL_PRINT) | (CTRL_AWAY if i != home else 0)
            i = j
    slots[i] = -1
    ctrl[i] = CTRL_EMPTY


cdef int table_grow(Table* t, const Entry* entries) except -1:
    """Double the slot count, re-placing every entry by its tag."""
    cdef int32_t* old = t.slots
    cdef size_t n = t.mask + 1
    cdef size_t i
    table_alloc(t, 2 * n)
    for i in range(n):
        if old[i] >= 0:
            table_put(t, old[i], entries[old[i]].tag)
    tc_table_free(old)
    return 0

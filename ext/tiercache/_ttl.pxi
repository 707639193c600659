# The expiry heap: a binary min-heap of entry indices ordered by Entry.expires. Each entry records its
# position (Entry.heap_pos), so changing or dropping an expiry is O(log n) and expire() pays only for the
# entries that are due: O(k log n) for k expired entries, whatever the cache size.

cdef int heap_reserve(Heap* h) except -1:
    """Make room for one more item, so that a later push cannot fail halfway through an update."""
    cdef int32_t capacity
    cdef int32_t* items
    if h.length < h.capacity:
        return 0
    capacity = h.capacity * 2 if h.capacity else 16
    items = <int32_t*>PyMem_Realloc(h.items, <size_t>capacity * sizeof(int32_t))
    if items == NULL:
        raise MemoryError("tiercache: cannot grow the expiry heap")
    h.items = items
    h.capacity = capacity
    return 0


cdef inline void heap_place(Heap* h, Entry* entries, int32_t pos, int32_t idx) noexcept nogil:
    h.items[pos] = idx
    entries[idx].heap_pos = pos


cdef void heap_sift_up(Heap* h, Entry* entries, int32_t pos) noexcept nogil:
    cdef int32_t idx = h.items[pos]
    cdef double key = entries[idx].expires
    cdef int32_t parent
    while pos > 0:
        parent = (pos - 1) >> 1
        if entries[h.items[parent]].expires <= key:
            break
        heap_place(h, entries, pos, h.items[parent])
        pos = parent
    heap_place(h, entries, pos, idx)


cdef void heap_sift_down(Heap* h, Entry* entries, int32_t pos) noexcept nogil:
    cdef int32_t idx = h.items[pos]
    cdef double key = entries[idx].expires
    cdef int32_t child
    cdef int32_t n = h.length
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and entries[h.items[child + 1]].expires < entries[h.items[child]].expires:
            child += 1
        if entries[h.items[child]].expires >= key:
            break
        heap_place(h, entries, pos, h.items[child])
        pos = child
    heap_place(h, entries, pos, idx)


cdef inline void heap_push(Heap* h, Entry* entries, int32_t idx) noexcept nogil:
    """Add `idx` (room was reserved with heap_reserve)."""
    h.items[h.length] = idx
    entries[idx].heap_pos = h.length
    h.length += 1
    heap_sift_up(h, entries, h.length - 1)


cdef inline void heap_remove(Heap* h, Entry* entries, int32_t idx) noexcept nogil:
    cdef int32_t pos = entries[idx].heap_pos
    cdef int32_t last
    h.length -= 1
    entries[idx].heap_pos = -1
    if pos == h.length:
        return
    last = h.items[h.length]
    heap_place(h, entries, pos, last)
    heap_sift_down(h, entries, pos)
    heap_sift_up(h, entries, entries[last].heap_pos)


cdef inline void heap_update(Heap* h, Entry* entries, int32_t idx) noexcept nogil:
    """Restore order after entries[idx].expires changed."""
    heap_sift_down(h, entries, entries[idx].heap_pos)
    heap_sift_up(h, entries, entries[idx].heap_pos)

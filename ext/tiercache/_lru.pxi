# The recency list: doubly linked through Entry.prev/next by index. Head = most recently used.

cdef inline void lru_link_front(Lru* l, Entry* entries, int32_t idx) noexcept nogil:
    cdef Entry* e = &entries[idx]
    e.prev = -1
    e.next = l.head
    if l.head >= 0:
        entries[l.head].prev = idx
    else:
        l.tail = idx
    l.head = idx


cdef inline void lru_unlink(Lru* l, Entry* entries, int32_t idx) noexcept nogil:
    cdef Entry* e = &entries[idx]
    if e.prev >= 0:
        entries[e.prev].next = e.next
    else:
        l.head = e.next
    if e.next >= 0:
        entries[e.next].prev = e.prev
    else:
        l.tail = e.prev


cdef inline void lru_touch(Lru* l, Entry* entries, int32_t idx) noexcept nogil:
    """Mark `idx` most recently used."""
    if l.head != idx:
        lru_unlink(l, entries, idx)
        lru_link_front(l, entries, idx)

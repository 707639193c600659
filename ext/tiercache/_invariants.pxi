# HashCache's internal invariants, checked by the tests after every step (included by _core_c.pyx).


cdef int check_invariants(HashCache self) except -1:
    """Raise AssertionError unless every internal invariant holds (tests call this after each step)."""
    cdef int32_t idx, prev = -1, n = 0, live = 0, ttl_count = 0, pos
    cdef int64_t total = 0, seg_count, seg_bytes
    cdef size_t i, home
    cdef Entry* e
    cdef Lru* lists[3]
    cdef uint32_t segs[3]
    cdef int nlists = 3 if self.policy_id else 1, li
    lists[0], lists[1], lists[2] = &self.lru, &self.probation, &self.protected
    segs[0], segs[1], segs[2] = SEG_WINDOW, SEG_PROBATION, SEG_PROTECTED
    for li in range(nlists):
        prev = -1
        seg_count = seg_bytes = 0
        idx = lists[li].head
        while idx >= 0:
            e = &self.entries[idx]
            assert e.key != NULL, f"free record {idx} on a recency list"
            assert e.prev == prev, f"entry {idx}: prev {e.prev} != {prev}"
            assert (e.tag & ENTRY_SEGMENT) == segs[li], f"entry {idx} on list {li} says segment {e.tag & ENTRY_SEGMENT}"
            total += e.size
            seg_bytes += e.size
            seg_count += 1
            n += 1
            assert n <= self.count, "recency lists longer than count (cycle?)"
            prev = idx
            idx = e.next
        assert prev == lists[li].tail, f"list {li}: tail {lists[li].tail} != last {prev}"
        if self.policy_id and li == 0:
            assert (seg_count, seg_bytes) == (self.win_count, self.win_bytes), "window totals drifted"
        if self.policy_id and li == 2:
            assert (seg_count, seg_bytes) == (self.prot_count, self.prot_bytes), "protected totals drifted"
    assert n == self.count, f"list length {n} != count {self.count}"
    assert total == self.bytes, f"bytes {self.bytes} != sum of sizes {total}"
    for i in range(self.table.mask + 1):
        idx = self.table.slots[i]
        assert (idx < 0) == (self.table.ctrl[i] == CTRL_EMPTY), f"slot {i}'s control byte says otherwise"
        if idx < 0:
            continue
        live += 1
        e = &self.entries[idx]
        assert e.key != NULL, f"slot {i} points at free record {idx}"
        home = table_home(&self.table, e.tag)
        assert self.table.ctrl[i] == tag_ctrl(e.tag) | (CTRL_AWAY if home != i else 0), \
            f"slot {i}'s control byte is stale"
        while home != i:  # every slot from home to i must be occupied
            assert self.table.slots[home] >= 0, f"entry {idx} unreachable from its home slot"
            home = (home + 1) & self.table.mask
    assert live == self.count, f"table holds {live} entries, count is {self.count}"
    for idx in range(self.high_water):
        if self.entries[idx].key != NULL and self.entries[idx].heap_pos >= 0:
            ttl_count += 1
    assert ttl_count == self.heap.length, f"{ttl_count} entries with TTL, heap has {self.heap.length}"
    for pos in range(self.heap.length):
        idx = self.heap.items[pos]
        assert self.entries[idx].heap_pos == pos, f"heap position of {idx} is stale"
        if pos:
            assert self.entries[self.heap.items[(pos - 1) >> 1]].expires <= self.entries[idx].expires, \
                "heap order broken"
    if self.policy_id:
        for idx in range(self.high_water):
            e = &self.entries[idx]
            if e.key != NULL and not e.unsaved:
                assert sketch_holds(&self.sketch, e.tag & ~<uint32_t>TAG_LOW_BITS, e.freq), \
                    f"entry {idx}'s count {e.freq} is not in the sketch, and not marked unsaved"
    assert self.bytes <= self.max_bytes_, "max_bytes exceeded"
    assert self.max_entries_ < 0 or self.count <= self.max_entries_, "max_entries exceeded"
    return 0

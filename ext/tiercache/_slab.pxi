# The entry slab of a HashCache: reserving, inserting and removing entry records, the references parked
# until a call ends, and the garbage collector's view of the slab (included by _core_c.pyx).


cdef void slab_release_all(HashCache self) noexcept:
    """Empty the cache, releasing every reference (dealloc and tp_clear)."""
    cdef int32_t i
    cdef Entry* e
    for i in range(self.high_water):
        e = &self.entries[i]
        if e.key != NULL:
            slab_defer(self, e.key)
            slab_defer(self, e.value)
            e.key = NULL
            e.value = NULL
    self.high_water = 0
    self.free_head = -1
    self.count = 0
    self.bytes = 0
    self.lru.head = self.lru.tail = -1
    self.probation.head = self.probation.tail = -1
    self.protected.head = self.protected.tail = -1
    self.win_count = self.win_bytes = self.prot_count = self.prot_bytes = 0
    self.heap.length = 0
    if self.table.slots != NULL:
        table_empty(&self.table)
    self.version += 1
    slab_flush(self)  # destructors run only now, against an empty, consistent cache


cdef void slab_defer(HashCache self, PyObject* obj) noexcept:
    """Release `obj` at the end of the current call."""
    cdef Py_ssize_t capacity
    cdef PyObject** grown
    if Py_REFCNT(obj) > 1:
        Py_XDECREF(obj)  # not the last reference: dropping it cannot run any code
        return
    if self.n_pending == self.pending_capacity:
        capacity = self.pending_capacity * 2 if self.pending_capacity else 16
        grown = <PyObject**>PyMem_Realloc(self.pending, capacity * sizeof(PyObject*))
        if grown == NULL:
            Py_XDECREF(obj)  # out of memory: release now (the structure is consistent)
            return
        self.pending = grown
        self.pending_capacity = capacity
    self.pending[self.n_pending] = obj
    self.n_pending += 1


cdef void slab_flush(HashCache self) noexcept:
    # One at a time from the top: a destructor may re-enter and defer (and flush) more.
    cdef PyObject* obj
    while self.n_pending > 0:
        self.n_pending -= 1
        obj = self.pending[self.n_pending]
        Py_XDECREF(obj)
    if self.n_evicted:
        slab_notify(self)


cdef void slab_evict(HashCache self, Py_ssize_t idx, int cause) noexcept:
    """slab_remove, for `cause`: with on_evict set, the entry's key and value are kept for it until the
    call's end (no Python object is made here; out of memory, the callback misses this one)."""
    cdef Entry* e
    cdef Py_ssize_t capacity
    cdef Evicted* grown
    if self.on_evict is not None:
        if self.n_evicted == self.evicted_capacity:
            capacity = self.evicted_capacity * 2 if self.evicted_capacity else 16
            grown = <Evicted*>PyMem_Realloc(self.evicted, capacity * sizeof(Evicted))
            if grown != NULL:
                self.evicted = grown
                self.evicted_capacity = capacity
        if self.n_evicted < self.evicted_capacity:
            e = &self.entries[idx]
            Py_INCREF(<object>e.key)
            Py_INCREF(<object>e.value)
            self.evicted[self.n_evicted].key = e.key
            self.evicted[self.n_evicted].value = e.value
            self.evicted[self.n_evicted].cause = cause
            self.n_evicted += 1
    slab_remove(self, idx)


cdef void slab_notify(HashCache self) noexcept:
    """Call on_evict for each entry evicted, in order, once the structure is consistent. The callback may use
    the cache: what it evicts joins the queue, which the drain under way goes on to (no nesting). An
    exception from it, of any kind, is logged."""
    cdef Evicted rec
    if self.draining:
        return
    self.draining = True
    while self.evicted_head < self.n_evicted:
        rec = self.evicted[self.evicted_head]
        self.evicted_head += 1
        key = <object>rec.key
        value = <object>rec.value
        Py_DECREF(key)  # (the record's references; `key` and `value` hold their own)
        Py_DECREF(value)
        callback = self.on_evict
        if callback is not None:
            try:
                callback(key, value, _EVICT_CAUSES[rec.cause])
            except BaseException:
                _log_callback_error(key)
    self.evicted_head = self.n_evicted = 0
    self.draining = False


cdef void _log_callback_error(object key) noexcept:
    try:
        _log.exception("tiercache: on_evict failed for %r", key)
    except BaseException:  # (a failing handler, a recursion limit: the drain goes on)
        pass


cdef void slab_drop_evicted(HashCache self) noexcept:
    """Release the records on_evict has not had, without calling it (the cache is being destroyed)."""
    cdef Evicted rec
    while self.evicted_head < self.n_evicted:
        rec = self.evicted[self.evicted_head]
        self.evicted_head += 1
        slab_defer(self, rec.key)
        slab_defer(self, rec.value)
    self.evicted_head = self.n_evicted = 0


cdef int slab_reserve(HashCache self) except -1:
    """Room for one more entry in the slab, the table and the heap. Touches no live data."""
    cdef int32_t capacity
    cdef Entry* grown
    cdef size_t nslots = self.table.mask + 1
    if self.free_head < 0 and self.high_water == self.capacity:
        if self.capacity >= 0x40000000:
            raise MemoryError("tiercache: too many entries")
        capacity = self.capacity * 2
        grown = <Entry*>PyMem_Realloc(self.entries, <size_t>capacity * sizeof(Entry))
        if grown == NULL:
            raise MemoryError("tiercache: cannot grow the cache")
        self.entries = grown
        self.capacity = capacity
        self.version += 1
    if <size_t>(self.count + 1) * 2 > nslots:  # keep the load factor <= 1/2
        table_grow(&self.table, self.entries)
        self.version += 1
    heap_reserve(&self.heap)
    return 0


cdef int32_t slab_insert(HashCache self, object key, uint32_t tag, object value, int64_t size) except -1:
    """Add a new entry at the head of the list (room reserved, key known absent)."""
    cdef int32_t idx
    cdef Entry* e
    if self.free_head >= 0:
        idx = self.free_head
        self.free_head = self.entries[idx].next
    else:
        idx = self.high_water
        self.high_water += 1
    e = &self.entries[idx]
    Py_INCREF(key)
    Py_INCREF(value)
    e.key = <PyObject*>key
    e.value = <PyObject*>value
    e.tag = tag
    e.freq = 0
    e.unsaved = 0
    e.size = size
    e.heap_pos = -1
    table_put(&self.table, idx, tag)
    lru_link_front(&self.lru, self.entries, idx)  # (W-TinyLFU: into the window)
    if self.policy_id:
        self.win_count += 1
        self.win_bytes += size
    self.count += 1
    self.bytes += size
    self.version += 1
    return idx


cdef void slab_remove(HashCache self, Py_ssize_t idx) noexcept:
    """Unlink entry `idx` everywhere; its key and value are released at the end of the call."""
    cdef Entry* e = &self.entries[idx]
    cdef PyObject* key = e.key
    cdef PyObject* value = e.value
    table_remove(&self.table, self.entries, <int32_t>idx, e.tag)
    lru_unlink(wt_list(self, <int32_t>idx), self.entries, <int32_t>idx)
    if self.policy_id:
        wt_give_back(self, e)
        if (e.tag & ENTRY_SEGMENT) == SEG_WINDOW:
            self.win_count -= 1
            self.win_bytes -= e.size
        elif (e.tag & ENTRY_SEGMENT) == SEG_PROTECTED:
            self.prot_count -= 1
            self.prot_bytes -= e.size
    if e.heap_pos >= 0:
        heap_remove(&self.heap, self.entries, <int32_t>idx)
    self.bytes -= e.size
    self.count -= 1
    e.key = NULL
    e.value = NULL
    e.next = self.free_head
    self.free_head = <int32_t>idx
    self.version += 1
    slab_defer(self, key)
    slab_defer(self, value)


# The slab holds references Cython cannot see: teach the garbage collector about them, so a value that
# refers back to its cache is still collected.
cdef tc_type* _hashcache_type = <tc_type*><void*>HashCache
cdef tc_traverseproc _base_traverse = _hashcache_type.tp_traverse
cdef tc_inquiry _base_clear = _hashcache_type.tp_clear


cdef int _traverse(PyObject* o, tc_visitproc visit, void* arg) noexcept:
    cdef HashCache self = <HashCache>o
    cdef int32_t i
    cdef int r
    cdef Entry* e
    if _base_traverse != NULL:
        r = _base_traverse(o, visit, arg)
        if r:
            return r
    for i in range(self.high_water):
        e = &self.entries[i]
        if e.key != NULL:
            r = visit(e.key, arg)
            if r:
                return r
            r = visit(e.value, arg)
            if r:
                return r
    for i in range(<int32_t>self.evicted_head, <int32_t>self.n_evicted):
        r = visit(self.evicted[i].key, arg)
        if r:
            return r
        r = visit(self.evicted[i].value, arg)
        if r:
            return r
    return 0


cdef int _clear(PyObject* o) noexcept:
    cdef HashCache self = <HashCache>o
    slab_drop_evicted(self)
    slab_release_all(self)
    if _base_clear != NULL:
        return _base_clear(o)
    return 0


_hashcache_type.tp_traverse = <tc_traverseproc>_traverse
_hashcache_type.tp_clear = <tc_inquiry>_clear

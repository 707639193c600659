# cython: language_level=3, embedsignature=True, binding=False
"""Compiled HashCache: the L1 hot path of tiercache (twin of tiercache/_core_py.py).

    table.ctrl   [ E | c | E | c | c | E ... ]   a control byte per slot: E(mpty), or 6 tag bits + away
    table.slots  [ - | 7 | - | 2 | 5 | - ... ]   entry numbers (4 bytes), open addressing
                       |       |   |
    entries      [ ... {key value expires size prev next heap_pos tag} ... ]   one 48-byte record each
                  recency list threaded through prev/next (lru.head = most recent, lru.tail = next victim)
    heap.items   [ entry numbers ordered by expires ]  only entries that have a TTL

A hit hashes the key, probes the control bytes, reads a slot and its record only where the byte matches,
compares the record's tag, then the stored key pointer (then __eq__), checks the expiry only if the entry
has one, and relinks the record at the head of the list. A miss usually reads one control byte.

Re-entrancy. Python code can run inside a call: a key's __hash__ and __eq__, a user sizer or timer, and
the destructors of values leaving the cache. Hash, size and (in set) time are computed before the
structure is touched; a probe that called __eq__ or a timer restarts when `version` moved meanwhile;
references to entries that left are parked in `pending` and released at the very end of the call, when
the structure is consistent. So another thread, or the same one re-entering, always sees a whole cache.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_SetString
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject, Py_EQ
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF, Py_XINCREF
from libc.math cimport INFINITY, ceil, frexp
from libc.string cimport memcpy
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

from tiercache._wire cimport (
    WIRE_EXPIRY_HEADER_SIZE,
    WIRE_EXPIRY_TAG,
    WIRE_FORMAT_HEADER_SIZE,
    WIRE_KEY_MARK,
    WIRE_TAG_MSGPACK,
)

import sys

from tiercache import _cleanup
from tiercache.errors import SerializationError as _SerializationError
from tiercache._validate import BYTES_CEILING
from tiercache.wire import encode_key as _encode_key
from tiercache._validate import (
    check_policy,
    check_callable,
    check_default_ttl,
    check_interval,
    check_max_bytes,
    check_max_entries,
    check_size,
    check_ttl,
    too_heavy,
    unhashable,
)

cdef extern from "Python.h":
    # Declared here without Cython's exception propagation: the callers check and clean up first.
    Py_hash_t tc_object_hash "PyObject_Hash"(object o)
    int tc_rich_compare_bool "PyObject_RichCompareBool"(PyObject* a, PyObject* b, int op)
    int tc_compare_eq "PyObject_RichCompareBool"(PyObject* a, PyObject* b, int op) except -1
    PyObject** PySequence_Fast_ITEMS(object o)
    bint PyErr_Occurred()
    int PyErr_ExceptionMatches(object exc)
    void PyErr_Clear()
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    bint PyLong_CheckExact(object o)
    long long PyLong_AsLongLong(object o) except? -1
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    bint PyBytes_CheckExact(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bint PyBytes_Check(object o)
    enum: PY_SSIZE_T_MAX
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_Check(object o)
    bint PyUnicode_IS_ASCII(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL
    str PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ_CHAR(object o, Py_ssize_t index)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyByteArray_CheckExact(object o)
    Py_ssize_t PyByteArray_GET_SIZE(object o)
    Py_ssize_t Py_REFCNT(PyObject* o)
    void* Py_TYPE(PyObject* o)
    PyObject* PyDict_GetItem(object d, object key)
    ctypedef int (*tc_visitproc "visitproc")(PyObject*, void*)
    ctypedef int (*tc_traverseproc "traverseproc")(PyObject*, tc_visitproc, void*)
    ctypedef int (*tc_inquiry "inquiry")(PyObject*)
    ctypedef struct tc_type "PyTypeObject":
        tc_traverseproc tp_traverse
        tc_inquiry tp_clear

include "_table.pxi"
include "_lru.pxi"
include "_ttl.pxi"
include "_sketch.pxi"

__all__ = ["FrequencySketch", "HashCache", "MISSING", "NamespaceState", "ReadPath", "Ready", "SampleHistogram", "decode_l2", "default_sizer", "jittered", "resp_command"]

cdef object _MISSING = object()
cdef object _ABSENT = object()
cdef object _getsizeof = sys.getsizeof
cdef object _monotonic = __import__("time").monotonic  # read through the C clock, not a Python call
cdef int32_t _MIN_SLOTS = 8


cdef Py_hash_t _hash(object key) except? -1:
    """hash(key), with the unhashable TypeError the pure twin raises."""
    cdef Py_hash_t h = tc_object_hash(key)
    if h == -1 and PyErr_Occurred():
        if PyErr_ExceptionMatches(TypeError):
            PyErr_Clear()
            raise unhashable(key)
        return -1  # anything else a user __hash__ raised propagates
    return h


cdef inline double _ttl_seconds(object ttl) except? -1.0:
    """A validated ttl (not None) in seconds: exact floats and ints inline, the rest via check_ttl."""
    cdef double seconds
    if PyFloat_CheckExact(ttl):
        seconds = PyFloat_AS_DOUBLE(ttl)
        if seconds > 0.0 and seconds < INFINITY:
            return seconds
    elif PyLong_CheckExact(ttl) and ttl > 0 and ttl < 2 ** 53:
        return <double>PyLong_AsLongLong(ttl)
    return check_ttl(ttl)


cdef inline int64_t _size_value(object size, str what) except -1:
    if PyLong_CheckExact(size) and 0 <= size < 2 ** 62:
        return PyLong_AsLongLong(size)
    return check_size(size, what)


# sys.getsizeof of an exact int depends only on its count of digits; measured once here, so the hot path
# can weigh ints (the commonest small value) without a method call. Floats all weigh the same.
cdef int _DIGIT_BITS = sys.int_info.bits_per_digit
cdef Py_ssize_t _INT_SIZES[4]
for _d in range(4):
    _INT_SIZES[_d] = sys.getsizeof(0 if _d == 0 else 1 << (_DIGIT_BITS * (_d - 1)))
cdef Py_ssize_t _FLOAT_SIZE = sys.getsizeof(0.0)


cdef int64_t _default_size(object value) except -1:
    cdef Py_ssize_t digits
    if PyLong_CheckExact(value):
        digits = tc_int_ndigits(<PyObject*>value)
        if 0 <= digits <= 3:
            return _INT_SIZES[digits]
    elif PyFloat_CheckExact(value):
        return _FLOAT_SIZE
    if PyBytes_CheckExact(value):
        return PyBytes_GET_SIZE(value)
    if PyUnicode_CheckExact(value):
        return PyUnicode_GET_LENGTH(value)
    if PyByteArray_CheckExact(value):
        return PyByteArray_GET_SIZE(value)
    if type(value) is memoryview:
        return value.nbytes
    if TC_HAVE_GETSIZEOF:
        return tc_getsizeof(<PyObject*>value)
    return _getsizeof(value)


def default_sizer(value):
    """Weight of `value`: its length for str/bytes/bytearray, `nbytes` for memoryview, else sys.getsizeof."""
    return _default_size(value)


@cython.final
cdef class HashCache:
    """A bounded in-process LRU cache with per-entry TTLs and exact byte accounting (compiled).

    HashCache(max_bytes=10 MiB, max_entries=None, default_ttl=None, *, sizer=None, timer=None,
    cleanup_interval=None). Thread-safe: any number of threads may share one instance.
    """

    def __cinit__(self):
        self.entries = NULL
        self.table.slots = NULL
        self.heap.items = NULL
        self.pending = NULL
        self.lru.head = -1
        self.lru.tail = -1
        self.probation.head = self.probation.tail = -1
        self.protected.head = self.protected.tail = -1
        self.sketch.table = NULL
        self.free_head = -1

    def __init__(self, max_bytes=10 * 1024 * 1024, max_entries=None, default_ttl=None, *,
                 sizer=None, timer=None, cleanup_interval=None, policy="lru"):
        cdef int policy_code = check_policy(policy)
        max_bytes = check_max_bytes(max_bytes)
        max_entries = check_max_entries(max_entries)
        default_ttl = check_default_ttl(default_ttl)
        check_callable("sizer", sizer)
        check_callable("timer", timer)
        interval = check_interval(cleanup_interval)
        if self.entries != NULL:
            raise RuntimeError("HashCache.__init__ called twice")
        self.max_bytes_ = BYTES_CEILING if max_bytes is None else max_bytes
        self.bytes_unbounded = max_bytes is None
        self.max_entries_ = -1 if max_entries is None else max_entries
        self.has_default_ttl = default_ttl is not None
        self.default_ttl_ = default_ttl if default_ttl is not None else 0.0
        self.sizer = sizer
        self.timer = None if timer is _monotonic else timer
        self.policy_id = policy_code
        self._allocate()
        if self.policy_id:
            self._policy_reset()
        self.cleaner = _cleanup.start(self, interval) if interval is not None else None

    cdef int _allocate(self) except -1:
        # Small to start with; both the slab and the table double as needed.
        self.capacity = _MIN_SLOTS
        self.entries = <Entry*>PyMem_Malloc(self.capacity * sizeof(Entry))
        self.pending_capacity = 16
        self.pending = <PyObject**>PyMem_Malloc(self.pending_capacity * sizeof(PyObject*))
        if self.entries == NULL or self.pending == NULL:
            raise MemoryError("tiercache: cannot allocate the cache")
        table_alloc(&self.table, 2 * _MIN_SLOTS)  # 16 slots
        heap_reserve(&self.heap)
        return 0

    def __dealloc__(self):
        self._release_all()
        PyMem_Free(self.entries)
        tc_table_free(self.table.slots)
        PyMem_Free(self.heap.items)
        PyMem_Free(self.pending)
        sketch_free(&self.sketch)

    # ------------------------------------------------------------------ internals

    cdef void _release_all(self) noexcept:
        """Empty the cache, releasing every reference (dealloc and tp_clear)."""
        cdef int32_t i
        cdef Entry* e
        for i in range(self.high_water):
            e = &self.entries[i]
            if e.key != NULL:
                self._defer(e.key)
                self._defer(e.value)
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
        self._flush()  # destructors run only now, against an empty, consistent cache

    cdef double _now(self) except? -1.0:
        if self.timer is None:
            return tc_monotonic()
        return float(self.timer())

    cdef Py_ssize_t _lookup(self, object key, Py_hash_t h) except -2:
        """Index of the entry holding `key`, or -1. May run key.__eq__; restarts if the cache changed."""
        cdef PyObject* k = <PyObject*>key
        cdef PyObject* stored
        cdef uint32_t tag = hash_tag(h)
        cdef uint8_t fp = tag_ctrl(tag)
        cdef uint8_t c
        cdef size_t i
        cdef int32_t idx
        cdef Entry* e
        cdef uint64_t version
        cdef int same
        while True:
            i = table_home(&self.table, tag)
            tc_prefetch_read(&self.table.slots[i])  # a hit reads it next: load it with the control byte
            while True:
                c = self.table.ctrl[i]
                if c == CTRL_EMPTY:
                    return -1
                if (c & CTRL_PRINT) == fp:
                    idx = self.table.slots[i]
                    e = &self.entries[idx]
                    if (e.tag & ~<uint32_t>TAG_LOW_BITS) != tag:
                        i = (i + 1) & self.table.mask
                        continue
                    if e.key == k:
                        return idx
                    stored = e.key
                    if (Py_TYPE(stored) == Py_TYPE(k)
                            and (PyLong_CheckExact(key) or PyUnicode_CheckExact(key))):
                        # equal-typed ints and strs compare in C without running Python code
                        if tc_rich_compare_bool(stored, k, Py_EQ) == 1:
                            return idx
                        i = (i + 1) & self.table.mask
                        continue
                    version = self.version
                    Py_XINCREF(stored)  # __eq__ may drop the cache's own reference
                    same = tc_rich_compare_bool(stored, k, Py_EQ)
                    Py_XDECREF(stored)
                    if same < 0:
                        return -2
                    if version != self.version:
                        break  # the table changed under __eq__: probe again
                    if same:
                        return idx
                i = (i + 1) & self.table.mask

    cdef Py_ssize_t _find_live(self, object key, Py_hash_t h, double* now, bint* has_now) except -2:
        """Like _lookup, but an expired entry is dropped (and counted) and reported absent.

        Reads the timer only when the entry found has an expiry and `has_now` is false.
        """
        cdef Py_ssize_t idx
        cdef uint64_t version
        while True:
            idx = self._lookup(key, h)
            if idx < 0 or self.entries[idx].heap_pos < 0:
                return idx
            if not has_now[0]:
                version = self.version
                now[0] = self._now()
                has_now[0] = True
                if version != self.version:
                    continue  # a user timer ran code that changed the cache
                if self.entries[idx].heap_pos < 0:
                    return idx  # ... or gave this key a new value without a TTL
            if now[0] >= self.entries[idx].expires:
                self._remove(idx)
                self.expirations += 1
                return -1
            return idx

    cdef bint _ttl_or_default(self, object ttl, double* seconds) except -1:
        """Whether an expiry applies: `ttl` checked into `seconds`, or default_ttl when None."""
        if ttl is None:
            seconds[0] = self.default_ttl_
            return self.has_default_ttl
        seconds[0] = _ttl_seconds(ttl)
        return True

    cdef int64_t _weigh(self, object value, object size) except -1:
        if size is not None:
            return _size_value(size, "size")
        if self.sizer is None:
            return _default_size(value)
        return _size_value(self.sizer(value), "sizer result")

    cdef void _defer(self, PyObject* obj) noexcept:
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

    cdef void _flush(self) noexcept:
        # One at a time from the top: a destructor may re-enter and defer (and flush) more.
        cdef PyObject* obj
        while self.n_pending > 0:
            self.n_pending -= 1
            obj = self.pending[self.n_pending]
            Py_XDECREF(obj)

    cdef int _reserve(self) except -1:
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

    cdef int32_t _insert(self, object key, uint32_t tag, object value, int64_t size) except -1:
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

    cdef void _remove(self, Py_ssize_t idx) noexcept:
        """Unlink entry `idx` everywhere; its key and value are released at the end of the call."""
        cdef Entry* e = &self.entries[idx]
        cdef PyObject* key = e.key
        cdef PyObject* value = e.value
        table_remove(&self.table, self.entries, <int32_t>idx, e.tag)
        lru_unlink(self._list(<int32_t>idx), self.entries, <int32_t>idx)
        if self.policy_id:
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
        self._defer(key)
        self._defer(value)

    cdef void _set_expiry(self, Py_ssize_t idx, bint has_ttl, double expires) noexcept:
        """Give entry `idx` an expiry (heap room reserved) or none."""
        cdef Entry* e = &self.entries[idx]
        if has_ttl:
            e.expires = expires
            if e.heap_pos >= 0:
                heap_update(&self.heap, self.entries, <int32_t>idx)
            else:
                heap_push(&self.heap, self.entries, <int32_t>idx)
        elif e.heap_pos >= 0:
            heap_remove(&self.heap, self.entries, <int32_t>idx)

    cdef Py_ssize_t _drop_expired(self, double now) noexcept:
        cdef Py_ssize_t removed = 0
        cdef int32_t top
        while self.heap.length > 0:
            top = self.heap.items[0]
            if self.entries[top].expires > now:
                break
            self._remove(top)
            removed += 1
        self.expirations += removed
        return removed

    cdef bint _over(self) noexcept:
        return (self.bytes > self.max_bytes_
                or (self.max_entries_ >= 0 and self.count > self.max_entries_))

    cdef void _make_room(self, bint has_now, double now) noexcept:
        """Evict until both limits hold: expired entries first (when the time is known), then LRU."""
        if self.policy_id:
            self._maintain(has_now, now)
            return
        if not self._over():
            return
        if has_now and self.heap.length > 0:
            self._drop_expired(now)
        while self._over():
            if self.bytes > self.max_bytes_:
                self.evictions_by_size += 1
            self._remove(self.lru.tail)
            self.evictions += 1

    cdef bint _store(self, object key, Py_hash_t h, object value, bint has_ttl, double ttl,
                     int64_t size, bint promoted=False) except -1:
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx
        cdef Entry* e
        cdef PyObject* old
        cdef int32_t victim = self.lru.tail
        cdef Entry* v
        cdef size_t home
        # The new key's control byte: the probe below reads it first (and an insert writes it)
        tc_prefetch(&self.table.ctrl[table_home(&self.table, hash_tag(h))])
        if has_ttl or self.heap.length > 0:
            now = self._now()
            has_now = True
        if victim >= 0 and not self.policy_id and (self.count >= self.max_entries_ >= 0
                                                 or self.bytes + size > self.max_bytes_):
            # An eviction is likely: start loading all that removing the victim reads, at once — its slot
            # and control byte, its successor as tail, and its key and value objects (releasing them reads
            # their reference counts) — instead of one cache miss after another.
            v = &self.entries[victim]
            home = table_home(&self.table, v.tag)
            tc_prefetch(&self.table.slots[home])
            tc_prefetch(&self.table.ctrl[home])
            tc_prefetch(v.key)
            tc_prefetch(v.value)
            if v.prev >= 0:
                tc_prefetch(&self.entries[v.prev])
        idx = self._lookup(key, h)
        # From here to _flush() no Python code runs.
        if size > self.max_bytes_:
            if idx >= 0:
                self._remove(idx)
            self.rejections += 1
            self._flush()
            return False
        if not (<size_t>(self.count + 1) * 2 <= self.table.mask + 1  # else _reserve() grows something
                and (self.free_head >= 0 or self.high_water < self.capacity)
                and self.heap.length < self.heap.capacity):
            self._reserve()
        if idx >= 0:
            e = &self.entries[idx]
            old = e.value
            Py_INCREF(value)
            e.value = <PyObject*>value
            self.bytes += size - e.size
            if self.policy_id:
                if (e.tag & ENTRY_SEGMENT) == SEG_WINDOW:
                    self.win_bytes += size - e.size
                elif (e.tag & ENTRY_SEGMENT) == SEG_PROTECTED:
                    self.prot_bytes += size - e.size
            e.size = size
            e.tag &= ~<uint32_t>ENTRY_FLAGS  # a new value: its own history
            self._access(<int32_t>idx)
            self._defer(old)
        else:
            idx = self._insert(key, hash_tag(h), value, size)
            if self.policy_id:
                sketch_increment(&self.sketch, self.entries[idx].tag & ~<uint32_t>TAG_LOW_BITS)
                if self.max_entries_ < 0 and self.count > self.sketch.capacity:
                    self._grow_sketch()
        if promoted:
            self.entries[idx].tag |= ENTRY_PROMOTED
            self.promoted += 1
        if has_ttl or self.entries[idx].heap_pos >= 0:
            self._set_expiry(idx, has_ttl, now + ttl)
        self.sets += 1
        if self.policy_id:
            if self._over() or self._window_over():
                self._maintain(has_now, now)
        elif self._over():
            self._make_room(has_now, now)
        if TIERCACHE_DEBUG:
            self._check()
        if self.n_pending:
            self._flush()
        return True

    # ------------------------------------------------------------------ W-TinyLFU (policy="tinylfu")
    #
    #   new entry ──> window (LRU, ~1 % to start) ──overflow──> probation ──hit──> protected (80 % of main)
    #                                                  ^                               │ overflow, demoted
    #                                                  └───────────────────────────────┘ on the next write
    # When the cache is over its limits, the entry the window just pushed out (the candidate, at the head
    # of probation) meets the probation's LRU (the victim): the one the sketch says was used less often
    # goes. A hill climber moves the window size every 10 x capacity lookups in whichever direction last
    # raised the hit rate, so recency-heavy workloads get a large window (LRU-like) and frequency-heavy
    # ones a small one. tiercache._core_py does the same, step for step.

    cdef Lru* _list(self, int32_t idx) noexcept:
        cdef uint32_t seg = self.entries[idx].tag & ENTRY_SEGMENT
        if seg == SEG_WINDOW:
            return &self.lru
        if seg == SEG_PROBATION:
            return &self.probation
        return &self.protected

    cdef void _move(self, int32_t idx, Lru* dest, uint32_t seg) noexcept:
        """Move entry `idx` to the head of `dest` (list `seg`), keeping the per-list counts."""
        cdef Entry* e = &self.entries[idx]
        cdef uint32_t old = e.tag & ENTRY_SEGMENT
        lru_unlink(self._list(idx), self.entries, idx)
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

    cdef void _access(self, int32_t idx) noexcept:
        """A use of entry `idx` (a hit, an update, a touch)."""
        cdef uint32_t seg
        cdef int32_t t
        if not self.policy_id:
            lru_touch(&self.lru, self.entries, idx)
            return
        sketch_increment(&self.sketch, self.entries[idx].tag & ~<uint32_t>TAG_LOW_BITS)
        seg = self.entries[idx].tag & ENTRY_SEGMENT
        if seg == SEG_WINDOW:
            lru_touch(&self.lru, self.entries, idx)
        elif seg == SEG_PROTECTED:
            lru_touch(&self.protected, self.entries, idx)
        else:  # (protected may now be over its share: _maintain demotes on the next write, not here)
            self._move(idx, &self.protected, SEG_PROTECTED)

    cdef bint _window_over(self) noexcept:
        if self.max_entries_ >= 0 and self.win_count > self.wmax:
            return True
        return (not self.bytes_unbounded
                and self.win_bytes > <int64_t>((<double>self.max_bytes_) * self.wmax / self.cap_))

    cdef bint _protected_over(self) noexcept:
        if self.max_entries_ >= 0 and self.prot_count > <int64_t>((self.cap_ - self.wmax) * 0.8):
            return True
        return (not self.bytes_unbounded
                and self.prot_bytes > <int64_t>((<double>self.max_bytes_) * (self.cap_ - self.wmax) / self.cap_ * 0.8))

    cdef void _evict(self, int32_t idx) noexcept:
        if self.bytes > self.max_bytes_:
            self.evictions_by_size += 1
        self._remove(idx)
        self.evictions += 1

    cdef void _maintain(self, bint has_now, double now) noexcept:
        """Window overflow into probation, then evict until both limits hold (expired entries first)."""
        cdef int64_t candidates = 0
        cdef int32_t victim, candidate
        if has_now and self.heap.length > 0 and self._over():
            self._drop_expired(now)
        while self._protected_over() and self.protected.tail >= 0:
            self._move(self.protected.tail, &self.probation, SEG_PROBATION)
        while self._window_over() and self.lru.tail >= 0:
            self._move(self.lru.tail, &self.probation, SEG_PROBATION)
            candidates += 1
        while self._over():
            if self.probation.tail < 0:
                if self.protected.tail >= 0:
                    self._move(self.protected.tail, &self.probation, SEG_PROBATION)
                else:
                    self._evict(self.lru.tail)
                continue
            victim = self.probation.tail
            candidate = self.probation.head
            if candidates == 0 or victim == candidate:
                self._evict(victim)
                continue
            if (sketch_frequency(&self.sketch, self.entries[candidate].tag & ~<uint32_t>TAG_LOW_BITS)
                    > sketch_frequency(&self.sketch, self.entries[victim].tag & ~<uint32_t>TAG_LOW_BITS)):
                self._evict(victim)
            else:
                self._evict(candidate)
                candidates -= 1

    cdef void _climb(self, bint hit) noexcept:
        cdef double rate
        cdef int64_t amount
        self.sample_reqs += 1
        self.sample_hits += hit
        if self.sample_reqs < 10 * self.cap_:
            return
        rate = (<double>self.sample_hits) / self.sample_reqs
        if rate < self.prev_rate:
            self.climb_step = -self.climb_step
        self.prev_rate = rate
        amount = <int64_t>self.climb_step
        self.wmax += amount
        if self.wmax < 0:
            self.wmax = 0
        if self.wmax > self.cap_ - 1:
            self.wmax = self.cap_ - 1
        self.climb_step *= 0.98
        if -1.0 < self.climb_step < 1.0:
            self.climb_step = 1.0 if self.climb_step > 0 else -1.0
        self.sample_hits = self.sample_reqs = 0

    cdef int _policy_reset(self) except -1:
        """Size the sketch and the window for the current limits; restart the climber."""
        cdef int64_t cap = self.max_entries_ if self.max_entries_ >= 0 else 64
        if cap < 1:
            cap = 1
        sketch_free(&self.sketch)
        sketch_init(&self.sketch, cap)
        self.cap_ = cap
        self.wmax = <int64_t>(cap * 0.01 + 0.5)
        if self.wmax < 1:
            self.wmax = 1
        self.climb_step = -<double>(max(1, <int64_t>(cap * 0.0625)))
        self.prev_rate = 0.0
        self.sample_hits = self.sample_reqs = 0
        return 0

    cdef int _grow_sketch(self) except -1:
        """A cache bounded by bytes only outgrew its sketch: double it (counts restart), scale the window."""
        cdef int64_t old = self.cap_
        cdef int64_t cap = self.sketch.capacity * 2
        sketch_free(&self.sketch)
        sketch_init(&self.sketch, cap)
        self.cap_ = cap
        self.wmax = self.wmax * cap // old
        return 0

    def admits(self, key, size):
        """Whether storing `key` (weighing `size`) now would displace nothing, or the sketch (policy
        "tinylfu") rates `key` above the entry that would go first; always True under "lru", which has no
        sketch. The promotion gate (tiercache.promotion)."""
        cdef int64_t weight = _size_value(size, "size")
        cdef uint64_t tag = hash_tag(_hash(key))
        cdef int32_t victim
        if ((self.max_entries_ < 0 or self.count < self.max_entries_)
                and self.bytes + weight <= self.max_bytes_):
            return True
        if not self.policy_id:
            return True  # no frequency sketch under "lru": nothing to judge by, so no veto
        victim = self.probation.tail if self.probation.tail >= 0 else (
            self.protected.tail if self.protected.tail >= 0 else self.lru.tail)
        if victim < 0:
            return True
        return (sketch_frequency(&self.sketch, tag)
                > sketch_frequency(&self.sketch, self.entries[victim].tag & ~<uint32_t>TAG_LOW_BITS))

    def has_room(self, size):
        """Whether an entry weighing `size` fits now without displacing another."""
        cdef int64_t weight = _size_value(size, "size")
        return ((self.max_entries_ < 0 or self.count < self.max_entries_)
                and self.bytes + weight <= self.max_bytes_)

    def was_hit(self, key):
        """For a promoted entry: whether it has been hit since (None when `key` is not held)."""
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, _hash(key), &now, &has_now)
        self._flush()
        if idx < 0:
            return None
        return bool(self.entries[idx].tag & ENTRY_HIT)

    def held_bytes(self):
        """Bytes held now (expired entries not yet dropped included): cheap, for the manager's global cap."""
        return self.bytes

    def evict_one(self):
        """Evict the entry this policy would evict next; returns its weight, or None when empty. Counted as
        an eviction for size (the manager's global L1 cap)."""
        cdef int32_t victim
        cdef int64_t size
        if self.count == 0:
            return None
        if self.policy_id:
            victim = self.probation.tail if self.probation.tail >= 0 else (
                self.protected.tail if self.protected.tail >= 0 else self.lru.tail)
        else:
            victim = self.lru.tail
        size = self.entries[victim].size
        self._remove(victim)
        self.evictions += 1
        self.evictions_by_size += 1
        self._flush()
        return size

    def record_use(self, key):
        """Count a use of `key` that did not reach this cache (an L1 miss served by L2), so the sketch
        judges a candidate by all its uses (policy "tinylfu"; nothing under "lru")."""
        if self.policy_id:
            sketch_increment(&self.sketch, hash_tag(_hash(key)))

    def frequency(self, key):
        """The sketch's estimate of `key`'s recent uses (policy "tinylfu"; 0 under "lru")."""
        if not self.policy_id:
            return 0
        return sketch_frequency(&self.sketch, hash_tag(_hash(key)))

    @property
    def policy(self):
        """The eviction policy: "lru" or "tinylfu"."""
        return "tinylfu" if self.policy_id else "lru"

    # ------------------------------------------------------------------ public API

    def get(self, key, default=None):
        """The value for `key`, or `default` when absent or expired; counts a hit or a miss."""
        return self._get(key, default)

    cdef object _get(self, object key, object default):
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        if self.policy_id:  # a hit counts the key in the sketch: start loading its lines during the probe
            sketch_prefetch(&self.sketch, hash_tag(h))
        cdef Py_ssize_t idx = self._lookup(key, h)
        if idx >= 0 and self.entries[idx].heap_pos >= 0:  # an expiry to check: the slow path
            idx = self._find_live(key, h, &now, &has_now)
        if idx < 0:
            self.misses += 1
            if self.policy_id:
                self._climb(False)
            if self.n_pending:
                self._flush()
            return default
        if self.policy_id:
            self._access(<int32_t>idx)
            self._climb(True)
        else:
            lru_touch(&self.lru, self.entries, <int32_t>idx)
        self.hits += 1
        if (self.entries[idx].tag & ENTRY_FLAGS) == ENTRY_PROMOTED:  # a promotion's first hit
            self.entries[idx].tag |= ENTRY_HIT
            self.promoted_hits += 1
        return <object>self.entries[idx].value

    def peek(self, key, default=None):
        """The value for `key` without marking it used or counting a hit/miss."""
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        if idx < 0:
            self._flush()
            return default
        return <object>self.entries[idx].value

    def __contains__(self, key):
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        self._flush()
        return idx >= 0

    def set(self, key, value, ttl=None, size=None):
        """Store `value`; False (and a rejection) when it alone outweighs max_bytes, which also drops `key`.

        `ttl` defaults to the cache's `default_ttl`; `size` defaults to `sizer(value)`. Least recently used
        entries (expired ones first) are evicted until max_bytes and max_entries hold.
        """
        return self._set(key, value, ttl, size)

    def __setitem__(self, key, value):
        """`cache[key] = value`: set() with the default ttl; ValueError where set() would return False."""
        if not self._set(key, value, None, None):
            raise too_heavy(self.max_bytes)

    def __getitem__(self, key):
        """`cache[key]`: get() (a hit or a miss is counted), but KeyError when absent or expired."""
        value = self._get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key):
        """`del cache[key]`: delete(), but KeyError when absent or expired."""
        self.pop(key)

    cdef bint _set(self, object key, object value, object ttl, object size) except -1:
        cdef bint has_ttl
        cdef double seconds
        if self.count >= self.max_entries_ >= 0 and self.lru.tail >= 0:
            tc_prefetch(&self.entries[self.lru.tail])  # the likely victim: load it while we hash
        has_ttl = self._ttl_or_default(ttl, &seconds)
        cdef Py_hash_t h = _hash(key)
        cdef int64_t weight = self._weigh(value, size)
        return self._store(key, h, value, has_ttl, seconds, weight)

    def promote(self, key, value, ttl=None, size=None):
        """`set`, marking the entry as promoted from L2: stats() counts it in `promoted`, and its first hit
        in `promoted_hits` (the promotion's precision). For CacheManager."""
        cdef bint has_ttl
        cdef double seconds
        has_ttl = self._ttl_or_default(ttl, &seconds)
        cdef Py_hash_t h = _hash(key)
        cdef int64_t weight = self._weigh(value, size)
        return self._store(key, h, value, has_ttl, seconds, weight, True)

    def set_many(self, mapping, ttl=None):
        """`set` each item with the same ttl; returns how many were stored. Checks every item first."""
        cdef bint has_ttl
        cdef double seconds
        cdef Py_ssize_t stored = 0
        has_ttl = self._ttl_or_default(ttl, &seconds)
        items = list(mapping.items() if isinstance(mapping, _Mapping) else mapping)
        weighed = []
        for key, value in items:
            weighed.append((key, _hash(key), value, self._weigh(value, None)))
        for key, h, value, weight in weighed:
            stored += self._store(key, h, value, has_ttl, seconds, weight)
        return stored

    def get_many(self, keys):
        """A dict of the present, unexpired keys among `keys`; counts a hit or miss for each."""
        keys = list(keys)
        for key in keys:
            _hash(key)
        found = {}
        for key in keys:
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                found[key] = value
        return found

    def delete(self, key):
        """Remove `key`; True when a live entry was removed."""
        return self.pop(key, _ABSENT) is not _ABSENT  # _MISSING would mean "raise"

    def pop(self, key, default=_MISSING):
        """Remove `key` and return its value; `default` (or KeyError) when absent or expired."""
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        if idx >= 0:
            value = <object>self.entries[idx].value
            self._remove(idx)
            self._flush()
            return value
        self._flush()
        if default is _MISSING:
            raise KeyError(key)
        return default

    def touch(self, key, ttl=None):
        """Mark `key` used and restart its expiry with `ttl` (or default_ttl; neither: expiry unchanged)."""
        cdef bint has_ttl
        cdef double seconds
        cdef double now = 0.0
        cdef bint has_now = False
        has_ttl = self._ttl_or_default(ttl, &seconds)
        cdef Py_hash_t h = _hash(key)
        if has_ttl:
            now = self._now()
            has_now = True
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        if idx < 0:
            self._flush()
            return False
        self._reserve()  # heap room for a first expiry
        self._access(<int32_t>idx)
        if has_ttl:
            self._set_expiry(idx, True, now + seconds)
        return True

    def ttl(self, key):
        """Seconds until `key` expires, None when it never does; KeyError when absent or expired."""
        cdef Py_hash_t h = _hash(key)
        cdef double now = 0.0
        cdef bint has_now = False
        cdef Py_ssize_t idx = self._find_live(key, h, &now, &has_now)
        self._flush()
        if idx < 0:
            raise KeyError(key)
        if self.entries[idx].heap_pos < 0:
            return None
        return self.entries[idx].expires - now

    def expire(self):
        """Drop every expired entry now; returns how many. Costs O(expired · log n)."""
        cdef Py_ssize_t removed
        if self.heap.length == 0:
            return 0
        removed = self._drop_expired(self._now())
        self._flush()
        return removed

    def clear(self):
        """Remove every entry (stats counters are kept)."""
        self._release_all()

    def __len__(self):
        self.expire()
        return self.count

    def __iter__(self):
        """Iterate over a snapshot of the live keys, least recently used first."""
        self.expire()
        keys = []
        cdef int32_t idx
        cdef Lru* lists[3]
        cdef int n = 1, i
        lists[0] = &self.lru
        if self.policy_id:  # eviction order, roughly: probation, protected, then the window
            lists[0] = &self.probation
            lists[1] = &self.protected
            lists[2] = &self.lru
            n = 3
        for i in range(n):
            idx = lists[i].tail
            while idx >= 0:
                keys.append(<object>self.entries[idx].key)
                idx = self.entries[idx].prev
        return iter(keys)

    def stats(self):
        """Counters and sizes; expired entries are dropped first so entries/bytes count live entries."""
        self.expire()
        cdef uint64_t lookups = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "evictions": self.evictions,
            "evictions_by_size": self.evictions_by_size,
            "evictions_by_count": self.evictions - self.evictions_by_size,
            "expirations": self.expirations,
            "rejections": self.rejections,
            "entries": self.count,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "max_entries": None if self.max_entries_ < 0 else self.max_entries_,
            "hit_rate": self.hits / <double>lookups if lookups else 0.0,
            "promoted": self.promoted,
            "promoted_hits": self.promoted_hits,
        }

    @property
    def max_bytes(self):
        return None if self.bytes_unbounded else self.max_bytes_

    @property
    def max_entries(self):
        return None if self.max_entries_ < 0 else self.max_entries_

    @property
    def default_ttl(self):
        return self.default_ttl_ if self.has_default_ttl else None

    def set_limits(self, max_bytes=10 * 1024 * 1024, max_entries=None):
        """Change the limits (same rules as the constructor); a smaller budget evicts down to it at once
        (expired entries first, then least recently used). Returns how many entries were removed."""
        max_bytes = check_max_bytes(max_bytes)
        max_entries = check_max_entries(max_entries)
        cdef uint64_t before = self.evictions + self.expirations
        cdef double now = 0.0
        cdef bint has_now = False
        if self.heap.length > 0:
            now = self._now()
            has_now = True
        self.max_bytes_ = BYTES_CEILING if max_bytes is None else max_bytes
        self.bytes_unbounded = max_bytes is None
        self.max_entries_ = -1 if max_entries is None else max_entries
        if self.policy_id:
            self._policy_reset()  # the window and the sketch follow the new capacity
            self._maintain(has_now, now)
        elif self._over():
            self._make_room(has_now, now)
        self._flush()
        return self.evictions + self.expirations - before

    def close(self):
        """Stop the cleanup thread, if any. The cache stays usable."""
        cleaner, self.cleaner = self.cleaner, None
        if cleaner is not None:
            cleaner.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<HashCache compiled entries={self.count} bytes={self.bytes} "
                f"max_bytes={self.max_bytes} max_entries={self.max_entries}>")

    # ------------------------------------------------------------------ debugging

    def _check(self):
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
        assert self.bytes <= self.max_bytes_, "max_bytes exceeded"
        assert self.max_entries_ < 0 or self.count <= self.max_entries_, "max_entries exceeded"


from collections.abc import Mapping as _Mapping


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

    def reset(self):
        """Aging: halve every counter and clear the doorkeeper."""
        sketch_reset(&self.s)

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


# Latency histogram buckets, as tiercache.metrics.bucket_of: bucket 0 holds (0, 2**-24 s], then 4 linear
# sub-buckets per power of two for 32 powers, then overflow. The same float operations as the Python code,
# so both implementations put a value in the same bucket.
cdef enum:
    TC_SUB = 4
    TC_OCTAVES = 32
    TC_NBUCKETS = 1 + TC_OCTAVES * TC_SUB + 1

cdef double TC_MIN_SECONDS = 2.0 ** -24


cdef inline int _bucket_of(double seconds) noexcept:
    cdef double x = seconds / TC_MIN_SECONDS
    cdef int e, j, i
    cdef double m
    if not x > 1.0:
        return 0
    m = frexp(x, &e)
    j = <int>ceil((2.0 * m - 1.0) * TC_SUB) - 1
    if j < 0:
        e -= 1
        j = TC_SUB - 1
    i = 1 + (e - 1) * TC_SUB + j
    return i if i < TC_NBUCKETS - 1 else TC_NBUCKETS - 1


@cython.final
cdef class SampleHistogram:
    """Timed L1 lookups of one namespace, counted in C (see tiercache.metrics for the buckets)."""

    cdef:
        uint64_t counts[TC_NBUCKETS]
        uint64_t count
        double total
        double max_seen
        double window_max      # the largest since the last state(reset_window=True)

    def __cinit__(self):
        cdef int i
        for i in range(TC_NBUCKETS):
            self.counts[i] = 0
        self.count = 0
        self.total = 0.0
        self.max_seen = 0.0
        self.window_max = 0.0

    cdef inline void _add(self, double seconds) noexcept:
        self.counts[_bucket_of(seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max_seen:
            self.max_seen = seconds
        if seconds > self.window_max:
            self.window_max = seconds

    def record(self, double seconds):
        """Count one latency (seconds). Atomic under the GIL: no Python code runs inside."""
        self._add(seconds)

    def state(self, bint reset_window=False):
        """A copy: {counts, count, sum, max, window_max}; `reset_window` starts a new window's max."""
        out = {"counts": [self.counts[i] for i in range(TC_NBUCKETS)], "count": self.count,
               "sum": self.total, "max": self.max_seen, "window_max": self.window_max}
        if reset_window:
            self.window_max = 0.0
        return out


# An awaitable that already holds its result: what AsyncCacheManager.get returns on an L1 hit. `await`
# takes it through am_await/am_send (set below in C, CPython 3.10+) with no coroutine frame, no StopIteration
# and no reference count traffic on the value; older interpreters take __next__. The value is an owned
# reference kept as a raw pointer (NULL once awaited), so a Ready is not tracked by the garbage collector.
@cython.final
@cython.freelist(64)
cdef class Ready:
    cdef PyObject* value

    def __dealloc__(self):
        Py_XDECREF(self.value)
        self.value = NULL

    cdef inline void _hold(self, object value):
        """Make `value` the result (a reused Ready may still hold an unawaited one: released last)."""
        cdef PyObject* old = self.value
        Py_INCREF(value)
        self.value = <PyObject*>value
        Py_XDECREF(old)

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        cdef PyObject* v = self.value
        if v == NULL:
            raise RuntimeError("cannot reuse an already awaited tiercache result")
        self.value = NULL
        value = <object>v  # a new reference; the one the Ready owned is released just below
        Py_DECREF(value)
        raise StopIteration(value)

    def send(self, arg):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        if val is None:
            raise typ
        raise val

    def close(self):
        pass


cdef int _ready_send(Ready ready, PyObject* arg, PyObject** result) noexcept:
    # hands the Ready's own reference over (PYGEN_RETURN), so a reused Ready never keeps a value alive
    cdef PyObject* v = ready.value
    if v == NULL:
        PyErr_SetString(RuntimeError, "cannot reuse an already awaited tiercache result")
        result[0] = NULL
        return -1  # PYGEN_ERROR
    ready.value = NULL
    result[0] = v
    return 0  # PYGEN_RETURN


tc_set_await_self_send(Ready, <tc_sendfunc><void*>_ready_send)


include "_msgpack.pxi"
include "_resp.pxi"


cdef inline str _ascii_concat(str a, str b):
    """a + b for two ASCII strs: one allocation and two copies, without the general concatenation's checks."""
    cdef Py_ssize_t na = PyUnicode_GET_LENGTH(a), nb = PyUnicode_GET_LENGTH(b)
    cdef str out = PyUnicode_New(na + nb, 127)
    cdef char* data = <char*>PyUnicode_DATA(out)
    memcpy(data, PyUnicode_DATA(a), na)
    memcpy(data + na, PyUnicode_DATA(b), nb)
    return out


cdef int _distinct(object keys, Py_ssize_t n) except -1:
    """1 when the n keys of the list or tuple `keys` are distinct (as set() counts them), else 0: an
    open-addressing table of their hashes, compared by value only where two hashes meet."""
    cdef Py_ssize_t stack_slots[256]
    cdef Py_hash_t stack_hashes[256]
    cdef Py_ssize_t* slots = stack_slots
    cdef Py_hash_t* hashes = stack_hashes
    cdef Py_ssize_t cap = 16, i, j, mask
    cdef Py_hash_t h
    cdef PyObject** items = PySequence_Fast_ITEMS(keys)
    cdef int result = 1, same
    while cap < 2 * n:
        cap <<= 1
    if cap > 256:
        slots = <Py_ssize_t*>PyMem_Malloc(cap * sizeof(Py_ssize_t))
        hashes = <Py_hash_t*>PyMem_Malloc(cap * sizeof(Py_hash_t))
        if slots == NULL or hashes == NULL:
            PyMem_Free(slots)
            PyMem_Free(hashes)
            raise MemoryError()
    try:
        mask = cap - 1
        for i in range(cap):
            slots[i] = -1
        for i in range(n):
            h = _hash(<object>items[i])
            j = <Py_ssize_t>(<size_t>h & <size_t>mask)
            while slots[j] >= 0:
                if hashes[j] == h:
                    same = tc_compare_eq(items[slots[j]], items[i], Py_EQ)
                    if same:
                        result = 0
                        return result
                j = (j + 1) & mask
            slots[j] = i
            hashes[j] = h
        return result
    finally:
        if slots != stack_slots:
            PyMem_Free(slots)
            PyMem_Free(hashes)


include "_readpath.pxi"


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
    return 0


cdef int _clear(PyObject* o) noexcept:
    cdef HashCache self = <HashCache>o
    self._release_all()
    if _base_clear != NULL:
        return _base_clear(o)
    return 0


_hashcache_type.tp_traverse = <tc_traverseproc>_traverse
_hashcache_type.tp_clear = <tc_inquiry>_clear

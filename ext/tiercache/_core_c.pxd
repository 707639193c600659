# cython: language_level=3
# Layouts shared by the includes of _core_c.pyx.

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "_helpers.h":
    double tc_monotonic() nogil
    double tc_wallclock() nogil
    double tc_read_le_double(const char* p) nogil
    uint64_t tc_read_be_uint(const char* p, int width) nogil
    double tc_read_be_double(const char* p) nogil
    double tc_read_be_float(const char* p) nogil
    dict tc_dict_presized(Py_ssize_t n)
    object tc_intern(object s)
    object tc_intern_key(const char* p, Py_ssize_t n)
    void tc_key_table_reset()
    object tc_decode_str(const char* p, Py_ssize_t n)
    Py_ssize_t tc_getsizeof(PyObject* o) except -1
    Py_ssize_t tc_int_ndigits(PyObject* o)
    Py_ssize_t tc_list_allocated(PyObject* o)
    Py_ssize_t tc_dict_sizeof(PyObject* d)
    void tc_prefetch(const void* p) nogil
    void tc_prefetch_read(const void* p) nogil
    void* tc_table_alloc(size_t n) nogil
    void tc_table_free(void* p) nogil
    ctypedef int (*tc_sendfunc)(PyObject*, PyObject*, PyObject**) noexcept
    void tc_set_await_self_send(object type, tc_sendfunc f)
    int tc_popcount64(uint64_t x) nogil
    enum: TC_HAVE_GETSIZEOF
    enum: TIERCACHE_DEBUG


# One cache entry. Entries live in one slab (HashCache.entries) and refer to each other by int32 index,
# so a hit touches one 48-byte record; the table holds a 4-byte index and a control byte per slot. Defined
# in _helpers.h: `size` and `freq` are bit-fields of one word there (so no field's address is taken).
cdef extern from "_helpers.h":
    ctypedef struct Entry "tc_entry":
        PyObject* key          # NULL while the record is on the free list
        PyObject* value
        double expires         # timer reading at which the entry expires; meaningful when heap_pos >= 0
        int64_t size           # the weight counted in HashCache.bytes (57 signed bits: weights are < 2**56)
        int64_t freq           # W-TinyLFU: how often the entry was used lately, 0..16 (_wtinylfu.pxi)
        int64_t unsaved        # W-TinyLFU: nonzero when the sketch may hold less than freq (_wtinylfu.pxi)
        int32_t prev           # recency list: towards the most recently used end (-1 at the head)
        int32_t next           # towards the least recently used end (-1 at the tail); free-list link
        int32_t heap_pos       # position in the TTL heap, -1 when the entry never expires
        uint32_t tag           # hash tag (see _table.pxi): finds the entry's slot without hashing the key;
                               # its low bits (0 in a tag) hold the flags below and the W-TinyLFU list


# Entry.tag's flag bits.
cdef enum:
    ENTRY_PROMOTED = 1     # stored by HashCache._promote (an L2 hit copied into L1)
    ENTRY_HIT = 2          # a promoted entry that has been hit since
    ENTRY_FLAGS = 3
    ENTRY_SEGMENT = 12     # W-TinyLFU: which list holds the entry
    SEG_WINDOW = 0
    SEG_PROBATION = 4
    SEG_PROTECTED = 8
    TAG_LOW_BITS = 15      # the low bits of a tag, always 0 in the table


cdef struct Table:
    # Open addressing with linear probing (_table.pxi): an entry index per slot, and a control byte per
    # slot in an array of its own, probed first.
    int32_t* slots         # entry index, -1 when the slot is empty
    uint8_t* ctrl          # 0x80 when the slot is empty, else 6 bits of the entry's hash tag and 0x40
                           # when the entry is not in its home slot
    size_t mask            # slot count - 1 (a power of two)
    int shift              # 32 - log2(slot count): the home slot is the tag's top bits


cdef struct Lru:
    # Doubly linked recency list threaded through Entry.prev/next.
    int32_t head           # most recently used, -1 when empty
    int32_t tail           # least recently used: the next to evict


cdef struct Sketch:
    # The TinyLFU frequency sketch (_sketch.pxi).
    uint64_t* table        # blocks of 8 words: 7 of 16 4-bit counters, 1 of doorkeeper bits
    uint64_t words         # a power of two, >= 8
    uint64_t block_mask    # words / 8 - 1
    int64_t capacity       # the entry count it is sized for
    int64_t sample         # additions between agings (10 x capacity, or x the entries held: sketch_age_for)
    int64_t size           # additions since the last aging
    uint64_t draws         # the admission duel's random draws so far (sketch_admits)
    uint64_t agings


cdef struct Mini:
    # One miniature copy of a W-TinyLFU cache (_minisim.pxi): keys are tags only (Entry.key stays NULL).
    Entry* entries         # cap + 1 records; the free ones chained through Entry.next
    int32_t free_head
    Table table
    Lru window, probation, protected
    int64_t cap
    int64_t count, win_count, prot_count
    int64_t wmax, pmax     # its window's and protected's shares of cap, fixed
    bint hit               # whether the last lookup hit
    int64_t wins, losses   # lookups it hit and the copy in use missed, and the other way round (decaying)
    int64_t fresh          # misses still to take since it started again from another copy, before it duels


cdef struct MiniSim:
    # The copies that choose a W-TinyLFU cache's window (_minisim.pxi).
    Mini* copies           # MINI_COPIES of them; NULL when the cache is too small to simulate
    int64_t cap            # entries per copy
    int64_t period         # sampled lookups between decisions
    int64_t seen           # sampled lookups since the last one
    int choice             # index in _MINI_PERCENTS of the window in use
    int64_t warmup         # sampled lookups while the size copies fill
    bint warm              # whether they count (the copy in use full, or enough lookups: _minisim.pxi)
    int64_t sampled        # sampled lookups counted since (by the size copies)
    int64_t size_hits[3]   # of them, hits at half, one and twice the size (the window in use)


cdef struct Evicted:
    # An entry evicted during a call, held for HashCache.on_evict until the call's end.
    PyObject* key
    PyObject* value
    int cause              # EVICTED_SIZE, EVICTED_COUNT, EVICTED_EXPIRED


cdef enum:
    EVICTED_SIZE = 0       # indexes into _EVICT_CAUSES
    EVICTED_COUNT = 1
    EVICTED_EXPIRED = 2


cdef struct Heap:
    # Binary min-heap of entry indices keyed by Entry.expires, each entry knowing its position, so an
    # expiry can be removed or changed in O(log n) and expire() pops only what is due.
    int32_t* items
    int32_t length
    int32_t capacity


@cython.final
cdef class HashCache:
    cdef:
        # -- storage
        Entry* entries         # slab of records, `capacity` long; [0, high_water) have been used
        int32_t capacity
        int32_t high_water
        int32_t free_head      # free records chained through Entry.next
        int32_t count          # live entries (in table and list)
        Table table
        Lru lru
        Heap heap
        # -- limits and accounting
        int64_t max_bytes_     # 2**62 when unbounded (bytes_unbounded): the total always fits an int64
        bint bytes_unbounded
        int64_t max_entries_   # -1: no entry limit
        int64_t bytes
        bint has_default_ttl
        double default_ttl_
        object sizer           # None: the built-in default sizer
        object timer           # None: the C monotonic clock (also for time.monotonic itself)
        # -- re-entrancy: bumped by every insert, removal and resize; a lookup that ran Python code
        #    (__eq__, a user timer) restarts when it changed meanwhile
        uint64_t version
        # -- references released at the end of a call, once the structure is consistent
        PyObject** pending
        Py_ssize_t n_pending
        Py_ssize_t pending_capacity
        # -- entries evicted during a call, given to on_evict (None: nothing recorded) at its end
        object on_evict
        Evicted* evicted
        Py_ssize_t n_evicted, evicted_head, evicted_capacity
        bint draining          # a slab_notify is under way (a nested one leaves the queue to it)
        # -- policy: 0 = LRU (one list, `lru`); 1 = W-TinyLFU: `lru` is the admission window, then the
        #    main region's probation and protected lists (the entry's list is in Entry.tag's bits 2-3)
        int policy_id
        Lru probation
        Lru protected
        int64_t win_count, win_bytes, prot_count, prot_bytes
        Sketch sketch
        int64_t cap_           # the capacity (entries) the window and the simulations refer to
        int64_t wmax           # window budget, entries of cap_
        MiniSim minisim        # chooses wmax
        int64_t plan_entries   # the entries minisim's copies stand for
        uint32_t sample_mask   # a lookup whose tag AND this is 0 goes to minisim
        uint64_t agings_seen
        # -- stats
        uint64_t hits, misses, sets, evictions, expirations, rejections
        uint64_t evictions_by_size   # of `evictions`: those made for max_bytes (the rest for max_entries)
        uint64_t promoted, promoted_hits  # entries stored by _promote(); those of them hit at least once
        # -- background expiry
        object cleaner
        object __weakref__

    cdef int _allocate(self) except -1
    cdef bint _over(self) noexcept
    cdef object _get(self, object key, object default)
    cdef object _get_wt(self, object key, Py_hash_t h, object default)
    cdef object _missed(self, object default)
    cdef object _hit(self, Py_ssize_t idx)
    cdef bint _set(self, object key, object value, object ttl, object size) except -1
    cdef Py_ssize_t _lookup(self, object key, Py_hash_t h) except -2
    cdef Py_ssize_t _find_live(self, object key, Py_hash_t h, double* now, bint* has_now) except -2
    cdef double _now(self) except? -1.0
    cdef bint _ttl_or_default(self, object ttl, double* seconds) except -1
    cdef int64_t _weigh(self, object value, object size) except -1
    cdef void _set_expiry(self, Py_ssize_t idx, bint has_ttl, double expires) noexcept
    cdef bint _store(self, object key, Py_hash_t h, object value, bint has_ttl, double ttl,
                     int64_t size, bint promoted=*) except -1
    cdef Py_ssize_t _drop_expired(self, double now) noexcept
    cdef void _make_room(self, bint has_now, double now) noexcept
    cdef void _evict(self, int32_t idx) noexcept
    # (the entry slab and the W-TinyLFU policy are module functions over a HashCache: _slab.pxi, _wtinylfu.pxi)


@cython.final
cdef class ReadCounts:
    # The read path's counters of one namespace, shared by the states that succeed one another (counted in C
    # by ReadPath.finish, so an L2 hit takes no lock).
    cdef public uint64_t l2_hits, l2_misses, promotions, promotions_skipped_stale, promotions_declined
    cdef public uint64_t promoted      # L2 hits copied into L1 without a decision (immediate namespaces)


@cython.final
cdef class NamespaceState:
    # One namespace for the read path (tiercache/manager/_readpath_py.py documents the fields).
    cdef public str name
    cdef public HashCache l1
    cdef public object cfg             # NamespaceConfig (immutable)
    cdef public object loads           # the namespace's Codec.read
    cdef public object codec           # the namespace's Codec (None where only loads is needed)
    cdef public bint plain             # no grace period: L1 holds the values themselves
    cdef public bint immediate         # every L2 hit is promoted (no decision)
    cdef public bint persist           # the namespace writes to and reads from L2
    cdef public uint64_t version       # bumped by every write and invalidation
    cdef public ReadCounts counts      # the namespace's read path counters (shared with the state replaced)
    cdef public str l2_base            # the L2 key prefix of the namespace


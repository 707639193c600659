# Miniature simulations that choose W-TinyLFU's window size (included by _core_c.pyx; twin of
# tiercache/l1/_minisim_py.py, which explains them). A copy is a W-TinyLFU over tags built from the cache's
# own parts: a slab of Entry records (key NULL, tag with the list in its low bits), a Table, three Lru lists.
# Nothing here allocates after minisim_init or runs Python code.

cdef enum:
    MINI_COPIES = 7        # len(_MINI_PERCENTS): the window copies
    MINI_ALL = 9           # and two of half and twice the size, with the window in use (size_curve)
    MINI_START = 1         # the window a cache starts with: _MINI_PERCENTS[1]
    MINI_SAMPLE_BIT = 10   # the sampled bits of a tag start here (above the table's control bits)
    MINI_MIN_SHIFT = 4     # at most one lookup in 16 is simulated
    MINI_MAX_SHIFT = 11    # (bits 10-20: below the home bits of copies up to 1,023 entries)
    MINI_TARGET = 256      # entries per copy, when the cache is large enough
    MINI_MIN_ENTRIES = 16  # smaller copies would decide on noise
    MINI_WARM = 4          # the size copies count after MINI_WARM x copy size sampled lookups, once the
    MINI_WARM_MAX = 16     # copy in use is full, or after MINI_WARM_MAX x (sampled keys never filling it)
    MINI_Z2 = 4            # a copy must beat the one in use by 2 standard errors: McNemar's test,
                           # (wins - losses)**2 > MINI_Z2 * (wins + losses)
    MINI_NEVER = 0xFFFFFFF0  # the sampling mask of a cache too small to simulate (only tag 0 passes)

cdef int[7] _MINI_PERCENTS = [0, 1, 5, 20, 50, 80, 100]  # the copies' windows, % of their capacity


cdef inline int64_t window_share(int64_t cap, int percent) noexcept nogil:
    """`percent` % of `cap` entries, rounded, and at least one entry for a window that is not 0 %."""
    cdef int64_t share = (cap * percent + 50) // 100
    return share if percent == 0 or share >= 1 else 1


cdef void minisim_free(MiniSim* m) noexcept:
    cdef int i
    if m.copies == NULL:
        return
    for i in range(MINI_ALL):
        PyMem_Free(m.copies[i].entries)
        tc_table_free(m.copies[i].table.slots)
    PyMem_Free(m.copies)
    m.copies = NULL


cdef int minisim_init(MiniSim* m, int64_t cap, uint32_t* mask, int choice, bint carry) noexcept:
    """Copies for a cache of `cap` entries, the window in use being `choice`: empty, or with `carry` filled
    from the copies they replace (minisim_carry); `mask` = the sampling mask (MINI_NEVER and no copies when
    the cache is too small, or when memory runs out: the simulations only tune the window, which then stays
    as it is). Returns -1 when memory ran out, else 0."""
    cdef MiniSim old = m[0]
    cdef int made
    m.copies = NULL
    made = minisim_make(m, cap, mask, choice)
    if carry and old.copies != NULL and m.copies != NULL:
        minisim_carry(m, &old, mask[0])
    minisim_free(&old)
    return made


cdef int minisim_make(MiniSim* m, int64_t cap, uint32_t* mask, int choice) noexcept:
    """minisim_init's empty copies (m has none)."""
    cdef int shift = MINI_MIN_SHIFT
    cdef int i
    cdef int64_t copy_cap, size
    cdef size_t nslots
    cdef Mini* c
    mask[0] = MINI_NEVER  # (until the copies are made: a failure below leaves the cache without them)
    m.choice = choice
    m.seen = 0
    m.sampled = 0
    m.size_hits[0] = m.size_hits[1] = m.size_hits[2] = 0
    while shift < MINI_MAX_SHIFT and (cap >> (shift + 1)) >= MINI_TARGET:
        shift += 1
    copy_cap = cap >> shift
    m.cap = copy_cap
    m.period = copy_cap if copy_cap > MINI_TARGET else MINI_TARGET
    m.warmup = 0
    m.warm = False
    if copy_cap < MINI_MIN_ENTRIES:
        return 0
    m.copies = <Mini*>PyMem_Malloc(MINI_ALL * sizeof(Mini))
    if m.copies == NULL:
        return -1
    memset(m.copies, 0, MINI_ALL * sizeof(Mini))
    for i in range(MINI_ALL):
        c = &m.copies[i]
        size = copy_cap if i < MINI_COPIES else (copy_cap // 2 if i == MINI_COPIES else copy_cap * 2)
        nslots = 16
        while <int64_t>nslots < 2 * (size + 1):
            nslots <<= 1
        c.entries = <Entry*>PyMem_Malloc((size + 1) * sizeof(Entry))
        c.table.slots = <int32_t*>tc_table_alloc(nslots * (sizeof(int32_t) + 1))
        if c.entries == NULL or c.table.slots == NULL:
            minisim_free(m)
            return -1
        table_place(&c.table, c.table.slots, nslots)
        c.cap = size
        mini_clear(c)
        mini_set_window(c, _MINI_PERCENTS[i] if i < MINI_COPIES else _MINI_PERCENTS[choice])
    mask[0] = ((<uint32_t>1 << shift) - 1) << MINI_SAMPLE_BIT
    return 0


cdef void minisim_carry(MiniSim* m, MiniSim* old, uint32_t mask) noexcept nogil:
    """The cache changed size: fill its new copies from `old`'s, each from the one in the same place (twin of
    MiniSim.carry, which explains it)."""
    cdef int i
    for i in range(MINI_ALL):
        mini_carry(&m.copies[i], &old.copies[i], mask)
    for i in range(MINI_COPIES):
        m.copies[i].wins = old.copies[i].wins
        m.copies[i].losses = old.copies[i].losses
        m.copies[i].fresh = old.copies[i].fresh
    m.warmup = old.warmup
    m.seen = old.seen


cdef void mini_clear(Mini* c) noexcept nogil:
    """Empty copy `c`'s records and lists (its table is emptied apart): every record free."""
    cdef int64_t j
    memset(c.entries, 0, (c.cap + 1) * sizeof(Entry))
    for j in range(c.cap + 1):
        c.entries[j].next = <int32_t>(j + 1) if j < c.cap else -1
    c.free_head = 0
    c.window.head = c.window.tail = -1
    c.probation.head = c.probation.tail = -1
    c.protected.head = c.protected.tail = -1
    c.count = c.win_count = c.prot_count = 0


cdef int64_t mini_carry_head(Mini* c, Mini* src, uint32_t mask) noexcept nogil:
    """Into empty copy `c`, the most recent of `src`'s protected, then of its window, tags that `mask` samples,
    up to their shares and c's capacity; returns how many the window took."""
    cdef int64_t room = c.cap
    c.prot_count = mini_carry_list(c, &c.protected, SEG_PROTECTED, src, &src.protected, mask,
                                   c.pmax if c.pmax < room else room)
    room -= c.prot_count
    c.win_count = mini_carry_list(c, &c.window, SEG_WINDOW, src, &src.window, mask,
                                  c.wmax if c.wmax < room else room)
    return c.win_count


cdef void mini_carry(Mini* c, Mini* src, uint32_t mask) noexcept nogil:
    """Fill empty copy `c` from `src`: its lists, protected first, take the most recent of their tags in
    `src` that `mask` samples, up to their shares and c's capacity."""
    mini_carry_head(c, src, mask)
    mini_carry_list(c, &c.probation, SEG_PROBATION, src, &src.probation, mask, c.cap - c.count)


cdef int64_t mini_carry_list(Mini* c, Lru* into, uint32_t seg, Mini* src, Lru* lru, uint32_t mask,
                             int64_t most, int64_t skip=0) noexcept nogil:
    """Link into list `into` (`seg`) of `c`, in their order, the `most` most recent tags of `src`'s `lru`
    that `mask` samples, after its `skip` most recent; returns how many."""
    cdef int32_t idx = lru.head
    cdef int32_t last = -1
    cdef int32_t slot
    cdef int64_t taken = 0
    cdef uint32_t tag
    while idx >= 0 and skip > 0:
        skip -= 1
        idx = src.entries[idx].next
    if idx < 0:
        return 0
    cdef int32_t first = idx
    while idx >= 0 and taken < most:
        if (src.entries[idx].tag & mask) == 0:
            taken += 1
            last = idx
        idx = src.entries[idx].next
    idx = last
    while idx >= 0:  # from the oldest taken to the most recent, each to the front
        tag = src.entries[idx].tag & ~<uint32_t>TAG_LOW_BITS
        if (tag & mask) == 0:
            slot = c.free_head
            c.free_head = c.entries[slot].next
            c.entries[slot].tag = tag | seg
            table_put(&c.table, slot, tag)
            lru_link_front(into, c.entries, slot)
            c.count += 1
        if idx == first:
            break
        idx = src.entries[idx].prev
    return taken


cdef void mini_reseed(Mini* c, Mini* src) noexcept nogil:
    """The window grew, or `c` lost to the copy in use significantly: copy `c` starts again from what `src`,
    the copy of the window now in use (of the same capacity), holds, in its own lists' shares (twin of
    _Copy.reseed, which explains it)."""
    cdef int64_t room, w, older
    table_empty(&c.table)
    mini_clear(c)
    w = mini_carry_head(c, src, 0)
    room = c.cap - c.count
    older = src.win_count - w  # the rest of src's window: probation's recent end, where overflow joins it
    if older > room:
        older = room
    mini_carry_list(c, &c.probation, SEG_PROBATION, src, &src.probation, 0, room - older)
    mini_carry_list(c, &c.probation, SEG_PROBATION, src, &src.window, 0, older, w)


cdef inline void mini_set_window(Mini* c, int percent) noexcept nogil:
    """Give the window `percent` % of the copy (the lists follow on the next lookups)."""
    c.wmax = window_share(c.cap, percent)
    c.pmax = <int64_t>((c.cap - c.wmax) * 0.8)


cdef inline Lru* mini_list(Mini* c, int32_t idx) noexcept nogil:
    cdef uint32_t seg = c.entries[idx].tag & ENTRY_SEGMENT
    if seg == SEG_WINDOW:
        return &c.window
    if seg == SEG_PROBATION:
        return &c.probation
    return &c.protected


cdef inline void mini_count(Mini* c, uint32_t seg, int64_t n) noexcept nogil:
    if seg == SEG_WINDOW:
        c.win_count += n
    elif seg == SEG_PROTECTED:
        c.prot_count += n


cdef void mini_move(Mini* c, int32_t idx, uint32_t seg) noexcept nogil:
    """Move record `idx` to the most recent end of list `seg`."""
    cdef Entry* e = &c.entries[idx]
    lru_unlink(mini_list(c, idx), c.entries, idx)
    mini_count(c, e.tag & ENTRY_SEGMENT, -1)
    mini_count(c, seg, 1)
    e.tag = (e.tag & ~<uint32_t>ENTRY_SEGMENT) | seg
    lru_link_front(mini_list(c, idx), c.entries, idx)


cdef void mini_drop(Mini* c, int32_t idx) noexcept nogil:
    cdef Entry* e = &c.entries[idx]
    table_remove(&c.table, c.entries, idx, e.tag & ~<uint32_t>TAG_LOW_BITS)
    lru_unlink(mini_list(c, idx), c.entries, idx)
    mini_count(c, e.tag & ENTRY_SEGMENT, -1)
    c.count -= 1
    e.next = c.free_head
    c.free_head = idx


cdef inline int32_t mini_find(Mini* c, uint32_t tag) noexcept nogil:
    cdef size_t i = table_home(&c.table, tag)
    cdef int32_t idx
    while c.table.ctrl[i] != CTRL_EMPTY:
        idx = c.table.slots[i]
        if (c.entries[idx].tag & ~<uint32_t>TAG_LOW_BITS) == tag:
            return idx
        i = (i + 1) & c.table.mask
    return -1


cdef void mini_lookup(Mini* c, Sketch* sketch, uint32_t tag) noexcept nogil:
    """A lookup of `tag` in copy `c`: a hit counts and moves it, a miss inserts it."""
    cdef int32_t idx = mini_find(c, tag)
    cdef int32_t victim, candidate
    cdef int64_t candidates = 0
    cdef uint32_t seg
    if idx >= 0:
        seg = c.entries[idx].tag & ENTRY_SEGMENT
        if seg == SEG_WINDOW:
            lru_touch(&c.window, c.entries, idx)
        elif seg == SEG_PROTECTED:
            lru_touch(&c.protected, c.entries, idx)
        else:
            mini_move(c, idx, SEG_PROTECTED)
            while c.prot_count > c.pmax:
                mini_move(c, c.protected.tail, SEG_PROBATION)
        c.hit = True
        return
    c.hit = False
    idx = c.free_head
    c.free_head = c.entries[idx].next
    c.entries[idx].tag = tag | SEG_WINDOW
    table_put(&c.table, idx, tag)
    lru_link_front(&c.window, c.entries, idx)
    c.win_count += 1
    c.count += 1
    while c.win_count > c.wmax:
        mini_move(c, c.window.tail, SEG_PROBATION)
        candidates += 1
    while c.count > c.cap:
        if c.probation.tail < 0:
            if c.protected.tail >= 0:
                mini_move(c, c.protected.tail, SEG_PROBATION)
            else:
                mini_drop(c, c.window.tail)
            continue
        victim = c.probation.tail
        candidate = c.probation.head
        if candidates == 0 or victim == candidate:
            mini_drop(c, victim)
        elif sketch_admits(sketch, c.entries[candidate].tag & ~<uint32_t>TAG_LOW_BITS,
                           c.entries[victim].tag & ~<uint32_t>TAG_LOW_BITS):
            mini_drop(c, victim)
        else:
            mini_drop(c, candidate)
            candidates -= 1


cdef int minisim_lookup(MiniSim* m, Sketch* sketch, uint32_t tag) noexcept nogil:
    """A sampled lookup of `tag`. The window (% of capacity) to use when it changes; else -1."""
    cdef int i, best
    cdef bint hit
    cdef int64_t d, margin = 0
    cdef Mini* c
    if m.copies == NULL:
        return -1
    for i in range(MINI_ALL):
        mini_lookup(&m.copies[i], sketch, tag)
    hit = m.copies[m.choice].hit
    if not m.warm:
        m.warmup += 1
        m.warm = (m.warmup >= MINI_WARM * m.cap
                  and (m.copies[m.choice].count >= m.copies[m.choice].cap
                       or m.warmup >= MINI_WARM_MAX * m.cap))
    else:
        m.sampled += 1
        m.size_hits[0] += m.copies[MINI_COPIES].hit
        m.size_hits[1] += hit
        m.size_hits[2] += m.copies[MINI_COPIES + 1].hit
    for i in range(MINI_COPIES):
        c = &m.copies[i]
        if c.fresh:
            if not c.hit:
                c.fresh -= 1
        elif c.hit != hit:
            if hit:
                c.losses += 1
            else:
                c.wins += 1
    m.seen += 1
    if m.seen < m.period:
        return -1
    m.seen = 0
    best = m.choice
    for i in range(MINI_COPIES):
        c = &m.copies[i]
        d = c.wins - c.losses
        if d > margin and d * d > MINI_Z2 * (c.wins + c.losses):
            best = i
            margin = d
    if best == m.choice:
        for i in range(MINI_COPIES):
            c = &m.copies[i]
            d = c.losses - c.wins
            if d > 0 and d * d > MINI_Z2 * (c.wins + c.losses):
                mini_reseed(c, &m.copies[m.choice])
                c.fresh = 2 * c.cap
                c.wins = c.losses = 0
            else:
                c.wins -= c.wins >> 3
                c.losses -= c.losses >> 3
        return -1
    for i in range(MINI_COPIES):
        m.copies[i].wins = m.copies[i].losses = 0
        if i != best and _MINI_PERCENTS[best] > _MINI_PERCENTS[m.choice]:
            mini_reseed(&m.copies[i], &m.copies[best])
    m.choice = best
    for i in range(MINI_COPIES, MINI_ALL):
        mini_set_window(&m.copies[i], _MINI_PERCENTS[best])
    return _MINI_PERCENTS[best]

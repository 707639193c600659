# The L1 latency histogram (included by _core_c.pyx; twin of tiercache.observability.metrics.Histogram).

# Latency histogram buckets, as tiercache.observability.metrics.bucket_of: bucket 0 holds (0, 2**-24 s], then 4 linear
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
    """Timed L1 lookups of one namespace, counted in C (see tiercache.observability.metrics for the buckets)."""

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

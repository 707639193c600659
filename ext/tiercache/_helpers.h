/* Small C helpers for the compiled core: the monotonic clock read in C, and sys.getsizeof without a call
 * through the sys module where the interpreter exports it. */
#ifndef TIERCACHE_HELPERS_H
#define TIERCACHE_HELPERS_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef TIERCACHE_DEBUG
#define TIERCACHE_DEBUG 0
#endif

/* One cache entry (declared, with what each field means, in _core_c.pxd). Its weight, its W-TinyLFU count
 * and the count's unsaved flag share one 64-bit word as bit-fields (weights are < 2**56), which keeps the
 * record at 48 bytes. */
typedef struct {
    PyObject *key;
    PyObject *value;
    double expires;
    int64_t size : 57;
    int64_t freq : 6;
    int64_t unsaved : 1;
    int32_t prev;
    int32_t next;
    int32_t heap_pos;
    uint32_t tag;
} tc_entry;

#if defined(_WIN32)
#include <windows.h>
static inline double tc_monotonic(void) {
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (double)now.QuadPart / (double)freq.QuadPart;
}
#else
#include <time.h>
/* The clock time.monotonic() reads on POSIX, so both implementations see the same time. */
static inline double tc_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif

/* The clock time.time() reads (seconds since the epoch): expiries stored in L2 are wall-clock times. */
#if defined(_WIN32)
static inline double tc_wallclock(void) {
    FILETIME ft;
    ULARGE_INTEGER t;
    GetSystemTimePreciseAsFileTime(&ft);
    t.LowPart = ft.dwLowDateTime;
    t.HighPart = ft.dwHighDateTime;
    return (double)(t.QuadPart - 116444736000000000ULL) * 1e-7;
}
#else
static inline double tc_wallclock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif

/* A little-endian IEEE double at p (struct.unpack("<d")), on any host. */
static inline double tc_read_le_double(const char *p) {
    uint64_t u = 0;
    double d;
    int i;
    for (i = 7; i >= 0; i--) u = (u << 8) | (uint64_t)(unsigned char)p[i];
    memcpy(&d, &u, sizeof d);
    return d;
}

/* The big-endian unsigned integer of `width` bytes at p (msgpack's lengths and integers). */
static inline uint64_t tc_read_be_uint(const char *p, int width) {
    uint64_t u = 0;
    int i;
    for (i = 0; i < width; i++) u = (u << 8) | (uint64_t)(unsigned char)p[i];
    return u;
}

/* A big-endian IEEE double / float at p (msgpack's float 64 / float 32). */
static inline double tc_read_be_double(const char *p) {
    uint64_t u = tc_read_be_uint(p, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline double tc_read_be_float(const char *p) {
    uint32_t u = (uint32_t)tc_read_be_uint(p, 4);
    float f;
    memcpy(&f, &u, sizeof f);
    return (double)f;
}

/* An empty dict with room for n items (no resizing while they go in), where the interpreter offers one. */
static inline PyObject *tc_dict_presized(Py_ssize_t n) {
#if PY_VERSION_HEX < 0x030D0000 && !defined(PYPY_VERSION)
    return _PyDict_NewPresized(n);
#else
    (void)n;
    return PyDict_New();
#endif
}

/* The interned str equal to the str s, as a new reference (s itself stays the caller's). */
static inline PyObject *tc_intern(PyObject *s) {
    Py_INCREF(s);
    PyUnicode_InternInPlace(&s);
    return s;
}

/* The str of the n bytes at p when they are all ASCII, as a new reference; NULL, with no error set, when
 * one is not (the caller then decodes them as UTF-8). A word at a time, then one copy. */
static inline PyObject *tc_ascii_str(const char *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    uint64_t bits = 0, w;
    PyObject *s;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        bits |= w;
    }
    for (; i < n; i++) bits |= (unsigned char)p[i];
    if (bits & 0x8080808080808080ULL) return NULL;
    s = PyUnicode_New(n, 127);
    if (s != NULL) memcpy(PyUnicode_DATA(s), p, (size_t)n);
    return s;
}

/* The str of the UTF-8 bytes at p (surrogatepass, as msgpack reads str), as a new reference; NULL with an
 * error set when they do not decode. ASCII, the usual case, skips the general decoder's layers. */
static inline PyObject *tc_decode_str(const char *p, Py_ssize_t n) {
    PyObject *s = tc_ascii_str(p, n);
    if (s != NULL || PyErr_Occurred()) return s;
    return PyUnicode_DecodeUTF8(p, n, "surrogatepass");
}

/* Interned map keys by their bytes: msgpack interns every str map key, which costs a UTF-8 decode and a
 * lookup in the interpreter's table of interned strings per key, although the same few keys come back in
 * every value. A direct-mapped table remembers the interned str of each short ASCII key it met; a key
 * whose bytes equal its slot's str is that str (the same object interning would return: the table holds
 * a reference, so the str stays the interned one). Only ASCII keys are kept, so a str's characters are
 * its bytes and one memcmp decides. Read and written with the GIL held; no Python code runs in between. */
#define TC_KEY_SLOTS 512
#define TC_KEY_MAX 40
static PyObject *tc_key_table[TC_KEY_SLOTS];

/* Forget the table (at module initialization: an interpreter finalized and started again in this process
 * may have freed the strs it pointed to, so they are dropped, not released). */
static inline void tc_key_table_reset(void) {
    memset(tc_key_table, 0, sizeof(tc_key_table));
}

/* The interned str of the UTF-8 key of n bytes at p (surrogatepass), as a new reference; NULL with an
 * error set when the bytes do not decode. */
static inline PyObject *tc_intern_key(const char *p, Py_ssize_t n) {
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)n;
    Py_ssize_t i;
    size_t slot = 0;
    PyObject *hit, *s, *old;
    if (n <= TC_KEY_MAX) {
        for (i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
        slot = (size_t)(h ^ (h >> 29)) & (TC_KEY_SLOTS - 1);
        hit = tc_key_table[slot];
        if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n && memcmp(PyUnicode_DATA(hit), p, (size_t)n) == 0) {
            Py_INCREF(hit);
            return hit;
        }
    }
    s = tc_decode_str(p, n);
    if (s == NULL) return NULL;
    PyUnicode_InternInPlace(&s);
    if (n <= TC_KEY_MAX && PyUnicode_IS_ASCII(s)) {  /* (long and non-ASCII keys are interned, never kept) */
        old = tc_key_table[slot];
        Py_INCREF(s);
        tc_key_table[slot] = s;
        Py_XDECREF(old);
    }
    return s;
}

/* 1 when _PySys_GetSizeOf (sys.getsizeof's own C function) is exported: CPython 3.8 to 3.12. */
#if PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x030D0000 && !defined(PYPY_VERSION)
#define TC_HAVE_GETSIZEOF 1
static inline Py_ssize_t tc_getsizeof(PyObject *o) {
    size_t n = _PySys_GetSizeOf(o);
    return n == (size_t)-1 ? -1 : (Py_ssize_t)n;
}
#else
#define TC_HAVE_GETSIZEOF 0
static inline Py_ssize_t tc_getsizeof(PyObject *o) { (void)o; return -1; }
#endif


/* The digit count of an exact int, read from the object header: -1 where the layout is not known. */
/* dict.__sizeof__ without the method call (sys.getsizeof adds the GC header): CPython 3.8 to 3.12, else -1. */
#if PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x030D0000 && !defined(PYPY_VERSION)
static inline Py_ssize_t tc_dict_sizeof(PyObject *d) { return _PyDict_SizeOf((PyDictObject *)d); }
#else
static inline Py_ssize_t tc_dict_sizeof(PyObject *d) { (void)d; return -1; }
#endif

/* The slots a list has room for (sys.getsizeof counts them all). */
static inline Py_ssize_t tc_list_allocated(PyObject *o) {
    return ((PyListObject *)o)->allocated;
}

static inline Py_ssize_t tc_int_ndigits(PyObject *o) {
#if PY_VERSION_HEX < 0x030C0000 && !defined(PYPY_VERSION)
    Py_ssize_t n = Py_SIZE(o);
    return n < 0 ? -n : n;
#elif PY_VERSION_HEX < 0x030F0000 && !defined(PYPY_VERSION) && !defined(Py_LIMITED_API)
    return (Py_ssize_t)(((PyLongObject *)o)->long_value.lv_tag >> 3);  /* _PyLong_NON_SIZE_BITS */
#else
    (void)o;
    return -1;
#endif
}

/* A hint to start loading memory the call will touch soon (the eviction victim), overlapping the miss. */
#if defined(__GNUC__) || defined(__clang__)
#define tc_prefetch(p) __builtin_prefetch((const void *)(p), 1, 3)
#define tc_prefetch_read(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#define tc_prefetch(p) ((void)(p))
#define tc_prefetch_read(p) ((void)(p))
#endif

/* Memory for the hash table and the sketch, aligned to a cache line (a sketch block is one line: one
 * prefetch loads all of it). A table of 2 MiB or more is aligned to 2 MiB and offered to the kernel for
 * transparent huge pages: a get probes one random slot, and over a few MiB of slots the TLB misses cost as
 * much as the probe itself. tc_table_free releases either kind. */
#include <stdlib.h>
#if defined(_WIN32)
#include <malloc.h>
static inline void *tc_table_alloc(size_t n) { return _aligned_malloc(n ? n : 1, 64); }
static inline void tc_table_free(void *p) { _aligned_free(p); }
#else
#if defined(__linux__)
#include <sys/mman.h>
#endif
#define TC_HUGE ((size_t)2 << 20)
static inline void *tc_table_alloc(size_t n) {
    void *p = NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n >= TC_HUGE) {
        if (posix_memalign(&p, TC_HUGE, n) != 0) return NULL;
        madvise(p, n, MADV_HUGEPAGE);
        return p;
    }
#endif
    if (posix_memalign(&p, 64, n ? n : 1) != 0) return NULL;
    return p;
}
static inline void tc_table_free(void *p) { free(p); }
#endif

/* Make a type awaitable at C speed (CPython 3.10+): `await x` takes x itself as the iterator (am_await)
 * and its result from am_send, with no StopIteration. Older interpreters keep the Python-level slots. */
typedef int (*tc_sendfunc)(PyObject *, PyObject *, PyObject **);
static PyObject *tc_await_self(PyObject *o) { Py_INCREF(o); return o; }
static inline void tc_set_await_self_send(PyObject *type, tc_sendfunc f) {
#if PY_VERSION_HEX >= 0x030A0000 && !defined(PYPY_VERSION)
    PyTypeObject *t = (PyTypeObject *)type;
    if (t->tp_as_async != NULL) {
        t->tp_as_async->am_await = tc_await_self;
        t->tp_as_async->am_send = (sendfunc)f;
    }
#else
    (void)type; (void)f;
#endif
}

/* Set bits in a 64-bit word (the sketch's aging). */
static inline int tc_popcount64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcountll(x);
#else
    int n = 0;
    while (x) { x &= x - 1; n++; }
    return n;
#endif
}

#endif

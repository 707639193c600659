# cython: language_level=3, embedsignature=True, binding=False
"""The compiled L1 core of tiercache: one extension unit assembled from per-concept includes, each the twin
of a pure-Python module (tiercache._core_py selects the same names from those):

    _table _lru _ttl     the hash table, recency lists and expiry heap (C structs)
    _sketch              the W-TinyLFU frequency sketch            (_sketch_py)
    _sizing              key hashes, TTL seconds, entry weights
    _hashcache _slab     HashCache and its entry slab              (_hashcache_py)
    _wtinylfu            the W-TinyLFU policy over a HashCache     (_wtinylfu_py)
    _invariants          HashCache's invariants, for the tests
    _histogram           the L1 latency histogram                  (tiercache.observability.histogram)
    _ready               the awaitable of an async L1 hit         (_readpath_py)
    _msgpack             the L2 value reader                      (_msgpack_py)
    _keys _readpath      the manager's read path                  (_readpath_py)

The hash table:

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
from collections.abc import Mapping as _Mapping

from tiercache.l1 import cleanup as _cleanup
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
    PyObject* PyErr_Occurred()
    int PyErr_ExceptionMatches(object exc)
    void PyErr_Clear()
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    bint PyLong_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    Py_ssize_t PyTuple_GET_SIZE(object o)
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
include "_minisim.pxi"

__all__ = ["FrequencySketch", "HashCache", "MISSING", "NamespaceState", "ReadPath", "Ready", "SampleHistogram", "decode_l2", "deep_sizer", "default_sizer", "jittered", "read_l2_value"]

cdef object _MISSING = object()
cdef tuple _EVICT_CAUSES = ("size", "count", "expired")  # by EVICTED_SIZE, EVICTED_COUNT, EVICTED_EXPIRED
cdef object _log = __import__("logging").getLogger("tiercache")
cdef object _ABSENT = object()
cdef object _getsizeof = sys.getsizeof
# time.monotonic is read through the C clock, not a Python call, where the two are one clock (CLOCK_MONOTONIC)
cdef object _monotonic = __import__("time").monotonic if sys.platform.startswith("linux") else None
cdef int32_t _MIN_SLOTS = 8

include "_sizing.pxi"
include "_hashcache.pxi"
include "_slab.pxi"
include "_wtinylfu.pxi"
include "_invariants.pxi"
include "_histogram.pxi"
include "_ready.pxi"
include "_msgpack.pxi"
include "_keys.pxi"
include "_readpath.pxi"

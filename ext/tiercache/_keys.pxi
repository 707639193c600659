# Key-list helpers of the read path (included by _core_c.pyx).

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

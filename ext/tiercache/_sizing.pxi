# Key hashes, TTLs in seconds and entry weights: the conversions at the edge of a HashCache call (included
# by _core_c.pyx).

cdef Py_hash_t _hash(object key) except? -1:
    """hash(key), with the unhashable TypeError the pure twin raises."""
    cdef Py_hash_t h = tc_object_hash(key)
    if h == -1 and PyErr_Occurred() != NULL:
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

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
    if PyLong_CheckExact(size) and 0 <= size < 2 ** 56:  # (SIZE_CEILING, as a constant)
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


# deep_sizer: sys.getsizeof of a value and of everything its lists, tuples, dicts, sets and frozensets hold,
# each container counted once (shared or cyclic ones too), everything else once per reference. What the
# manager's L1 weighs entries by: it bounds their memory, where a stored (possibly compressed) length does not.
# The common scalars are weighed without a call, with the sizes sys.getsizeof gives (measured here once).
cdef Py_ssize_t _STR_BASE = sys.getsizeof("")     # + one byte per character of an ASCII str
cdef Py_ssize_t _BYTES_BASE = sys.getsizeof(b"")  # + one byte per byte
cdef Py_ssize_t _TUPLE_BASE = sys.getsizeof(())   # + one pointer per item
cdef Py_ssize_t _LIST_BASE = sys.getsizeof([])    # + one pointer per allocated slot
cdef Py_ssize_t _TRUE_SIZE = sys.getsizeof(True)  # (before 3.12 False, with no digit, weighs 4 bytes less)
cdef Py_ssize_t _FALSE_SIZE = sys.getsizeof(False)
cdef Py_ssize_t _NONE_SIZE = sys.getsizeof(None)


cdef Py_ssize_t _dict_sizeof(dict d):
    return tc_dict_sizeof(<PyObject*>d)


# dict sizes without a method call, where the interpreter exports dict's own (checked against getsizeof)
cdef Py_ssize_t _DICT_EXTRA = sys.getsizeof({}) - _dict_sizeof({})  # (the GC header)
cdef bint _FAST_DICT = _dict_sizeof({}) >= 0 and all(
    sys.getsizeof(d) == _dict_sizeof(d) + _DICT_EXTRA for d in ({}, {"a": 1}, dict.fromkeys(range(50))))
cdef int _TREE_DEPTH = 64  # deeper values take the general walk (no C recursion past this)


cdef inline int64_t _object_size(object value) except -1:
    cdef Py_ssize_t digits
    if PyUnicode_CheckExact(value) and PyUnicode_IS_ASCII(value):
        return _STR_BASE + PyUnicode_GET_LENGTH(value)
    if PyLong_CheckExact(value):
        digits = tc_int_ndigits(<PyObject*>value)
        if 0 <= digits <= 3:
            return _INT_SIZES[digits]
    elif PyFloat_CheckExact(value):
        return _FLOAT_SIZE
    elif PyBytes_CheckExact(value):
        return _BYTES_BASE + PyBytes_GET_SIZE(value)
    elif value is None:
        return _NONE_SIZE
    elif value is True:
        return _TRUE_SIZE
    elif value is False:
        return _FALSE_SIZE
    elif PyDict_CheckExact(value) and _FAST_DICT:
        return tc_dict_sizeof(<PyObject*>value) + _DICT_EXTRA
    elif PyList_CheckExact(value):
        return _LIST_BASE + sizeof(PyObject*) * tc_list_allocated(<PyObject*>value)
    elif PyTuple_CheckExact(value) and PyTuple_GET_SIZE(value):  # (the empty tuple: the getsizeof below)
        return _TUPLE_BASE + sizeof(PyObject*) * PyTuple_GET_SIZE(value)
    if TC_HAVE_GETSIZEOF:
        return tc_getsizeof(<PyObject*>value)
    return _getsizeof(value)


cdef inline bint _is_container(object value) noexcept:
    cdef object tp = type(value)
    return tp is dict or tp is list or tp is tuple or tp is set or tp is frozenset


cdef inline int64_t _child_size(object item, int depth) except -1:
    """_tree_size's weight of one item it holds (-2: give up, as _tree_size). A container held only by its
    parent has two references here: the parent's, and the loop's that walks it."""
    if not _is_container(item):
        return _object_size(item)
    if Py_REFCNT(<PyObject*>item) > 2 or depth >= _TREE_DEPTH:
        return -2
    return _tree_size(item, depth + 1)


cdef int64_t _tree_size(object value, int depth) except -1:
    """deep_sizer of a value whose nested containers are each held once (what decoding builds), by recursion;
    -2 when it meets a container held elsewhere too (it may be met twice) or nesting past _TREE_DEPTH."""
    cdef int64_t total = _object_size(value), part
    cdef object k, v, item
    if type(value) is dict:
        for k, v in (<dict>value).items():
            part = _child_size(k, depth)
            if part < 0:
                return part
            total += part
            part = _child_size(v, depth)
            if part < 0:
                return part
            total += part
        return total
    for item in value:
        part = _child_size(item, depth)
        if part < 0:
            return part
        total += part
    return total


cdef class _Walk:
    """The containers of one deep_sizer call still to weigh, and those met twice possibly."""
    cdef list stack
    cdef set seen
    cdef object root
    cdef int64_t total

    cdef int visit(self, object item) except -1:
        """Weigh a scalar now; put a container on the stack unless it was met before. A container held only by
        its parent (reference count 1) cannot be met twice, so only the others are remembered (by id)."""
        if not _is_container(item):
            self.total += _object_size(item)
            return 0
        if Py_REFCNT(<PyObject*>item) > 1:
            if self.seen is None:
                self.seen = {id(self.root)}
            if id(item) in self.seen:
                return 0
            self.seen.add(id(item))
        self.stack.append(item)
        return 0


cdef int64_t _deep_size(object root) except -1:
    cdef _Walk walk
    cdef object container, item, k, v
    cdef int64_t total
    if not _is_container(root):
        return _object_size(root)
    total = _tree_size(root, 0)
    if total >= 0:
        return total
    walk = _Walk.__new__(_Walk)
    walk.stack = [root]
    walk.root = root
    while walk.stack:
        container = walk.stack.pop()
        walk.total += _object_size(container)
        if type(container) is dict:
            for k, v in (<dict>container).items():
                walk.visit(k)
                walk.visit(v)
        elif type(container) is list:
            for item in <list>container:
                walk.visit(item)
        elif type(container) is tuple:
            for item in <tuple>container:
                walk.visit(item)
        else:
            for item in container:
                walk.visit(item)
    return walk.total


def deep_sizer(value):
    """Memory held by `value`: sys.getsizeof of it and of everything in its lists, tuples, dicts, sets and
    frozensets (each container once). The weight of an entry in a CacheManager's L1."""
    return _deep_size(value)


cdef object _DEEP_SIZER = deep_sizer  # (HashCache._weigh calls _deep_size for it, without a Python call)

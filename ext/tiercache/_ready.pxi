# Ready: an awaitable that is already done, for the async manager's L1 hits (included by _core_c.pyx;
# twin in tiercache/manager/_readpath_py.py).

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

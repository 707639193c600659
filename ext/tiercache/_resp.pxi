# Redis commands in the wire form (RESP: an array of bulk strings), built in one pass for RedisL2's reads.
#
# redis-py packs each command's arguments in Python (a generator over them, an isinstance test each) before
# hiredis formats them: for an MGET of 100 keys that is about a quarter of the client's work. GET and MGET
# are all an L2 read sends, so RedisL2 packs them here and hands the bytes to the pooled connection.

cdef inline Py_ssize_t _resp_digits(Py_ssize_t v):
    cdef Py_ssize_t d = 1
    while v >= 10:
        v //= 10
        d += 1
    return d


cdef inline char* _resp_put_len(char* out, char mark, Py_ssize_t v):
    """mark, the decimal v, CRLF at out; returns the end."""
    cdef Py_ssize_t d = _resp_digits(v), k
    out[0] = mark
    for k in range(d, 0, -1):
        out[k] = <char>(48 + v % 10)
        v //= 10
    out[d + 1] = 13
    out[d + 2] = 10
    return out + d + 3


cdef inline const char* _resp_arg(object arg, Py_ssize_t* size) except NULL:
    """The bytes redis-py would send for one argument (str: UTF-8, strictly; bytes as they are)."""
    if PyUnicode_Check(arg):
        if PyUnicode_IS_ASCII(arg):
            size[0] = PyUnicode_GET_LENGTH(arg)
            return <const char*>PyUnicode_DATA(arg)
        return PyUnicode_AsUTF8AndSize(arg, size)
    if PyBytes_Check(arg):
        size[0] = PyBytes_GET_SIZE(arg)
        return PyBytes_AS_STRING(arg)
    raise TypeError(f"Redis command arguments here are str or bytes, got {type(arg).__name__} {arg!r}")


def resp_command(bytes name, args):
    """The RESP bytes of the command `name` with the str or bytes arguments `args` (a list or tuple), as
    redis-py's connection sends name(*args). TypeError for any other argument; str must encode as UTF-8."""
    cdef Py_ssize_t n, i, size, total
    cdef const char* p
    cdef char* out
    cdef bytes packed
    if type(args) is not list and type(args) is not tuple:
        raise TypeError(f"args must be a list or tuple, got {type(args).__name__}")
    n = len(args)
    size = PyBytes_GET_SIZE(name)
    total = 1 + _resp_digits(n + 1) + 2 + 1 + _resp_digits(size) + 2 + size + 2
    for i in range(n):
        _resp_arg(args[i], &size)
        total += 1 + _resp_digits(size) + 2 + size + 2
    packed = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(packed)
    out = _resp_put_len(out, 42, n + 1)  # '*'
    size = PyBytes_GET_SIZE(name)
    out = _resp_put_len(out, 36, size)  # '$'
    memcpy(out, PyBytes_AS_STRING(name), size)
    out[size] = 13
    out[size + 1] = 10
    out += size + 2
    for i in range(n):
        p = _resp_arg(args[i], &size)
        out = _resp_put_len(out, 36, size)
        memcpy(out, p, size)
        out[size] = 13
        out[size + 1] = 10
        out += size + 2
    return packed

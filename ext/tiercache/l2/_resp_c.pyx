# cython: language_level=3, embedsignature=True, binding=False
"""Redis commands in the wire form (RESP: an array of bulk strings), built in one pass for RedisL2's reads
(twin of tiercache/l2/_resp_py.py)."""

# redis-py packs each command's arguments in Python (a generator over them, an isinstance test each) before
# hiredis formats them: for an MGET of 100 keys that is about a quarter of the client's work. GET and MGET
# are all an L2 read sends, so RedisL2 packs them here and hands the bytes to the pooled connection.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

cdef extern from "Python.h":
    enum: PY_SSIZE_T_MAX
    bint PyUnicode_Check(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL

__all__ = ["resp_command"]


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


cdef inline char* _resp_put_bulk(char* out, const char* p, Py_ssize_t size):
    """One bulk string ($, length, CRLF, the `size` bytes at p, CRLF) at out; returns the end."""
    out = _resp_put_len(out, 36, size)  # '$'
    memcpy(out, p, size)
    out[size] = 13
    out[size + 1] = 10
    return out + size + 2


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


cdef inline Py_ssize_t _resp_add(Py_ssize_t total, Py_ssize_t size) except -1:
    """total plus one bulk string of `size` bytes ($, length, CRLF, the bytes, CRLF)."""
    cdef Py_ssize_t piece = 1 + _resp_digits(size) + 2 + 2
    if size > PY_SSIZE_T_MAX - piece or total > PY_SSIZE_T_MAX - piece - size:
        raise OverflowError("the Redis command is too large to pack")
    return total + piece + size


def resp_command(name, args):
    """The RESP bytes of the command `name` (bytes) with the str or bytes arguments `args` (a list or tuple),
    as redis-py's connection sends name(*args). TypeError for any other argument; str must encode as UTF-8."""
    cdef Py_ssize_t n, i, size, total
    cdef const char* p
    cdef char* out
    cdef bytes packed
    if not PyBytes_Check(name):
        raise TypeError(f"name must be bytes, got {type(name).__name__}")
    if type(args) is not list and type(args) is not tuple:
        raise TypeError(f"args must be a list or tuple, got {type(args).__name__}")
    n = len(args)
    total = 1 + _resp_digits(n + 1) + 2
    total = _resp_add(total, PyBytes_GET_SIZE(name))
    for i in range(n):
        _resp_arg(args[i], &size)
        total = _resp_add(total, size)
    packed = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(packed)
    out = _resp_put_len(out, 42, n + 1)  # '*'
    out = _resp_put_bulk(out, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))
    for i in range(n):
        p = _resp_arg(args[i], &size)
        out = _resp_put_bulk(out, p, size)
    return packed

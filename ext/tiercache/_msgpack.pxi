# Reading msgpack values from L2 in C: the decoder behind every L2 read of a plain msgpack namespace.
#
# msgpack.unpackb pays a set-up per call (its keyword options, an Unpacker context: about a quarter of
# decoding a small dict) and then builds the objects. Here the common values — nil, bool, int, float, str,
# bin, arrays and maps of them, ext types through the same ext hook — are read straight into Python
# objects, the way msgpack.unpackb with serialization._UNPACK_OPTIONS reads them: arrays as lists, bin as
# bytes, str as UTF-8 with surrogatepass, str map keys interned, ext types handed to
# tiercache.wire.serialization.msgpack_ext_hook. Anything else — a map key of an ext type (whoever wrote
# the value may have chosen its hash: Codec.loads checks such keys), a payload cut short or with bytes left
# over, a byte msgpack never uses, nesting deeper than _MAX_DEPTH, msgpack's own timestamp type, or an error
# raised while building (invalid UTF-8, an unhashable map key, an ext hook's error) — is handed to Codec.loads,
# so the values and the errors are always Codec.loads's.

from tiercache.wire.serialization import msgpack_ext_hook

cdef object _ext_hook = msgpack_ext_hook
tc_key_table_reset()
cdef int _MAX_DEPTH = 32


cdef inline Py_ssize_t _mp_length(const char* p, Py_ssize_t n, Py_ssize_t* pos, int width):
    """The big-endian length of `width` bytes at p[pos]; pos moves past it. -1 when they are not all there."""
    cdef Py_ssize_t i = pos[0]
    if n - i < width:
        return -1
    pos[0] = i + width
    return <Py_ssize_t>tc_read_be_uint(p + i, width)


cdef object _mp_read(const char* p, Py_ssize_t n, Py_ssize_t* pos, int depth, Py_ssize_t* budget):
    """The msgpack object at p[pos] (pos moves past it), or _MISSING when it cannot be read here."""
    cdef Py_ssize_t i = pos[0], length, count
    cdef unsigned char b
    cdef int width
    if i >= n:
        return _MISSING
    b = <unsigned char>p[i]
    i += 1
    pos[0] = i
    if b <= 0x7f:  # positive fixint
        return <long>b
    if b >= 0xe0:  # negative fixint
        return <long>(<signed char>b)
    if b >= 0xa0 and b <= 0xbf:  # fixstr
        length = b & 0x1f
    elif b >= 0x90 and b <= 0x9f:  # fixarray
        return _mp_array(p, n, pos, b & 0x0f, depth, budget)
    elif b >= 0x80 and b <= 0x8f:  # fixmap
        return _mp_map(p, n, pos, b & 0x0f, depth, budget)
    elif b == 0xc0:
        return None
    elif b == 0xc2:
        return False
    elif b == 0xc3:
        return True
    elif b == 0xd9 or b == 0xda or b == 0xdb:  # str 8 / 16 / 32
        length = _mp_length(p, n, pos, 1 << (b - 0xd9))
    elif b == 0xc4 or b == 0xc5 or b == 0xc6:  # bin 8 / 16 / 32
        length = _mp_length(p, n, pos, 1 << (b - 0xc4))
        i = pos[0]
        if length < 0 or n - i < length:
            return _MISSING
        pos[0] = i + length
        return PyBytes_FromStringAndSize(p + i, length)
    elif b >= 0xcc and b <= 0xcf:  # uint 8 / 16 / 32 / 64
        width = 1 << (b - 0xcc)
        if n - i < width:
            return _MISSING
        pos[0] = i + width
        return tc_read_be_uint(p + i, width)
    elif b >= 0xd0 and b <= 0xd3:  # int 8 / 16 / 32 / 64
        width = 1 << (b - 0xd0)
        if n - i < width:
            return _MISSING
        pos[0] = i + width
        if width == 1:
            return <long>(<signed char>p[i])
        if width == 2:
            return <long>(<int16_t>tc_read_be_uint(p + i, 2))
        if width == 4:
            return <long>(<int32_t>tc_read_be_uint(p + i, 4))
        return <long long>(<int64_t>tc_read_be_uint(p + i, 8))
    elif b == 0xcb:  # float 64
        if n - i < 8:
            return _MISSING
        pos[0] = i + 8
        return tc_read_be_double(p + i)
    elif b == 0xca:  # float 32
        if n - i < 4:
            return _MISSING
        pos[0] = i + 4
        return tc_read_be_float(p + i)
    elif b == 0xdc or b == 0xdd:  # array 16 / 32
        count = _mp_length(p, n, pos, 2 if b == 0xdc else 4)
        return _MISSING if count < 0 else _mp_array(p, n, pos, count, depth, budget)
    elif b == 0xde or b == 0xdf:  # map 16 / 32
        count = _mp_length(p, n, pos, 2 if b == 0xde else 4)
        return _MISSING if count < 0 else _mp_map(p, n, pos, count, depth, budget)
    elif b >= 0xd4 and b <= 0xd8:  # fixext 1 / 2 / 4 / 8 / 16
        return _mp_ext(p, n, pos, 1 << (b - 0xd4))
    elif b == 0xc7 or b == 0xc8 or b == 0xc9:  # ext 8 / 16 / 32
        length = _mp_length(p, n, pos, 1 << (b - 0xc7))
        return _MISSING if length < 0 else _mp_ext(p, n, pos, length)
    else:  # 0xc1: never used
        return _MISSING
    # a str of `length` bytes at pos
    i = pos[0]
    if length < 0 or n - i < length:
        return _MISSING
    pos[0] = i + length
    return tc_decode_str(p + i, length)


cdef object _mp_array(const char* p, Py_ssize_t n, Py_ssize_t* pos, Py_ssize_t count, int depth,
                      Py_ssize_t* budget):
    """An array of `count` items. It is sized up front only while the value's budget lasts (each slot sized
    ahead spends one; the budget starts at the value's length), else grown as items arrive: nested headers
    that each claim the bytes left cannot make a read allocate more than the value can hold."""
    cdef Py_ssize_t k
    cdef list items
    cdef object value
    if depth >= _MAX_DEPTH or count > n - pos[0]:  # (each item takes a byte at least)
        return _MISSING
    if count <= budget[0]:
        budget[0] -= count
        items = [None] * count
        for k in range(count):
            value = _mp_read(p, n, pos, depth + 1, budget)
            if value is _MISSING:
                return _MISSING
            items[k] = value
        return items
    items = []
    for k in range(count):
        value = _mp_read(p, n, pos, depth + 1, budget)
        if value is _MISSING:
            return _MISSING
        items.append(value)
    return items


cdef object _mp_map(const char* p, Py_ssize_t n, Py_ssize_t* pos, Py_ssize_t count, int depth,
                    Py_ssize_t* budget):
    cdef Py_ssize_t k, i, length
    cdef unsigned char b
    cdef dict mapping
    cdef object key, value
    if depth >= _MAX_DEPTH or count > (n - pos[0]) // 2:  # (each pair takes two bytes at least)
        return _MISSING
    if 4 * count <= budget[0]:  # (presized, as _mp_array: a dict slot costs about four list slots)
        budget[0] -= 4 * count
        mapping = tc_dict_presized(count)
    else:
        mapping = {}
    for k in range(count):
        i = pos[0]
        b = <unsigned char>p[i] if i < n else 0xc1
        if (b >= 0xa0 and b <= 0xbf) or b == 0xd9:  # fixstr, str 8: the usual keys, interned through the table
            if b == 0xd9:
                length = <unsigned char>p[i + 1] if i + 1 < n else -1
                i += 2
            else:
                length = b & 0x1f
                i += 1
            if length < 0 or n - i < length:
                return _MISSING
            pos[0] = i + length
            key = tc_intern_key(p + i, length)  # (as msgpack does: map keys repeat from value to value)
        elif (b >= 0xd4 and b <= 0xd8) or (b >= 0xc7 and b <= 0xc9):
            return _MISSING  # a key of an ext type (tuple, big int...): Codec.loads checks their hashes
        else:
            key = _mp_read(p, n, pos, depth + 1, budget)
            if key is _MISSING:
                return _MISSING
            if PyUnicode_CheckExact(key):
                key = tc_intern(key)
        value = _mp_read(p, n, pos, depth + 1, budget)
        if value is _MISSING:
            return _MISSING
        mapping[key] = value
    return mapping


cdef object _mp_ext(const char* p, Py_ssize_t n, Py_ssize_t* pos, Py_ssize_t length):
    """An ext type: its code byte, then `length` bytes of data, to the ext hook (as msgpack does)."""
    cdef Py_ssize_t i = pos[0]
    cdef signed char code
    if n - i < 1 + length:
        return _MISSING
    code = <signed char>p[i]
    if code == -1:
        return _MISSING  # (msgpack's own timestamp type, which msgpack reads itself)
    pos[0] = i + 1 + length
    return _ext_hook(code, PyBytes_FromStringAndSize(p + i + 1, length))


cdef object _decode_l2(object data, Py_ssize_t start, object read, object l2_key):
    """read(data, start, l2_key) for the bytes `data` an L2 read answered for `l2_key` (start: past any expiry
    header), a plain msgpack value (b"M\\x00" + payload) read here when it can be read whole, everything else
    by `read` (the namespace's Codec.read)."""
    cdef const char* p = PyBytes_AS_STRING(data) + start
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data) - start
    cdef Py_ssize_t pos = WIRE_FORMAT_HEADER_SIZE
    cdef Py_ssize_t budget = n  # slots that may be sized ahead, over every level together
    cdef object value
    if n > WIRE_FORMAT_HEADER_SIZE and p[0] == WIRE_TAG_MSGPACK and p[1] == 0:  # msgpack, no flags
        try:
            value = _mp_read(p, n, &pos, 0, &budget)
        except Exception:
            value = _MISSING  # (Codec.loads meets the same error and reports it)
        if value is not _MISSING and pos == n:
            return value
    return read(data, start, l2_key)


def read_l2_value(data, loads):
    """loads(data) for the bytes of an L2 value, read as the L2 paths read it (for the tests: the pure
    twin's is loads itself)."""
    if type(data) is not bytes:
        raise TypeError(f"L2 values are bytes, got {type(data).__name__}")
    return _decode_l2(data, 0, lambda d, start, key: loads(d), "")


def decode_l2(data, Py_ssize_t start, read, l2_key):
    """read(data, start, l2_key) for the bytes of the L2 value under `l2_key` (start: past any expiry header),
    plain msgpack values read in C with the same results as msgpack (the tests compare)."""
    if type(data) is not bytes:
        raise TypeError(f"L2 values are bytes, got {type(data).__name__}")
    if not 0 <= start <= PyBytes_GET_SIZE(data):
        raise ValueError(f"start {start} is outside the value")
    return _decode_l2(data, start, read, l2_key)


# The wire format's numbers as compiled in (tests/test_wire.py compares them with tiercache.wire).
WIRE_CONSTANTS = {
    "EXPIRY_TAG": WIRE_EXPIRY_TAG,
    "EXPIRY_HEADER_SIZE": WIRE_EXPIRY_HEADER_SIZE,
    "TAG_MSGPACK": WIRE_TAG_MSGPACK,
    "FORMAT_HEADER_SIZE": WIRE_FORMAT_HEADER_SIZE,
    "KEY_MARK": WIRE_KEY_MARK,
}

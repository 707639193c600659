# cython: language_level=3
# The L2 wire format's numbers for the compiled core: the same as tiercache/wire/__init__.py, which defines and
# documents them (tests/test_wire.py checks that both agree).

cdef enum:
    WIRE_EXPIRY_TAG = 0x58          # b"X": an expiry header follows
    WIRE_EXPIRY_HEADER_SIZE = 9     # the tag and a little-endian double
    WIRE_TAG_MSGPACK = 0x4D         # b"M"
    WIRE_FORMAT_HEADER_SIZE = 2     # format tag + flags
    WIRE_KEY_MARK = 0x23            # "#": starts every encoded key part

"""The pure-Python twin of the compiled core (ext/tiercache/_core_c.pyx): the same names, one per concept.

_compat.py imports from here when the extension is not used; each name lives in its own module, beside its
compiled twin's include:

    _hashcache_py  HashCache, deep_sizer, default_sizer        _hashcache.pxi, _slab.pxi, _sizing.pxi
    _wtinylfu_py   the W-TinyLFU policy a HashCache holds      _wtinylfu.pxi
    _ttl_py        the expiry heap a HashCache holds           _ttl.pxi
    _sketch_py     FrequencySketch                             _sketch.pxi
    histogram      SampleHistogram (tiercache.observability.histogram)       _histogram.pxi
    _readpath_py   NamespaceState, ReadPath, Ready             _readpath.pxi, _keys.pxi, _ready.pxi
    _msgpack_py    decode_l2                                   _msgpack.pxi
"""

from __future__ import annotations

from .observability.histogram import Histogram as SampleHistogram
from .l1._hashcache_py import HashCache, deep_sizer, default_sizer
from .wire._msgpack_py import decode_l2, read_l2_value
from .manager._readpath_py import MISSING, NamespaceState, ReadPath, Ready, jittered
from .l1._sketch_py import FrequencySketch
from .wire import WIRE_CONSTANTS

__all__ = ["FrequencySketch", "HashCache", "MISSING", "NamespaceState", "ReadPath", "Ready", "SampleHistogram", "WIRE_CONSTANTS",
           "decode_l2", "deep_sizer", "default_sizer", "jittered", "read_l2_value"]

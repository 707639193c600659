# The compiled core has exactly the pure twin's API; its types are the source of truth.
from ._core_py import FrequencySketch as FrequencySketch
from ._core_py import HashCache as HashCache
from ._core_py import MISSING as MISSING
from ._core_py import NamespaceState as NamespaceState
from ._core_py import ReadPath as ReadPath
from ._core_py import Ready as Ready
from ._core_py import SampleHistogram as SampleHistogram
from ._core_py import WIRE_CONSTANTS as WIRE_CONSTANTS
from ._core_py import decode_l2 as decode_l2
from ._core_py import deep_sizer as deep_sizer
from ._core_py import default_sizer as default_sizer
from ._core_py import jittered as jittered
from ._core_py import read_l2_value as read_l2_value

__all__ = [
    "FrequencySketch",
    "HashCache",
    "MISSING",
    "NamespaceState",
    "ReadPath",
    "Ready",
    "SampleHistogram",
    "WIRE_CONSTANTS",
    "decode_l2",
    "deep_sizer",
    "default_sizer",
    "jittered",
    "read_l2_value",
]

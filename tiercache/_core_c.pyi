# The compiled core has exactly the pure twin's API; its types are the source of truth.
from ._core_py import FrequencySketch as FrequencySketch
from ._core_py import HashCache as HashCache
from ._core_py import ManagerCore as ManagerCore
from ._core_py import Ready as Ready
from ._core_py import SampleHistogram as SampleHistogram
from ._core_py import default_sizer as default_sizer
from ._core_py import resp_command as resp_command

__all__ = ["FrequencySketch", "HashCache", "ManagerCore", "Ready", "SampleHistogram", "default_sizer", "resp_command"]

from ._resp_py import resp_command as resp_command

__all__ = ["resp_command"]

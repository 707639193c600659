"""Exceptions raised by tiercache."""

from __future__ import annotations


class TierCacheError(Exception):
    """Base class of every tiercache error."""


class ConfigError(TierCacheError, ValueError):
    """A configuration value is malformed; the message names the namespace and the field."""


class SerializationError(TierCacheError):
    """A value cannot be encoded, or stored bytes cannot be decoded (corrupt, unknown format)."""


class IntegrityError(SerializationError):
    """Stored pickle bytes are unsigned or their HMAC does not match: they are never unpickled."""


class L2Error(TierCacheError):
    """The shared tier failed (connection refused, timeout, server error) or its circuit is open."""


class CircuitOpenError(L2Error):
    """The L2 circuit breaker is open: the call was not attempted."""


class MissingExtraError(TierCacheError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it (for instance
    `pip install "pytiercache[server]"`)."""

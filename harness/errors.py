"""Exceptions say which side failed: the harness and its environment, or the system under test."""

from __future__ import annotations


class EcholabError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(EcholabError):
    """The user's options are wrong (a malformed --server-cmd, an unknown backend)."""


class BackendUnavailableError(EcholabError):
    """The environment cannot provide a backend: no Docker daemon, an unreachable host, no compiler."""


class CaptureUnavailableError(BackendUnavailableError):
    """tcpdump cannot run here: not installed, or no permission to capture (root or CAP_NET_RAW)."""


class HarnessError(EcholabError):
    """The harness itself misbehaved (a probe that crashed, an unparsable reply)."""


class ServerStartError(EcholabError):
    """The system under test did not come up: it exited, or it never listened on its port."""


class ServerNeverListenedError(ServerStartError):
    """The server ran but did not listen within the readiness timeout."""

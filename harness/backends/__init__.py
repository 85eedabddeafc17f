"""Backends by name, imported lazily so ``--backend local`` never needs the Docker SDK or SSH."""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.errors import ConfigError

REGISTRY = {
    "local": "harness.backends.local:LocalBackend",
    "ssh": "harness.backends.ssh.backend:SshBackend",
    "docker": "harness.backends.docker.backend:DockerBackend",
}


def backend_class(name: str) -> type[Backend]:
    try:
        module_name, class_name = REGISTRY[name].split(":")
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; choose from {', '.join(REGISTRY)}") from None
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls

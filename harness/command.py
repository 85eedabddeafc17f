"""``--server-cmd`` and ``--client-cmd`` templates: any echo server or client as the system under test.

A template is split like a shell would (``shlex``) but never run through one: each word is filled
in with its placeholders ({port}, {backlog}, {host}) and handed to the backend as argv.
"""

from __future__ import annotations

import shlex
import string
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from harness.errors import ConfigError

EXAMPLE = "--server-cmd './a.out --port {port} --backlog {backlog}'"
CLIENT_EXAMPLE = "--client-cmd './client {host} {port}'"
LAB_ADDRESS = ("127.0.0.1", 8888)  # where the lab's client connects when its address is hard-coded
C = TypeVar("C", bound="Command")


@dataclass(frozen=True)
class Command:
    """A parsed template: its words, and which placeholders it uses."""

    template: str
    words: tuple[str, ...]

    OPTION: ClassVar[str] = "--server-cmd"
    FIELDS: ClassVar[tuple[str, ...]] = ("port", "backlog", "host")
    EXAMPLE: ClassVar[str] = EXAMPLE

    @classmethod
    def parse(cls: type[C], template: str) -> C:
        """Validate once, at start-up, so a typo is one clear line and not a failure per test."""
        option, example = cls.OPTION, cls.EXAMPLE
        try:
            words = tuple(shlex.split(template))
        except ValueError as exc:
            raise ConfigError(f"{option} {template!r}: {exc} (quote it as in {example})") from None
        if not words:
            raise ConfigError(f"{option} is empty; for example {example}")
        for word in words:
            try:
                parsed = list(string.Formatter().parse(word))
            except ValueError as exc:
                raise ConfigError(f"{option} {template!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
            for _, name, spec, conversion in parsed:
                if name is not None and (name not in cls.FIELDS or spec or conversion):
                    raise ConfigError(
                        f"{option} {template!r}: unknown placeholder {{{name}}}; "
                        f"use {', '.join('{' + f + '}' for f in cls.FIELDS)}"
                    )
        command = cls(template=template, words=words)
        command.check()
        return command

    def check(self) -> None:
        """What a template of this kind must say."""

    def uses(self, field: str) -> bool:
        return any("{" + field + "}" in word for word in self.words)

    def fill(self, **values: object) -> list[str]:
        return [word.format(**values) for word in self.words]


@dataclass(frozen=True)
class ServerCommand(Command):
    def check(self) -> None:
        if not self.uses("port"):
            raise ConfigError(
                f"--server-cmd {self.template!r} has no {{port}}: the harness picks a free port per test; "
                f"for example {EXAMPLE}"
            )

    @property
    def takes_backlog(self) -> bool:
        return self.uses("backlog")

    def argv(self, *, port: int, backlog: int, host: str = "0.0.0.0") -> list[str]:
        return self.fill(port=port, backlog=backlog, host=host)


@dataclass(frozen=True)
class ClientCommand(Command):
    """A client under test. Without {host} it connects to 127.0.0.1 (the lab's hard-coded address),
    so its server runs on the client's own host; without {port}, to port 8888."""

    OPTION: ClassVar[str] = "--client-cmd"
    FIELDS: ClassVar[tuple[str, ...]] = ("host", "port")
    EXAMPLE: ClassVar[str] = CLIENT_EXAMPLE

    @property
    def hard_coded_host(self) -> bool:
        return not self.uses("host")

    @property
    def hard_coded_port(self) -> bool:
        return not self.uses("port")

    def argv(self, *, host: str, port: int) -> list[str]:
        return self.fill(host=host, port=port)

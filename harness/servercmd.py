"""``--server-cmd`` templates: any echo server as the system under test.

A template is split like a shell would (``shlex``) but never run through one: each word is filled
in with ``{port}``, ``{backlog}`` and ``{host}`` and handed to the backend as argv.
"""

from __future__ import annotations

import shlex
import string
from dataclasses import dataclass

from harness.errors import ConfigError

FIELDS = ("port", "backlog", "host")
EXAMPLE = "--server-cmd './a.out --port {port} --backlog {backlog}'"


@dataclass(frozen=True)
class ServerCommand:
    template: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> ServerCommand:
        """Validate once, at start-up, so a typo is one clear line and not a failure per test."""
        try:
            words = tuple(shlex.split(template))
        except ValueError as exc:
            raise ConfigError(f"--server-cmd {template!r}: {exc} (quote it as in {EXAMPLE})") from None
        if not words:
            raise ConfigError(f"--server-cmd is empty; for example {EXAMPLE}")
        used = set()
        for word in words:
            try:
                parsed = list(string.Formatter().parse(word))
            except ValueError as exc:
                raise ConfigError(f"--server-cmd {template!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
            for _, name, spec, conversion in parsed:
                if name is None:
                    continue
                if name not in FIELDS or spec or conversion:
                    raise ConfigError(
                        f"--server-cmd {template!r}: unknown placeholder {{{name}}}; "
                        f"use {', '.join('{' + f + '}' for f in FIELDS)}"
                    )
                used.add(name)
        if "port" not in used:
            raise ConfigError(
                f"--server-cmd {template!r} has no {{port}}: the harness picks a free port per test; "
                f"for example {EXAMPLE}"
            )
        return cls(template=template, words=words)

    @property
    def takes_backlog(self) -> bool:
        return any("{backlog}" in word for word in self.words)

    def argv(self, *, port: int, backlog: int, host: str = "0.0.0.0") -> list[str]:
        return [word.format(port=port, backlog=backlog, host=host) for word in self.words]

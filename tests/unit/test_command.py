"""--server-cmd templates: parsed once, filled per test, every mistake a one-line ConfigError."""

from __future__ import annotations

import pytest

from harness.command import ServerCommand
from harness.errors import ConfigError


def test_fills_port_and_backlog_into_argv_words():
    command = ServerCommand.parse("./a.out --port {port} --backlog={backlog} 'two words'")
    assert command.argv(port=4000, backlog=5) == ["./a.out", "--port", "4000", "--backlog=5", "two words"]
    assert command.takes_backlog


def test_shell_metacharacters_stay_literal_words():
    command = ServerCommand.parse("srv --port {port} ';' '$(rm -rf /)' '|'")
    assert command.argv(port=1, backlog=3)[3:] == [";", "$(rm -rf /)", "|"]


def test_without_backlog_placeholder_the_server_chooses():
    assert not ServerCommand.parse("srv {port}").takes_backlog


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("", "is empty"),
        ("./srv --port 8888", "has no {port}"),
        ("./srv --port {prot}", "unknown placeholder {prot}"),
        ("./srv --port {port:>5}", "unknown placeholder {port}"),
        ("./srv --port {port", "expected '}'"),
        ("./srv 'unterminated {port}", "No closing quotation"),
    ],
)
def test_malformed_templates_are_one_line_errors(template, complaint):
    with pytest.raises(ConfigError) as caught:
        ServerCommand.parse(template)
    message = str(caught.value)
    assert complaint in message
    assert "\n" not in message

"""Every remote command is argv: whatever an option or a file name holds reaches the Pi literally,
never interpreted by a shell on the way."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.ssh.backend import SshBackend
from harness.backends.ssh.host import SshHost
from harness.options import Options

from .standin import ALIAS, ROOT, Standin, run_suite

# Each would run `touch` somewhere if any shell took it apart; spaces, quotes, globs and empties too.
HOSTILE = [
    "two words",
    "it's",
    '"double"',
    "$(touch /tmp/pwned-dollar)",
    "`touch /tmp/pwned-backtick`",
    "; touch /tmp/pwned-semicolon",
    "| touch /tmp/pwned-pipe",
    "*",
    "$HOME",
    "back\\slash",
    "new\nline\ttab",
    "",
    "ශ්‍රී ලංකා",
]
ECHO_ARGS = "import json, sys; print(json.dumps(sys.argv[1:]))"


def assert_nothing_touched(standin: Standin) -> None:
    touched = standin.exec(["find", "/tmp", "/home/pi", "-maxdepth", "1", "-name", "pwned*"])
    assert touched == "", f"a shell ran part of an argument on the Pi: {touched}"


@pytest.fixture
def pi(clean_standin: Standin) -> Iterator[SshHost]:
    backend = SshBackend.create(Options(backends=("ssh",), ssh_host=ALIAS, ssh_config=str(clean_standin.config)))
    try:
        assert isinstance(backend.server_host, SshHost)
        yield backend.server_host
    finally:
        backend.close()


def test_run_passes_argv_literally(pi: SshHost, clean_standin: Standin) -> None:
    done = pi.run(["python3", "-c", ECHO_ARGS, *HOSTILE])
    assert done.returncode == 0 and json.loads(done.text) == HOSTILE, (done.text, done.stderr)
    assert_nothing_touched(clean_standin)


def test_spawn_passes_argv_and_environment_literally(pi: SshHost, clean_standin: Standin) -> None:
    process = pi.spawn(["python3", "-c", ECHO_ARGS + "; import os; print(os.environ['ODD'])", *HOSTILE],
                       env={"ODD": "$(touch /tmp/pwned-env) 'x'"})  # fmt: skip
    assert process.wait(20.0) == 0, process.output()
    assert process.output() == [json.dumps(HOSTILE), "$(touch /tmp/pwned-env) 'x'"]
    assert_nothing_touched(clean_standin)


@pytest.fixture
def odd_server(clean_standin: Standin) -> Iterator[tuple[str, Path]]:
    """The reference Python server behind a recorder of its argv, in a directory of the pi user's home
    whose name has spaces, quotes and a command substitution; its path relative to that home."""
    relative = 'echo lab\'s "$(touch pwned-dir)" `x`'
    home = Path("/home/pi") / relative
    recorder = (
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        "with open(os.path.join(here, 'argv.json'), 'w') as f:\n"
        "    json.dump(sys.argv[1:], f)\n"
        "os.execv(sys.executable, [sys.executable, os.path.join(here, 'server.py')] + sys.argv[1:3])\n"
    )
    clean_standin.exec(["mkdir", "-p", str(home)], user="pi")
    clean_standin.exec(["tee", str(home / "server.py")], user="pi", input=(ROOT / "echo" / "server.py").read_bytes())
    clean_standin.exec(["tee", str(home / "record")], user="pi", input=recorder.encode())
    clean_standin.exec(["chmod", "+x", str(home / "record")], user="pi")
    try:
        yield f"{relative}/record", home
    finally:
        clean_standin.exec(["rm", "-rf", str(home)])


def test_server_cmd_path_and_arguments_reach_the_pi_literally(
    odd_server: tuple[str, Path], clean_standin: Standin
) -> None:
    program, home = odd_server
    marker = 'it\'s "$(touch /tmp/pwned-marker)" `touch pwned-tick`; touch pwned-semi & $HOME *'
    # Relative to the pi user's home: that is the directory --server-cmd programs start in.
    template = shlex.join([program, "--port", "PORT", "--marker", marker]).replace("PORT", "{port}")
    done = run_suite("-q", "-k", "hello_sri_lanka", "--backend", "ssh", "--ssh-host", ALIAS,
                     "--ssh-config", str(clean_standin.config), "--server-cmd", template)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    argv = json.loads(clean_standin.exec(["cat", str(home / "argv.json")]))
    assert argv[0] == "--port" and argv[1].isdigit() and argv[2:] == ["--marker", marker], argv
    assert_nothing_touched(clean_standin)

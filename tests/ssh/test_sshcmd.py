"""How the SSH backend reads ssh's config and words ssh's failures; ``ssh -G`` only, no connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.ssh.backend import SshBackend
from harness.backends.ssh.connection import Connection, Destination, explain_failure, peer_address, resolve
from harness.errors import BackendUnavailableError
from harness.options import Options


@pytest.fixture
def ssh_config(tmp_path: Path):
    def write(text: str, name: str = "ssh_config") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def test_no_user_configured_means_pi_not_the_login_name(ssh_config) -> None:
    # ssh -G alone would print the local login name here.
    assert resolve("raspberrypi.local", config=ssh_config("Host other\n  User alice\n")).user == "pi"


def test_user_configured_for_the_host_is_used_even_when_it_is_the_login_name(ssh_config) -> None:
    import getpass

    me = getpass.getuser()
    config = ssh_config(f"Host raspberrypi.local\n  User {me}\n")
    assert resolve("raspberrypi.local", config=config).user == me


def test_user_from_a_catch_all_host_block_counts_as_configured(ssh_config) -> None:
    assert resolve("lab-pi", config=ssh_config("Host *\n  User student\n")).user == "student"


def test_user_given_wins_over_the_config_and_the_destination(ssh_config) -> None:
    config = ssh_config("Host lab-pi\n  User student\n")
    assert resolve("lab-pi", user="pi", config=config).user == "pi"
    assert resolve("bob@lab-pi", config=config).user == "bob"
    assert resolve("bob@lab-pi", user="pi", config=config).user == "pi"


def test_hostname_and_port_come_from_the_config(ssh_config) -> None:
    config = ssh_config("Host lab-pi\n  HostName 192.0.2.7\n  Port 2222\n")
    dest = resolve("lab-pi", config=config)
    assert (dest.hostname, dest.effective_port, dest.label) == ("192.0.2.7", 2222, "pi@lab-pi:2222")
    assert resolve("lab-pi", port=22, config=config).label == "pi@lab-pi"


def test_config_in_a_directory_with_spaces(ssh_config, tmp_path: Path) -> None:
    odd = tmp_path / "my configs"
    odd.mkdir()
    (odd / "pi config").write_text("Host lab-pi\n  User student\n")
    assert resolve("lab-pi", config=str(odd / "pi config")).user == "student"


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"^--ssh-config .*/nowhere: no such file$"):
        resolve("lab-pi", config=str(tmp_path / "nowhere"))


def test_test_ids_name_user_host_and_a_port_other_than_22(ssh_config) -> None:
    config = ssh_config("Host odd\n  Port 2200\n")
    describe = SshBackend.describe_target
    assert describe(Options(ssh_host="raspberrypi.local", ssh_config=config)) == "ssh://pi@raspberrypi.local"
    assert describe(Options(ssh_host="raspberrypi.local", ssh_user="lab", ssh_port=2222, ssh_config=config)) == (
        "ssh://lab@raspberrypi.local:2222"
    )
    assert describe(Options(ssh_host="odd", ssh_config=config)) == "ssh://pi@odd:2200"
    assert describe(Options()) == "ssh://no-host"


def test_remote_argv_is_quoted_once_for_the_remote_shell(ssh_config) -> None:
    connection = Connection(resolve("lab-pi", config=ssh_config("")))
    try:
        argv = connection.argv(["printf", "%s\n", "a b", "$(id)", "it's"])
    finally:
        connection.close()
    assert argv[-2:] == ["lab-pi", "printf '%s\n' 'a b' '$(id)' 'it'\"'\"'s'"]
    assert "BatchMode=yes" in argv and argv[argv.index("-l") + 1] == "pi"


DEST = Destination(host="raspberrypi.local", user="pi", port=None, config=None, hostname="raspberrypi.local")


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("pi@192.0.2.7: Permission denied (publickey).", "authentication refused by pi@raspberrypi.local"),
        ("ssh: connect to host 192.0.2.7 port 22: No route to host", "host unreachable: pi@raspberrypi.local"),
        ("ssh: connect to host 192.0.2.7 port 22: Connection refused", "host unreachable: pi@raspberrypi.local"),
        ("ssh: connect to host 192.0.2.7 port 22: Connection timed out", "host unreachable: pi@raspberrypi.local"),
        (
            "ssh: Could not resolve hostname raspberrypi.local: Name or service not known",
            "cannot resolve raspberrypi.local (DNS or mDNS failure)",
        ),
        (
            "No ED25519 host key is known for raspberrypi.local and you have requested strict checking.\n"
            "Host key verification failed.",
            "host key for raspberrypi.local is not known",
        ),
        ("kex_exchange_identification: read: Connection reset by peer", "ssh to pi@raspberrypi.local"),
    ],
)
def test_ssh_failures_are_named_in_one_line(stderr: str, expected: str) -> None:
    line = explain_failure(DEST, stderr)
    assert line.startswith(expected) and "\n" not in line, line


def test_changed_host_key_says_how_to_remove_the_old_one() -> None:
    stderr = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Offending ED25519 key in /home/me/.ssh/known_hosts:3\n"
        "  remove with:\n"
        '  ssh-keygen -f "/home/me/.ssh/known_hosts" -R "raspberrypi.local"\n'
        "Host key for raspberrypi.local has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    line = explain_failure(DEST, stderr)
    assert line.startswith("host key for raspberrypi.local has CHANGED") and "\n" not in line, line
    assert line.endswith(
        'remove the old key with ssh-keygen -f "/home/me/.ssh/known_hosts" -R "raspberrypi.local" '
        "if the change is expected"
    ), line


@pytest.mark.parametrize(
    ("setting", "passed"), [("", ["-o", "StrictHostKeyChecking=accept-new"]), ("yes", []), ("no", [])]
)
def test_accept_new_only_where_ssh_would_ask(ssh_config, setting: str, passed: list[str]) -> None:
    # In batch mode ssh cannot ask, so its default becomes accept-new; a policy the user set stays theirs.
    text = f"Host lab-pi\n  StrictHostKeyChecking {setting}\n" if setting else ""
    connection = Connection(resolve("lab-pi", config=ssh_config(text, name=f"config-{setting or 'default'}")))
    try:
        assert connection.host_key_args() == passed
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("seen", "reachable"),
    [("192.0.2.7", "192.0.2.7"), ("::ffff:192.0.2.7", "192.0.2.7"), ("2001:db8::7", "2001:db8::7"),
     ("fe80::1", None), ("", None)],
)  # fmt: skip
def test_the_address_ssh_reached_as_a_peer_can_use_it(seen: str, reachable: str | None) -> None:
    assert peer_address(seen) == reachable

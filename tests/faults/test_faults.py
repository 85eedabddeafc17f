"""Faults during a connection, on the docker backend: the real kernel's answers, judged from both ends.

The server container frozen (``docker pause``), the link cut (every packet dropped both ways) and
healed or not, the server process killed mid-echo. What TCP does about each (TCP-FACTS, "On a
lossy or slow link"): a frozen process's kernel still completes handshakes and buffers bytes; a
partition shows as retransmissions and, if it lasts, a timeout on the sender, never a refusal or a
reset; a process killed with bytes unread makes its kernel reset the connection, else close it.
"""

from __future__ import annotations

import signal
import time

from harness.checks import random_bytes
from harness.wait import until
from harness.wire.pcap import FIN, RST
from harness.wire.table import connection_table, retransmissions
from tests.faults.conftest import SLOW

PAUSE = 2.0  # seconds the server container stays frozen
CUT = 3.0  # seconds a healed partition lasts
MIB = 1 << 20


def echo_of_a_mebibyte(client, server, *, timeout: float, idle: float):
    """A 1 MiB echo, written and read at once, started in the background on the client host."""
    return client.start_probe(
        "exchange",
        host=server.address,
        port=server.port,
        messages=[random_bytes(MIB, seed=13)],
        lockstep=False,
        timeout=timeout,
        idle=idle,
    )


def exact(result) -> bool:
    """Every byte echoed, in order (the probe's comparison of the whole stream)."""
    return result.get("first_diff") is None and result.get("received_len") == result.get("expected_len")


def started_flowing(server) -> bool:
    """Whether an established connection of the server's holds bytes in its kernel's queues (the
    echo is under way): /proc/net/tcp's tx_queue:rx_queue, read in the server's namespace."""
    for line in server.host.read_proc_net().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 4 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == server.port:
            tx, rx = (int(n, 16) for n in fields[4].split(":"))
            if tx or rx:
                return True
    return False


def test_paused_server_refuses_nothing_and_echoes_everything_after_resume(docker_backend, link, faulty_server):
    server, client = faulty_server, docker_backend.client_host
    with link.paused(server.host):
        probe = client.start_probe(
            "concurrent", host=server.address, port=server.port, clients=3, timeout=PAUSE + 20, idle=PAUSE + 15
        )
        # Frozen: its kernel still completes the three handshakes into the accept queue (ss Recv-Q).
        rows = until(
            lambda: [row for row in server.host.listen_detail(server.port) or [] if row.queued >= 3],
            timeout=10.0,
            what="three connections queued in the paused server's kernel",
        )
        time.sleep(PAUSE)  # the fault itself: the container stays frozen this long
        assert probe.poll() is None, f"the probe ended while the server was frozen: {probe.output()[-3:]}"
    result = client.finish_probe("concurrent", probe, timeout=PAUSE + 30)
    assert result["opened"] == 3 and result["outcomes"] == ["ok"] * 3, (
        f"paused with 3 clients queued ({rows[0].queued} in its accept queue), resumed: expected nothing refused "
        f"and every echo after the resume; got {result}\n{server.evidence()}"
    )


def test_partition_in_the_middle_of_a_mebibyte_echo_heals_byte_exact(docker_backend, link, faulty_server):
    server, client = faulty_server, docker_backend.client_host
    with link.shaped(SLOW):
        probe = echo_of_a_mebibyte(client, server, timeout=60.0, idle=CUT + 10)
        until(lambda: started_flowing(server), timeout=10.0, what="the echo under way")
        cut_at = time.monotonic()
        with link.partitioned():
            time.sleep(CUT)  # the fault itself: every packet dropped both ways this long
            assert probe.poll() is None, f"the echo ended during the partition: {probe.output()[-3:]}"
        result = client.finish_probe("exchange", probe, timeout=60.0)
    conn = server.capture.connection(result["local_port"])
    table = connection_table(conn) if conn is not None else server.capture.table()
    assert exact(result) and result["end"] == "eof", (
        f"a 1 MiB echo cut for {CUT:g} s and healed must complete byte-exact: {result}\n{server.evidence()}"
    )
    assert time.monotonic() - cut_at >= CUT
    resent = retransmissions(conn.segments, server.port) if conn is not None else 0
    assert resent > 0, f"a {CUT:g} s partition mid-echo shows no retransmission on the wire:\n{table}"


def test_partition_that_does_not_heal_is_a_timeout_not_a_refusal_or_reset(docker_backend, link, faulty_server):
    server, client = faulty_server, docker_backend.client_host
    with link.shaped(SLOW):
        probe = echo_of_a_mebibyte(client, server, timeout=30.0, idle=2.0)
        until(lambda: started_flowing(server), timeout=10.0, what="the echo under way")
        with link.partitioned():
            during = client.finish_probe("exchange", probe, timeout=40.0)
            fresh = client.probe("connect", host=server.address, port=server.port, timeout=2.0)
    assert during["end"] == "timeout" and not exact(during), (
        f"mid-echo, the link cut for good: the client must see its reads time out (no byte for the idle limit), "
        f"neither a refusal nor a reset; got end={during['end']!r}, {during.get('write_error')}\n{server.evidence()}"
    )
    assert fresh["outcome"] == "timeout", (
        f"a new connect across the cut link: expected a timeout (SYNs unanswered), not {fresh['outcome']!r}"
    )
    conn = server.capture.connection(during["local_port"])
    assert conn is not None and not any(seg.flags & RST for seg in conn.segments), (
        f"a partition resets nothing:\n{connection_table(conn) if conn else server.capture.table()}"
    )


def test_server_killed_mid_echo_is_seen_as_its_kernels_reset_or_fin(docker_backend, link, faulty_server):
    server, client = faulty_server, docker_backend.client_host
    with link.shaped(SLOW):
        probe = echo_of_a_mebibyte(client, server, timeout=30.0, idle=5.0)
        until(lambda: started_flowing(server), timeout=10.0, what="the echo under way")
        server.process.signal(signal.SIGKILL)
        result = client.finish_probe("exchange", probe, timeout=40.0)
    conn = server.capture.connection(result["local_port"])
    assert conn is not None, server.capture.table()
    table = connection_table(conn)
    ending = next((seg for seg in conn.segments if seg.src[1] == server.port and seg.flags & (RST | FIN)), None)
    assert ending is not None, f"the server's kernel closed the socket of a killed process: no RST or FIN\n{table}"
    # With the client's bytes still unread in its buffer, the kernel resets (RFC 2525 2.17).
    # The reset is reported by whichever call meets it first: the writer thread's send (ECONNRESET,
    # or EPIPE once the error was taken) or the reader's recv; a recv after the send took it reads EOF.
    seen = result["end"] if result["end"] != "open" else result.get("write_error")
    if ending.flags & RST:
        assert result["end"] == "reset" or result.get("write_error") in ("EPIPE", "ECONNRESET"), (
            f"the server's kernel reset the connection (frame {ending.no}): the client must see a reset, "
            f"got end={result['end']!r}, write error {result.get('write_error')}\n{table}"
        )
    else:
        assert seen == "eof", f"the server's kernel sent FIN (frame {ending.no}): the client must see EOF, got {seen}"
    assert not exact(result), f"a killed server cannot have echoed all 1 MiB: {result}"

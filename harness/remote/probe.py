"""Socket probes that run on the client host: one JSON request on stdin, one JSON result on stdout.

The behaviour suite never opens sockets itself; it asks the backend's client host to run this file
(a local process, a client container, the workstation in front of a Pi), so the traffic it judges
crosses the same path as the lab's client. Standard library only, Python 3.9+.

Usage: ``python3 probe.py < request.json`` or ``python3 probe.py JSON``, the request being
``{"op": NAME, ...params}``; the result is the last line printed.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import json
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

CONTEXT = 16  # bytes of evidence shown either side of a difference
SMALL = 4096  # results carry the received bytes themselves up to this size
TCP_SYNCNT = getattr(socket, "TCP_SYNCNT", 7)
TCP_INFO = getattr(socket, "TCP_INFO", 11)
#: How long to wait for bytes that are owed, counted from the last byte received: at least
#: IDLE_FLOOR seconds (a loaded machine may stall a correct server that long), and RTT_FACTOR times
#: the connection's round trip (its connect() time), so a Pi over Wi-Fi is not held to loopback's.
IDLE_FLOOR = 0.5
RTT_FACTOR = 50

Result = Dict[str, Any]


def make_payload(spec: Dict[str, Any]) -> bytes:
    """Payloads travel as specs, not bytes: ``{"hex": ...}``, ``{"text": ...}``, ``{"random": n, "seed": s}``."""
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if "text" in spec:
        return str(spec["text"]).encode("utf-8")
    if "random" in spec:
        rng = random.Random(spec.get("seed", 0))
        return rng.randbytes(int(spec["random"]))
    raise ValueError(f"unknown payload spec {spec!r}")


def first_difference(expected: bytes, got: bytes) -> Optional[int]:
    """Offset of the first byte that differs, the shorter length if one is a prefix, None if equal."""
    if expected == got:
        return None
    limit = min(len(expected), len(got))
    lo, hi = 0, limit
    while lo < hi:  # binary search on prefix equality: cheap even for megabytes
        mid = (lo + hi) // 2
        if expected[lo : mid + 1] == got[lo : mid + 1]:
            lo = mid + 1
        else:
            hi = mid
    return lo


def compare(expected: bytes, got: bytes) -> Result:
    offset = first_difference(expected, got)
    out: Result = {"expected_len": len(expected), "received_len": len(got), "first_diff": offset}
    if offset is not None:
        start = max(0, offset - CONTEXT)
        out["context_start"] = start
        out["expected_at"] = expected[start : offset + CONTEXT].hex()
        out["got_at"] = got[start : offset + CONTEXT].hex()
    if len(got) <= SMALL:
        out["received"] = got.hex()
    return out


def errno_name(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timeout"
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, str(exc)) if code else type(exc).__name__


def idle_limit(rtt: float, floor: float = IDLE_FLOOR) -> float:
    return max(floor, RTT_FACTOR * rtt)


def open_socket(
    host: str, port: int, timeout: float, syncnt: Optional[int] = None, ports: Optional[List[int]] = None
) -> socket.socket:
    """A connected socket; its local port is appended to ``ports`` even when the connect fails,
    so the harness can find the connection's packets in a capture."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if ports is not None:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        ports.append(sock.getsockname()[1])
    if syncnt is not None:
        # One SYN retransmission at most: a dropped SYN must not be retried for seconds (TCP-FACTS).
        sock.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, syncnt)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Receiver:
    """What comes back on a socket, compared with what is expected as it arrives.

    ``read`` stops at the first byte that differs ("differs"; a byte beyond the expected ones
    differs too), at EOF ("eof"), a reset ("reset"), or when nothing has arrived for ``idle``
    seconds since the last byte ("timeout"), and never later than ``deadline``: a wrong echo is
    known at once and a missing byte costs one idle limit, not a fixed long timeout.
    """

    def __init__(self, sock: socket.socket, expected: bytes, idle: float, deadline: float) -> None:
        self.sock = sock
        self.expected = expected
        self.idle = idle
        self.deadline = deadline
        self.got = bytearray()

    def read(self, want: Optional[int] = None) -> str:
        """Read until ``want`` bytes in all ("open") or one of the ends above."""
        while want is None or len(self.got) < want:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            self.sock.settimeout(min(self.idle, left))
            try:
                chunk = self.sock.recv(65536 if want is None else min(65536, want - len(self.got)))
            except socket.timeout:
                return "timeout"
            except ConnectionResetError:
                return "reset"
            except OSError as exc:
                return errno_name(exc)
            if not chunk:
                return "eof"
            start = len(self.got)
            self.got.extend(chunk)
            if self.expected[start : start + len(chunk)] != chunk:
                return "differs"
        return "open"


def connected(host: str, port: int, timeout: float, ports: List[int]) -> Tuple[socket.socket, float]:
    """A connected socket and its connect() time: the round trip to the server's kernel."""
    started = time.monotonic()
    sock = open_socket(host, port, timeout, ports=ports)
    return sock, time.monotonic() - started


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER {1, 0}: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def op_connect(*, host: str, port: int, timeout: float = 2.0) -> Result:
    """Connect once and close: "connected", "refused", "timeout", or another errno name."""
    started = time.monotonic()
    ports: List[int] = []
    try:
        sock = open_socket(host, port, timeout, ports=ports)
    except OSError as exc:
        outcome = "refused" if isinstance(exc, ConnectionRefusedError) else errno_name(exc)
        return {"outcome": outcome, "elapsed": time.monotonic() - started, "local_port": ports[0]}
    elapsed = time.monotonic() - started
    sock.close()
    return {"outcome": "connected", "elapsed": elapsed, "local_port": ports[0]}


def op_exchange(
    *,
    host: str,
    port: int,
    messages: List[Dict[str, Any]],
    lockstep: bool = True,
    write_sizes: Optional[List[int]] = None,
    ending: str = "shutdown",
    timeout: float = 30.0,
    idle: float = IDLE_FLOOR,
) -> Result:
    """Send messages and compare everything that comes back, byte for byte, as one stream.

    ``lockstep`` waits for each message's echo before the next; otherwise a thread writes while this
    one reads, so a megabyte cannot deadlock on full buffers. ``write_sizes`` cuts the stream into
    writes of those sizes (cycled), with Nagle off, so segment boundaries differ from the messages.
    ``ending``: "shutdown" sends FIN once the echo is in and reads to the server's end, "half_close"
    sends FIN straight after the last write (the echo must still arrive in full), "close" just closes.
    Reading stops at the first wrong byte, and waits for a missing one only up to the idle limit
    (``idle`` seconds, or more on a slow path: see idle_limit); ``timeout`` bounds the whole exchange.
    """
    payloads = [make_payload(m) for m in messages]
    expected = b"".join(payloads)
    started = time.monotonic()
    ports: List[int] = []
    try:
        sock, rtt = connected(host, port, timeout, ports)
    except OSError as exc:
        return {"connected": False, "error": errno_name(exc), "expected_len": len(expected), "local_port": ports[0]}
    limit = idle_limit(rtt, idle)
    receiver = Receiver(sock, expected, limit, started + timeout)
    end = "open"
    write_error: List[str] = []
    with sock:
        if lockstep:
            owed = 0
            for payload in payloads:
                try:
                    sock.sendall(payload)
                except OSError as exc:
                    write_error.append(errno_name(exc))
                    break
                owed += len(payload)
                end = receiver.read(want=owed)
                if end != "open":
                    break
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            half_close = ending == "half_close"
            writer = threading.Thread(target=_write_all, args=(sock, expected, write_sizes, write_error, half_close))
            writer.start()
            end = receiver.read(want=None if half_close else len(expected))
            if end not in ("open", "eof") and writer.is_alive():
                # Judged already: unblock a writer the server no longer reads from; its error is ours.
                with contextlib.suppress(OSError):  # the server may have reset the connection already
                    sock.shutdown(socket.SHUT_RDWR)
                writer.join()
                write_error.clear()
            writer.join()
        if end == "open" and ending in ("shutdown", "half_close") and not write_error:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:  # reset by the server after the last byte of its echo
                end = errno_name(exc)
            else:
                end = receiver.read()  # anything extra after the echo is a difference too
    result = compare(expected, bytes(receiver.got))
    result.update(
        connected=True, end=end, elapsed=time.monotonic() - started, local_port=ports[0], rtt=rtt, idle_limit=limit
    )
    if write_error:
        result["write_error"] = write_error[0]
    return result


def _write_all(
    sock: socket.socket, data: bytes, sizes: Optional[List[int]], errors: List[str], fin: bool = False
) -> None:
    offset, i = 0, 0
    try:
        while offset < len(data):
            size = sizes[i % len(sizes)] if sizes else len(data)
            sock.sendall(data[offset : offset + size])
            offset += size
            i += 1
        if fin:
            sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        errors.append(errno_name(exc))


def op_backlog(
    *,
    host: str,
    port: int,
    limit: int = 64,
    connect_timeout: float = 0.4,
    serve_timeout: float = 5.0,
    hold: float = 0.0,
    idle: float = IDLE_FLOOR,
    syn_tries: int = 1,
) -> Result:
    """While one client is being served, connect one at a time until a connect fails.

    Then the served client leaves and each queued connection must get its echo, oldest first; a
    queued connection sends its message at once, so the kernel holds it until the server accepts.
    With ``hold``, the probe prints ``{"filled": n}`` once the queue is full and waits up to that
    many seconds for SIGUSR1, so the harness can read the server's side (ss) meanwhile.
    ``syn_tries``: SYN retransmissions per connect (TCP_SYNCNT); more on a lossy link, where a lost
    SYN is not a full queue (give ``connect_timeout`` the time: about one second per try).
    """
    resume = threading.Event()
    if hold:
        signal.signal(signal.SIGUSR1, lambda *_: resume.set())
    ports: List[int] = []
    served, rtt = connected(host, port, serve_timeout, ports)
    patience = idle_limit(rtt, idle)
    served.sendall(b"served")
    echo = Receiver(served, b"served", patience, time.monotonic() + serve_timeout)
    served_end = echo.read(want=6)
    if bytes(echo.got) != b"served":
        served.close()
        return {
            "served_echo": False,
            "served_end": served_end,
            "served_got": bytes(echo.got).hex(),
            "idle_limit": patience,
        }
    queued: List[socket.socket] = []
    stopped_by = "limit"
    timings: List[float] = []
    for i in range(limit):
        started = time.monotonic()
        try:
            sock = open_socket(host, port, connect_timeout, syncnt=syn_tries, ports=ports)
        except OSError as exc:
            stopped_by = "refused" if isinstance(exc, ConnectionRefusedError) else errno_name(exc)
            break
        timings.append(time.monotonic() - started)
        sock.sendall(b"queued-%d" % i)
        queued.append(sock)
    if hold:
        print(json.dumps({"filled": len(queued), "stopped_by": stopped_by}), flush=True)
        resume.wait(hold)
    served.close()
    order: List[Result] = []
    for i, sock in enumerate(queued):
        want = b"queued-%d" % i
        drained = Receiver(sock, want, patience, time.monotonic() + serve_timeout)
        end = drained.read(want=len(want))
        order.append({"index": i, "ok": bytes(drained.got) == want, "end": end, "got": bytes(drained.got).hex()})
        sock.close()  # nothing unread: a FIN, and no wait for the server's (half-close is judged elsewhere)
    return {
        "served_echo": True,
        "served_port": ports[0],
        "queued_ports": ports[1 : 1 + len(queued)],
        "failed_port": ports[1 + len(queued)] if stopped_by != "limit" else None,
        "completed": len(queued),
        "stopped_by": stopped_by,
        "connect_times": timings,
        "drained": order,
        "idle_limit": patience,
    }


def op_concurrent(*, host: str, port: int, clients: int, timeout: float = 5.0, idle: float = IDLE_FLOOR) -> Result:
    """Open ``clients`` connections, keep them all open, and expect an echo on each of them."""
    socks: List[socket.socket] = []
    outcomes: List[str] = []
    try:
        for i in range(clients):
            try:
                socks.append(open_socket(host, port, timeout))
            except OSError as exc:
                outcomes.append(f"connect #{i}: {errno_name(exc)}")
                break
        for i, sock in enumerate(socks):
            sock.sendall(b"client-%d" % i)
        deadline = time.monotonic() + timeout
        for i, sock in enumerate(socks):
            want = b"client-%d" % i
            echo = Receiver(sock, want, idle, deadline)
            end = echo.read(want=len(want))
            outcomes.append("ok" if bytes(echo.got) == want else f"client #{i}: got {bytes(echo.got)!r}, {end}")
    finally:
        for sock in socks:
            sock.close()
    return {"opened": len(socks), "outcomes": outcomes}


def op_abuse(*, host: str, port: int, how: str, timeout: float = 5.0, idle: float = IDLE_FLOOR) -> Result:
    """Misbehave towards the server: "reset" after reading the echo, "reset_unread" with the server
    stuck writing an echo nobody reads, "vanish" without a byte, "garbage" and close unread."""
    ports: List[int] = []
    try:
        sock, rtt = connected(host, port, timeout, ports)
    except OSError as exc:
        return {"connected": False, "error": errno_name(exc), "local_port": ports[0]}
    try:
        if how == "vanish":
            sock.close()
        elif how == "reset":
            sock.sendall(b"about to reset")
            Receiver(sock, b"about to reset", idle_limit(rtt, idle), time.monotonic() + timeout).read(want=14)
            reset(sock)
        elif how == "reset_unread":
            fill_until_stuck(sock, timeout)
            all_acknowledged(sock, idle_limit(rtt, idle))
            reset(sock)
        elif how == "garbage":
            sock.sendall(make_payload({"random": 65536, "seed": 13}))
            # Close only once some echo is waiting unread, so the close is the RST that unread data
            # makes (RFC 2525 2.17), not a FIN that merely raced the echo.
            select.select([sock], [], [], idle_limit(rtt, idle))
            all_acknowledged(sock, idle_limit(rtt, idle))
            sock.close()
        else:
            sock.close()
            raise ValueError(f"unknown abuse {how!r}")
    except OSError as exc:
        # The server's side went first: a connection queued while the server died (a C server
        # killed by SIGPIPE after the previous client's reset) is reset by its kernel mid-abuse.
        sock.close()
        return {"connected": True, "done": how, "cut_short": errno_name(exc), "local_port": ports[0]}
    return {"connected": True, "done": how, "local_port": ports[0]}


def all_acknowledged(sock: socket.socket, limit: float) -> bool:
    """Wait (up to ``limit`` s) until the server has acknowledged every segment we sent, so that our
    RST carries the very sequence number it expects next. A RST beyond it (a segment of ours lost on
    the way) only draws a challenge ACK (RFC 5961), and if that is lost too, the server's end stays
    open for good: an iterative server then never serves the next client, through no fault of its own."""
    deadline = time.monotonic() + limit
    while True:
        info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104)
        if len(info) < 28 or struct.unpack_from("I", info, 24)[0] == 0:  # tcpi_unacked: segments in flight
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


def fill_until_stuck(sock: socket.socket, timeout: float) -> int:
    """Send without reading until nothing moves: the server is then blocked writing its echo and
    still has unread data, so after our reset it reads again and writes again into a dead socket:
    EPIPE, and SIGPIPE for a server that does not ignore it (tcp_sendmsg, sk_stream_error)."""
    chunk = make_payload({"random": 65536, "seed": 11})
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            # Not writable for 50 ms: both directions' buffers are full, the server is stuck.
            if not select.select([], [sock], [], 0.05)[1]:
                break
    return sent


OPS: Dict[str, Callable[..., Result]] = {
    "connect": op_connect,
    "exchange": op_exchange,
    "backlog": op_backlog,
    "concurrent": op_concurrent,
    "abuse": op_abuse,
}


def run(request: Dict[str, Any]) -> Result:
    """``idle_floor`` and ``timeout_floor``, given to every probe on a host behind a lossy link
    (retransmission timeouts of 200 ms and more, doubling; a lost SYN costs a second), raise the
    idle limit of the probes that wait for bytes and the timeout of those that connect."""
    params = dict(request)
    op = OPS[params.pop("op")]
    accepts = inspect.signature(op).parameters
    for name, floor in (("idle", params.pop("idle_floor", None)), ("timeout", params.pop("timeout_floor", None))):
        if floor is not None and name in accepts:
            default = accepts[name].default
            params[name] = max(float(floor), float(params.get(name, default)))
    return op(**params)


def main() -> int:
    try:
        request = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
        result = run(request)
    except Exception as exc:  # reported as data: the harness turns it into an error with context
        result = {"probe_error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

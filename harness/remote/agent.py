"""The harness's agent on a host: one long-lived process that runs what the harness asks, over one stream.

    python3 agent.py

Started once per host and pytest worker (a local process, ``docker exec -i`` in a container, one
SSH session to a Pi), it replaces a process per probe and per command: requests arrive as JSON lines
on stdin, answers and events leave as JSON lines on stdout. Bytes travel base64-encoded.

    {"id": 1, "op": "run", "argv": [...], "input": B64|null, "timeout": s}
        -> {"id": 1, "status": N, "stdout": B64, "stderr": B64}
    {"id": 2, "op": "spawn", "argv": [...], "env": {...}}
        -> {"id": 2, "pid": N}, then {"proc": 2, "line": "..."} per output line, {"proc": 2, "exit": N}
    {"id": 3, "op": "signal", "proc": 2, "signum": N}      -> {"id": 3}   (the program's whole group)
    {"id": 4, "op": "probe", "request": {...}}             -> {"id": 4, "result": {...}}  (probe.py, here)
    {"id": 5, "op": "read", "paths": [...], "offset": N}   -> {"id": 5, "data": B64}     (missing files skipped)
    {"id": 5, "op": "read", "paths": [P], "offset": N, "snap": S|null}
                                                           -> {"id": 5, "data": B64, "consumed": N}  (pcaptrim.py)
    {"id": 6, "op": "mark", "address": A, "token": T, "flush": bool}
                                                           -> {"id": 6}   (a datagram to A's discard port: marker.py)
    {"id": 7, "op": "tempdir"}                             -> {"id": 7, "path": P}   (removed when the agent ends)
    {"id": 8, "op": "ping"}                                -> {"id": 8}
    {"id": 9, "op": "free_port", "pair": bool}             -> {"id": 9, "port": N}   (N+1 free too, if pair)
A request that fails answers {"id": N, "error": "...", "errno": N|null, ...}.

Probes run in a thread of this process, exactly as probe.py runs them: their sockets are opened
here, on this host. A spawned program gets its own session (so a signal reaches all it started),
stdin from /dev/null, stdout and stderr interleaved in one pipe. End of stdin is the harness's
goodbye, or its death (the stream closed): every program still running is killed with its group,
so nothing outlives the run. Standard library only, Python 3.9+.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any, BinaryIO, Dict, List, Optional

import marker  # type: ignore[import-not-found]  # its siblings: agent.py runs as a script beside them
import pcaptrim  # type: ignore[import-not-found]
import probe  # type: ignore[import-not-found]

# With util-linux's setpriv a spawned program dies with this agent even when it is SIGKILLed (the
# kernel's PR_SET_PDEATHSIG; it fires when the *thread* that forked exits, so spawns happen on the
# main thread, which lives as long as the agent).
SETPRIV = shutil.which("setpriv")
Message = Dict[str, Any]


class Agent:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._children: Dict[int, subprocess.Popen[bytes]] = {}
        self._tempdir: Optional[str] = None

    def send(self, message: Message) -> None:
        line = (json.dumps(message) + "\n").encode()
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def serve(self, requests: BinaryIO) -> None:
        for raw in iter(requests.readline, b""):
            try:
                request = json.loads(raw)
            except ValueError:
                continue  # not ours: never answered, the harness times out and says so
            if request.get("op") == "spawn":  # on this thread: see SETPRIV
                self.answer(request)
            else:
                threading.Thread(target=self.answer, args=(request,), daemon=True).start()
        self.end()

    def answer(self, request: Message) -> None:
        handler = getattr(self, f"op_{request.get('op')}", None)
        try:
            if handler is None:
                raise ValueError(f"unknown request {request.get('op')!r}")
            reply = handler(request)
        except OSError as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}", "errno": exc.errno, "strerror": exc.strerror}
            reply["filename"] = exc.filename
        except Exception as exc:  # reported as data: the harness raises it with the host's name
            reply = {"error": f"{type(exc).__name__}: {exc}", "errno": None}
        self.send({"id": request.get("id"), **reply})

    def op_spawn(self, request: Message) -> Message:
        argv: List[str] = request["argv"]
        if shutil.which(argv[0]) is None:  # setpriv would exec it: say it here, as Popen would
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
        prefix = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
        child = subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(request.get("env") or {})},
            start_new_session=True,
        )
        self._children[request["id"]] = child
        threading.Thread(target=self.relay, args=(request["id"], child), daemon=True).start()
        return {"pid": child.pid}

    def relay(self, proc: int, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        for raw in iter(child.stdout.readline, b""):
            self.send({"proc": proc, "line": raw.decode("utf-8", "replace").rstrip("\r\n")})
        child.stdout.close()
        status = child.wait()
        kill_group(child.pid, signal.SIGKILL)  # whatever the program left in its group goes too
        del self._children[proc]
        self.send({"proc": proc, "exit": status})

    def op_signal(self, request: Message) -> Message:
        child = self._children.get(request["proc"])
        if child is not None:
            kill_group(child.pid, int(request["signum"]))
        return {}

    def op_run(self, request: Message) -> Message:
        given = request.get("input")
        try:
            done = subprocess.run(
                request["argv"],
                check=False,
                input=base64.b64decode(given) if given is not None else None,
                stdin=None if given is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=float(request.get("timeout") or 60.0),
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"{request['argv'][0]} did not finish within {request.get('timeout')} s", "errno": None}
        return {"status": done.returncode, "stdout": encode(done.stdout), "stderr": encode(done.stderr)}

    def op_probe(self, request: Message) -> Message:
        try:
            result = probe.run(request["request"])
        except Exception as exc:  # as probe.py's main reports it
            result = {"probe_error": f"{type(exc).__name__}: {exc}"}
        return {"result": result}

    def op_read(self, request: Message) -> Message:
        if "snap" in request:  # a pcap being written: at most pcaptrim.LIMIT bytes of it, maybe cut
            snap = request["snap"]
            path, offset = request["paths"][0], int(request.get("offset") or 0)
            data, consumed = pcaptrim.read(path, offset, int(snap) if snap is not None else None)
            return {"data": encode(data), "consumed": consumed}
        data = b""
        for path in request["paths"]:
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as file:
                file.seek(int(request.get("offset") or 0))
                data += file.read()
        return {"data": encode(data)}

    def op_mark(self, request: Message) -> Message:
        marker.send(request["address"], request["token"].encode(), bool(request.get("flush")))
        return {}

    def op_tempdir(self, request: Message) -> Message:
        with self._lock:
            if self._tempdir is None:
                self._tempdir = tempfile.mkdtemp(prefix="echolab-agent-")
        return {"path": self._tempdir}

    def op_ping(self, request: Message) -> Message:
        return {}

    def op_free_port(self, request: Message) -> Message:
        """A port bind(0) hands out here (at random: xdist workers rarely meet); with ``pair``, one whose
        successor is free as well (a scripted server's control port)."""
        for _ in range(100):
            with socket.socket() as sock:
                sock.bind(("", 0))
                port = sock.getsockname()[1]
            if not request.get("pair"):
                return {"port": port}
            with socket.socket() as other:
                try:
                    other.bind(("", port + 1))
                except OSError:
                    continue
            return {"port": port}
        raise OSError(errno.EADDRINUSE, "no free port whose successor is free in 100 tries")

    def end(self) -> None:
        """The harness is done or gone: kill what still runs, remove what was made."""
        for child in list(self._children.values()):
            kill_group(child.pid, signal.SIGKILL)
        if self._tempdir is not None:
            for child in list(self._children.values()):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(5.0)  # a tcpdump may still be writing into it
            shutil.rmtree(self._tempdir, ignore_errors=True)


def kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        os.killpg(pgid, signum)


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the harness's terminal is the harness's to handle
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Nothing else may write to the protocol stream: stray prints go to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    agent = Agent(out)
    agent.send({"ready": os.getpid(), "python": list(sys.version_info[:3])})
    agent.serve(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())

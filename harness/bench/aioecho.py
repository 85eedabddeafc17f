"""asyncio Protocol echo servers on the standard loop or uvloop: the bench's yardsticks for the
concurrent reference server (uvloop is a yardstick only; echo/ stays standard library).

    python -m harness.bench.aioecho --loop uvloop --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import cast


class Echo(asyncio.Protocol):
    """Writes back whatever arrives; after the client's FIN, closes once the echo is flushed. Like the
    reference servers it stops reading a client whose echo is backed up (flow control), or a bulk
    stream would pile up in its write buffer."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, only alike

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # asyncio then closes the transport after its buffer is written


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)
    print(f"Listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.bench.aioecho", description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(serve(args.port))
        else:
            asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmarks' SMTP sink: a minimal asyncio server on 127.0.0.1 in its own process.

It only answers and counts, so it is never the bottleneck the way aiosmtpd is: 250 to every
command, 354 to DATA, then the body is read to its final dot and counted. It replies to a
pipelined group in one go: it drains only when nothing more from the client is buffered, and
always before reading a body. `Sink(pipelining=False)` leaves PIPELINING out of the EHLO reply,
as a relay without it does.

Counted across all connections: messages received, and distinct recipients (the last RCPT
before each DATA) since the process started; `restart()` starts both afresh. The scripts beside
it import it as `from rawsink import Sink`: `python benchmarks/X.py` puts this folder on
sys.path.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import TYPE_CHECKING

from digest.smtpd.sink import free_port

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized


async def _serve(
    port: int, total: Synchronized[int], distinct: Synchronized[int], pipelining: bool
) -> None:
    offer = b"250-PIPELINING\r\n" if pipelining else b""
    seen: set[bytes] = set()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        rcpt = b""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n" + offer + b"250-8BITMIME\r\n250 SIZE 0\r\n")
                elif verb == b"RCPT":
                    rcpt = line[8:].strip()
                    writer.write(b"250 OK\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()  # the client sends the body only after the 354
                    await reader.readuntil(b"\r\n.\r\n")
                    with total.get_lock():
                        total.value += 1
                    if rcpt not in seen:
                        seen.add(rcpt)
                        with distinct.get_lock():
                            distinct.value += 1
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 OK\r\n")
                if not reader._buffer:  # type: ignore[attr-defined]
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=256)
    async with server:
        await server.serve_forever()


def _sink_main(
    port: int, total: Synchronized[int], distinct: Synchronized[int], pipelining: bool
) -> None:
    asyncio.run(_serve(port, total, distinct, pipelining))


class Sink:
    """The sink's process, started on entering, terminated on leaving; counts shared with it."""

    def __init__(self, *, pipelining: bool = True) -> None:
        self.port = free_port()
        self.pipelining = pipelining
        self._total = multiprocessing.Value("q", 0)
        self._distinct = multiprocessing.Value("q", 0)
        self._process = self._new_process()

    def _new_process(self) -> multiprocessing.Process:
        args = (self.port, self._total, self._distinct, self.pipelining)
        return multiprocessing.Process(target=_sink_main, args=args, daemon=True)

    def __enter__(self) -> Sink:
        self._process.start()
        time.sleep(0.3)  # until it listens
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join()

    def restart(self) -> None:
        """A fresh process on the same port: counts and the set of seen recipients start at 0."""
        self.__exit__()
        self._total.value = self._distinct.value = 0
        self._process = self._new_process()
        self.__enter__()

    def counts(self) -> tuple[int, int]:
        """Messages received and distinct recipients, since the process started."""
        return int(self._total.value), int(self._distinct.value)

#!/usr/bin/env python3
"""tcp_proxy: a TCP proxy on 127.0.0.1 whose link a test can cut and restore.

The chaos suite (tests/e2e_chaos.sh) puts it between the agent and the core, to cut the link
for seconds at a time the way a network does: every connection dies at once and new ones are
refused until the link is back.

Usage: tcp_proxy.py --target PORT [--port N]

It prints its port on standard output once it accepts connections. Control by signal:
  SIGUSR1   cut: close every connection (reset, as a dead link looks) and refuse new ones
  SIGUSR2   resume: pass connections again
  SIGTERM   stop
One line per event goes to standard error. Python standard library only.
"""

import argparse
import asyncio
import signal
import socket
import struct
import sys


class Proxy:
    def __init__(self, target):
        self.target = target
        self.cut = False
        self.writers = set()  # every open socket, both sides
        self.cuts = 0
        self.refused = 0

    def say(self, text):
        sys.stderr.write("tcp_proxy: %s\n" % text)
        sys.stderr.flush()

    @staticmethod
    def reset(writer):
        # SO_LINGER 0: the close sends a reset, so neither peer waits for a goodbye.
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()

    def do_cut(self):
        self.cut = True
        self.cuts += 1
        count = len(self.writers)
        for writer in list(self.writers):
            self.reset(writer)
        self.writers.clear()
        self.say("cut (%d sockets closed)" % count)

    def do_resume(self):
        self.cut = False
        self.say("resumed")

    async def pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            if writer in self.writers:
                self.writers.discard(writer)
                writer.close()

    async def handle(self, client_reader, client_writer):
        if self.cut:
            self.refused += 1
            self.reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target)
        except OSError:
            # The core is down: the agent sees the same as without a proxy.
            self.reset(client_writer)
            return
        if self.cut:  # cut while connecting
            self.reset(client_writer)
            self.reset(upstream_writer)
            return
        for writer in (client_writer, upstream_writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.writers.add(writer)
        await asyncio.gather(self.pipe(client_reader, upstream_writer),
                             self.pipe(upstream_reader, client_writer))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    proxy = Proxy(options.target)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", options.port,
                                        reuse_address=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, proxy.do_cut)
    loop.add_signal_handler(signal.SIGUSR2, proxy.do_resume)
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    loop.add_signal_handler(signal.SIGINT, lambda: stop.done() or stop.set_result(None))
    print(server.sockets[0].getsockname()[1], flush=True)
    await stop
    server.close()
    for writer in list(proxy.writers):
        proxy.reset(writer)
    proxy.say("stopped after %d cuts (%d connections refused while cut)"
              % (proxy.cuts, proxy.refused))


if __name__ == "__main__":
    asyncio.run(main())

"""Print a free TCP port on 127.0.0.1 for a test's server to listen on.

Drawn below the kernel's ephemeral range (32768 and up): a port the kernel hands out for
bind(0) may be taken a moment later by another test's outgoing connection (a client socket
gets its local port from the same range), and a daemon that then cannot bind fails its test.
A drawn port is checked free by binding it. Used by tests/lib_e2e.sh and tests/servers.sh.
"""
import random
import socket
import sys

for _ in range(200):
    port = random.randrange(20000, 32768)
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        probe.close()
    print(port)
    sys.exit(0)
sys.exit("free_port.py: no free port found in 20000-32767")

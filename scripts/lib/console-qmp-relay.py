#!/usr/bin/env python3
"""console-qmp-relay: passes a QEMU guest's serial console through, line by line, and
carries out the QEMU monitor commands the guest asks for on it.

    qemu-system-x86_64 ... -qmp unix:SOCK,server=on,wait=off -serial stdio \\
        | console-qmp-relay.py SOCK | tee LOG

Every line read from stdin goes to stdout at once (carriage returns removed). A line
`QMP-REQUEST set_link NETDEV on|off` (the guest's checks print it when they want the
host to cut or restore a link, e.g. `qmp_set_link n0 off`) becomes the QMP command
`set_link` on the QEMU whose QMP socket is SOCK; its outcome is printed as
`QMP-RESULT set_link NETDEV off: ok` or `...: error WHY`. Only set_link is relayed: the
guest cannot ask the host for anything else.

The QMP socket sits in the harness's own cache directory, not /tmp.
"""

import json
import re
import socket
import sys

REQUEST = re.compile(r"^QMP-REQUEST set_link ([A-Za-z0-9_-]{1,32}) (on|off)$")


class Qmp:
    """One QMP connection, opened on first use and kept."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("QEMU closed the QMP socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _reply(self):
        # Events (NIC_RX_FILTER_CHANGED, ...) may come before the reply: skip them.
        while True:
            msg = self._line()
            if "return" in msg or "error" in msg:
                return msg

    def _connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)
        greeting = self._line()
        if "QMP" not in greeting:
            raise ConnectionError(f"not a QMP greeting: {greeting}")
        reply = self._execute("qmp_capabilities", None)
        if "error" in reply:
            raise ConnectionError(f"qmp_capabilities refused: {reply['error']}")

    def _execute(self, command, arguments):
        msg = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return self._reply()

    def execute(self, command, arguments):
        if self.sock is None:
            self._connect()
        return self._execute(command, arguments)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: console-qmp-relay.py QMP_SOCKET\n")
        return 2
    qmp = Qmp(sys.argv[1])
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        line = raw.replace(b"\r", b"")
        out.write(line)
        out.flush()
        m = REQUEST.match(line.decode("utf-8", "replace").rstrip("\n"))
        if not m:
            continue
        netdev, state = m.group(1), m.group(2)
        try:
            reply = qmp.execute("set_link", {"name": netdev, "up": state == "on"})
            result = "ok" if "return" in reply else f"error {reply['error'].get('desc', reply['error'])}"
        except (OSError, ValueError, ConnectionError) as e:
            qmp.sock = None
            qmp.buf = b""
            result = f"error {e}"
        out.write(f"QMP-RESULT set_link {netdev} {state}: {result}\n".encode())
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One HTTP/1.1 exchange at a time over one connection, bounded in size and time: what etcd's
JSON gateway (:mod:`._gateway`) needs and no more.

Not ``http.client``: it loads ``ssl`` and the ``email`` package whatever the endpoint speaks,
which is a third of what ``etcd-elector leader`` would spend importing. Here TLS is loaded only
for a TLS endpoint (the caller passes a wrapped socket), and the other side is untrusted: the
status line, every header line, the header count and the body are bounded, and every read is
bounded by the caller's deadline, so a server that drips bytes cannot hold us past it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from .. import _clock

__all__ = ["Answer", "HttpConnection", "NotHttp", "TooLarge", "Unanswered", "connect"]

_MAX_LINE = 8192
_MAX_HEADERS = 100
_CHUNK = 65536


class NotHttp(ValueError):
    """The other side answered something that is not HTTP/1.x."""


class TooLarge(ValueError):
    """The answer is longer than the caller accepts."""


class Unanswered(ConnectionError):
    """The server closed the connection before a status line: ``first`` says whether this was
    the connection's first request (a TLS server does that to plaintext; an idle kept-alive
    connection may simply have been closed)."""

    def __init__(self, *, first: bool) -> None:
        super().__init__("the server closed the connection without answering")
        self.first = first


class Answer:
    """An HTTP answer: its ``status`` and whole ``body``."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class HttpConnection:
    """A connected socket (plain, or wrapped in TLS by the caller) to one server.

    Every method raises ``OSError`` (``TimeoutError`` at the deadline, ``ConnectionError`` when
    the server hangs up), :class:`NotHttp` or :class:`TooLarge`; after any of them the
    connection is unusable: close it.
    """

    def __init__(self, sock: socket.socket, host: str) -> None:
        self._sock = sock
        self._host = host
        self._buffer = b""
        self._until = 0.0
        self.reusable = True  # False once the server said it closes (or sent no length)
        self.answered = 0  # exchanges completed on this connection

    def close(self) -> None:
        self.reusable = False
        self._sock.close()

    def post(
        self, path: str, payload: bytes, headers: dict[str, str], *, until: float, limit: int
    ) -> Answer:
        """POST ``payload`` and read the answer, all before ``until`` (the clock's time); a
        body over ``limit`` bytes is refused unread."""
        self._until = until
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(payload)}", "", ""]
        self._settimeout()
        self._sock.sendall("\r\n".join(lines).encode("latin-1") + payload)
        status, fields = self._head()
        if fields.get("connection", "").lower() == "close":
            self.reusable = False
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body = self._chunked(limit)
        elif "content-length" in fields:
            length = fields["content-length"].strip()
            if not length.isdigit():
                raise NotHttp("its Content-Length is not a number")
            if int(length) > limit:
                raise TooLarge
            body = self._exactly(int(length))
        else:  # the body runs until the server closes
            self.reusable = False
            body = self._to_end(limit)
        self.answered += 1
        return Answer(status, body)

    # -- reading, bounded --------------------------------------------------------------------

    def _head(self) -> tuple[int, dict[str, str]]:
        try:
            status_line = self._line()
        except ConnectionError:
            raise Unanswered(first=self.answered == 0) from None
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise NotHttp("its first line is not an HTTP status line")
        if parts[0] == b"HTTP/1.0":
            self.reusable = False
        fields: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            line = self._line()
            if not line:
                return int(parts[1]), fields
            name, colon, value = line.partition(b":")
            if not colon:
                raise NotHttp("a header line has no ':'")
            fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        raise NotHttp(f"it sent over {_MAX_HEADERS} header lines")

    def _chunked(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise NotHttp("a chunk size is not hexadecimal") from None
            if size < 0:
                raise NotHttp("a chunk size is negative")
            if size == 0:
                while self._line():  # trailers, if any, up to the empty line
                    pass
                return bytes(body)
            if len(body) + size > limit:
                raise TooLarge
            body += self._exactly(size)
            if self._line():
                raise NotHttp("a chunk does not end where its size says")

    def _to_end(self, limit: int) -> bytes:
        body = bytearray(self._take(len(self._buffer)))
        while len(body) <= limit:
            data = self._recv()
            if not data:
                return bytes(body)
            body += data
        raise TooLarge

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        return self._take(size)

    def _line(self) -> bytes:
        """One line without its CRLF; at most ``_MAX_LINE`` bytes."""
        while True:
            end = self._buffer.find(b"\n", 0, _MAX_LINE + 1)
            if end >= 0:
                return self._take(end + 1).rstrip(b"\r\n")
            if len(self._buffer) > _MAX_LINE:
                raise NotHttp(f"it sent a line over {_MAX_LINE} bytes")
            self._fill()

    def _take(self, size: int) -> bytes:
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self) -> None:
        data = self._recv()
        if not data:
            raise ConnectionError("the server closed the connection mid-answer")
        self._buffer += data

    def _recv(self) -> bytes:
        self._settimeout()
        return self._sock.recv(_CHUNK)

    def _settimeout(self) -> None:
        left = self._until - _clock.now()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(left)


def connect(
    host: str,
    port: int,
    timeout: float,
    wrap: Callable[[socket.socket], socket.socket] | None = None,
) -> HttpConnection:
    """A connection to ``host:port`` within ``timeout`` seconds; ``wrap`` makes it TLS.

    :raises OSError: when it cannot be made (``ssl.SSLError`` for a failed handshake).
    """
    # ASCII bytes: a str host would load the IDNA codec (host names are checked ASCII).
    sock = socket.create_connection((host.encode("ascii"), port), timeout=timeout)  # type: ignore[arg-type]
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if wrap is not None:
            sock = wrap(sock)
    except BaseException:
        sock.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    return HttpConnection(sock, f"{shown}:{port}")

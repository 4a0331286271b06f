"""An HTTP/1.1 relay of the test's own between dirgwd and the repository that records, for every
request it passes on, the moment its first byte arrived (time.monotonic(), the test process's
clock), the moment its whole body had been passed on (`finished`), and which of a set of watched
strings (study UIDs) its body carries. Keep-alive
connections are followed request by request (Content-Length framing, as dirgw sends).

Optionally throttles the bytes towards the repository, so that batches stay on the wire long
enough for a test to land something in the middle of one, or refuses every request for a while
(`refuse`)."""

import socket
import threading
import time


class Request:
    def __init__(self, started, line):
        self.started = started
        self.line = line
        self.body_bytes = 0
        self.finished = None
        self.carries = set()


class RecordingProxy:
    def __init__(self, upstream_port, host="127.0.0.1", rate=0):
        self.upstream = (host, upstream_port)
        self.rate = rate  # bytes/s towards the repository; 0: unlimited
        # While set, every request is refused: its connection is closed before anything reaches
        # the repository, and it is not recorded (the sender sees a transport error and retries).
        self.refuse = False
        self.watch = set()  # strings (as bytes) to look for in request bodies
        self.lock = threading.Lock()
        self.requests = []
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def close(self):
        self._stop.set()
        self._listener.close()

    def max_in_flight(self):
        """The most requests whose bodies were on their way at the same moment."""
        with self.lock:
            spans = [(r.started, r.finished) for r in self.requests if r.finished]
        events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
        most = now = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    def requests_carrying(self, needle):
        with self.lock:
            return [r for r in self.requests if needle in r.carries]

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        if self.refuse:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
        threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()
        try:
            self._requests(client, upstream)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _send(self, dst, data):
        if not self.rate:
            dst.sendall(data)
            return
        for i in range(0, len(data), 16384):
            chunk = data[i:i + 16384]
            dst.sendall(chunk)
            time.sleep(len(chunk) / self.rate)

    def _requests(self, client, upstream):
        buf = b""
        while not self._stop.is_set():
            # Request line and headers; the start is the arrival of the request's first byte.
            req = None
            while b"\r\n\r\n" not in buf:
                data = client.recv(65536)
                if not data:
                    return
                if req is None and not buf:
                    req = Request(time.monotonic(), b"")
                buf += data
            if req is None:
                req = Request(time.monotonic(), b"")
            if self.refuse:  # a kept-alive connection: this request goes no further
                return
            head, buf = buf.split(b"\r\n\r\n", 1)
            req.line = head.split(b"\r\n", 1)[0].decode("latin-1")
            length = 0
            for h in head.split(b"\r\n")[1:]:
                name, _, value = h.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            with self.lock:
                self.requests.append(req)
                watch = list(self.watch)
            self._send(upstream, head + b"\r\n\r\n")
            body = b""
            while len(body) < length:
                if not buf:
                    buf = client.recv(65536)
                    if not buf:
                        return
                take = buf[:length - len(body)]
                buf = buf[len(take):]
                body += take
                self._send(upstream, take)
            req.body_bytes = len(body)
            req.finished = time.monotonic()
            req.carries = {w for w in watch if w.encode() in body}

    @staticmethod
    def _answers(upstream, client):
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

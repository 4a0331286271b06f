"""A TCP proxy of the test's own, between dirgwd and the repository, that misbehaves on
command: pass, reset (connections reset as soon as data flows), stall (forwards part of a
request body, then nothing), refuse (nothing listens: connection refused).

It also counts the DICOM parts that pass towards the repository (each part of a STOW-RS body
starts with "Content-Type: application/dicom" and CRLF), so a test can measure re-sends."""

import socket
import struct
import threading
import time

PART_MARKER = b"Content-Type: application/dicom\r\n"


class ChaosProxy:
    def __init__(self, upstream_port, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.host = host
        probe = socket.socket()
        probe.bind((host, 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.mode = "pass"
        self.stall_after = 64 * 1024
        self.rate = 0  # bytes/s towards the repository, 0: unlimited
        self.lock = threading.Lock()
        self.parts = 0
        self.connections = 0
        self.resets = 0
        self.stalls = 0
        self._listener = None
        self._stop = threading.Event()
        self._open_listener()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # --- control
    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
        if mode == "refuse":
            self._close_listener()
        elif self._listener is None:
            self._open_listener()

    def close(self):
        self._stop.set()
        self._close_listener()

    # --- internals
    def _open_listener(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(50):
            try:
                s.bind((self.host, self.port))
                break
            except OSError:
                time.sleep(0.1)
        s.listen(64)
        s.settimeout(0.2)
        self._listener = s

    def _close_listener(self):
        s, self._listener = self._listener, None
        if s:
            s.close()

    def _accept_loop(self):
        while not self._stop.is_set():
            s = self._listener
            if s is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = s.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _reset(sock):
        # SO_LINGER with a zero time-out: close() sends a RST.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def _serve(self, client):
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._reset(client)
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
        done = threading.Event()

        def pump(src, dst, count_parts):
            tail = b""
            sent = 0
            stalled = False
            try:
                while not done.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    with self.lock:
                        mode = self.mode
                    if mode == "reset" and count_parts:
                        with self.lock:
                            self.resets += 1
                        self._reset(client)
                        self._reset(upstream)
                        break
                    if mode == "stall" and count_parts and sent + len(data) > self.stall_after:
                        if not stalled:
                            with self.lock:
                                self.stalls += 1
                            stalled = True
                        # Swallow the rest: the sender sees a peer that stopped reading.
                        while True:
                            with self.lock:
                                if self.mode != "stall":
                                    break
                            time.sleep(0.1)
                        self._reset(client)
                        self._reset(upstream)
                        break
                    if count_parts:
                        buf = tail + data
                        with self.lock:
                            self.parts += buf.count(PART_MARKER)
                        tail = data[-(len(PART_MARKER) - 1):]
                    dst.sendall(data)
                    sent += len(data)
                    if count_parts and self.rate:
                        time.sleep(len(data) / self.rate)
            except OSError:
                pass
            finally:
                done.set()
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t1 = threading.Thread(target=pump, args=(client, upstream, True), daemon=True)
        t2 = threading.Thread(target=pump, args=(upstream, client, False), daemon=True)
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        for s in (client, upstream):
            try:
                s.close()
            except OSError:
                pass

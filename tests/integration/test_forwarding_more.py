#!/usr/bin/env python3
"""Forwarding on a schedule, the rest of issue 14, with real parts (dirgwd, Orthanc, DCMTK):
  1. concurrency: 3 over STOW-RS: a backlog of 24 CT instances (batches of 2) drains to Orthanc
     through a recording relay that slows each connection; every instance goes exactly once
     (all arrive; requests carried 24 instances in all), and more than one request was on the
     wire at the same moment (at most 3).
  2. The bandwidth cap shared by lanes: a STOW-RS destination that does not set concurrency
     (two requests in flight by default) and type: dimse with 2 lanes, each under one 2 MiB/s
     cap: the bytes reaching Orthanc's HTTP or DICOM port, counted by a relay in the test, go
     within 10 % of the cap, and the STOW-RS lanes' two connections send at the same time.
  3. STAT from HL7 orders, with the upload window closed (it opens in 3 hours): an ORM^O01
     (priority S in ORC-7.6, accession in OBR-18) over MLLP, then its study: it goes at once;
     a routine study waits, shown SCHEDULED with the window's opening by `dirgw studies` and
     `dirgw study`; a study that waits first is made STAT by a later OMI^O23 (TQ1-9 S, IPC-1)
     and goes at once too."""

import datetime
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
from recording_proxy import RecordingProxy  # noqa: E402
import test_dimse_sender as tds  # noqa: E402
from test_consent_policy import mllp  # noqa: E402  (one MLLP message, its ACK)

CAP = 2 * 1024 * 1024


class CountingRelay:
    """TCP relay to `upstream_port` that notes (time, bytes) of everything going upstream."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.chunks = []  # (time.monotonic(), bytes, connection number)
        self.connections = 0
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._stop.set()
        self.sock.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, up):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._pump, args=(client, up, number), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, 0), daemon=True).start()

    def _pump(self, src, dst, count):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.chunks.append((time.monotonic(), len(data), count))
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def rate(self):
        """Bytes per second from the first byte to the last, and the byte count."""
        with self.lock:
            chunks = list(self.chunks)
        if len(chunks) < 2:
            return 0, 0
        total = sum(n for _, n, _ in chunks) - chunks[0][1]  # the first chunk starts the clock
        return total / (chunks[-1][0] - chunks[0][0]), total + chunks[0][1]

    def interleavings(self):
        """How often the bytes going upstream switched from one connection to another: a handful
        when requests go one after the other, many when two connections send at once."""
        with self.lock:
            conns = [c for _, _, c in self.chunks]
        return sum(1 for a, b in zip(conns, conns[1:]) if a != b)


def concurrency_phase(args, work, manifest, check, files):
    repo = harness.Orthanc(work, name="repo-concurrency").start()
    proxy = RecordingProxy(repo.http_port, rate=3 * 1024 * 1024)  # per connection: requests overlap
    proxy.watch = {harness.sop_instance_uid(f) for f in files}
    url = repo.dicomweb.replace(f":{repo.http_port}/", f":{proxy.port}/")
    gw = harness.Gateway(args.build_dir, work, url, name="dirgw-lanes", stable_age="1s",
                         batch_max=2, dest_yaml="    concurrency: 3\n")
    gw.start()
    try:
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu: rc={rc} {out[-300:]}")
        harness.wait_for("the backlog in Orthanc", lambda: repo.count_instances() == len(files), 90)
        time.sleep(1)
        st = gw.status()["destinations"][0]
        states = {x["state"] for x in st["states"] if x.get("studies")}
        check(states == {"SENT"}, f"the study is SENT: {st['states']}")
        stow = [r for r in proxy.requests if r.line.startswith("POST")]
        # Exactly once: every instance went (Orthanc holds all of them, each in some request
        # through the relay) and the requests carried no more instances than there are.
        missing = [u for u in proxy.watch if not proxy.requests_carrying(u)]
        check(not missing, f"every instance went through the relay: missing {missing[:3]}")
        check(repo.count_instances() == len(files), f"Orthanc holds {repo.count_instances()}")
        batches = [int(n) for n in re.findall(
            r'msg="?batch forwarded"? destination=repository instances=(\d+)', gw.log_text())]
        carried = sum(batches)
        # The lanes start staggered (a third of a batch, two thirds, then whole: at most two
        # requests more than whole batches would take); every request through the relay is one
        # the gateway logged, and together they carried each instance once.
        check(carried == len(files) and len(stow) == len(batches)
              and len(files) // 2 <= len(stow) <= len(files) // 2 + 2,
              f"{carried} instances in {len(stow)} requests ({len(batches)} logged, "
              f"batches of at most 2): none sent twice")
        most = proxy.max_in_flight()
        log(f"concurrency 3: {len(files)} instances in {len(stow)} requests, at most {most} "
            f"requests on the wire at once")
        check(most >= 2, f"more than one request in flight at once: {most}")
        check(most <= 3, f"never more than concurrency requests in flight: {most}")
    finally:
        gw.stop()
        proxy.close()
        repo.stop()
    return gw.log_text()


def drain_through_relay(gw, repo, relay, files, check, protocol):
    """The study from storescu to the gateway, then to Orthanc through `relay`: (the relay's
    rate in bytes/s, the bytes it counted, the study files' size)."""
    rc, out = harness.storescu(gw.port, files)
    check(rc == 0, f"storescu (to {protocol}): rc={rc} {out[-300:]}")
    harness.wait_for(f"the study in Orthanc over {protocol}",
                     lambda: repo.count_instances() == len(files), 90)
    rate, total = relay.rate()
    return rate, total, sum(os.path.getsize(f) for f in files)


def stow_default_lanes_phase(args, work, manifest, check, files):
    """A STOW-RS destination that does not set `concurrency` (two requests in flight by default)
    under a 2 MiB/s cap: both lanes draw from one bucket, so the bytes reaching the repository
    (counted by a relay in front of Orthanc's HTTP port) go at the cap, not twice it, and the
    two connections carry them at the same time."""
    repo = harness.Orthanc(work, name="repo-stow-cap").start()
    relay = CountingRelay(repo.http_port)
    url = repo.dicomweb.replace(f":{repo.http_port}/", f":{relay.port}/")
    # verify none (the harness's default): no QIDO-RS request after the upload stretches the
    # relay's clock.
    gw = harness.Gateway(args.build_dir, work, url, name="dirgw-stow-cap", stable_age="1s",
                         batch_max=2, verify="none", dest_yaml="    bandwidth: 2MiB\n")
    gw.start()
    try:
        rate, total, size = drain_through_relay(gw, repo, relay, files, check, "STOW-RS")
        switches = relay.interleavings()
        log(f"stow-rs, default concurrency ({harness.DEFAULT_STOW_LANES}): {total} bytes at "
            f"{rate / 1048576:.3f} MiB/s against a cap of {CAP / 1048576:.1f} MiB/s over "
            f"{relay.connections} connection(s), {switches} switches between them")
        check(total >= size, f"the study's bytes went through the relay: {total} >= {size}")
        check(abs(rate - CAP) <= 0.10 * CAP, f"rate within 10 % of the cap: {rate / 1048576:.3f}")
        check(relay.connections >= 2 and switches >= 10,
              f"two requests on the wire at once by default: {relay.connections} connections, "
              f"{switches} switches")
    finally:
        gw.stop()
        relay.close()
        repo.stop()
    return gw.log_text()


def dimse_cap_phase(args, work, manifest, check, files):
    repo = tds.DicomOrthanc(work).start()
    relay = CountingRelay(repo.dicom_port)
    gw = harness.Gateway(args.build_dir, work, "http://unused/", name="dirgw-dimse-cap",
                         stable_age="1s", batch_max=4)
    with open(gw.config_path) as f:
        text = f.read()
    text = text.replace("    type: stow-rs\n    url: http://unused/\n",
                        f"    type: dimse\n    dimse: {{ ae_title: {repo.aet}, host: 127.0.0.1, "
                        f"port: {relay.port} }}\n    bandwidth: 2MiB\n    concurrency: 2\n")
    with open(gw.config_path, "w") as f:
        f.write(text)
    gw.start()
    try:
        rate, total, size = drain_through_relay(gw, repo, relay, files, check, "C-STORE")
        log(f"dimse cap: {total} bytes to the DICOM port at {rate / 1048576:.3f} MiB/s against a "
            f"cap of {CAP / 1048576:.1f} MiB/s (2 lanes; study files {size} bytes)")
        check(total >= size * 0.95, f"the study's bytes went through the relay: {total}")
        check(abs(rate - CAP) <= 0.10 * CAP, f"rate within 10 % of the cap: {rate / 1048576:.3f}")
        st = gw.status()["destinations"][0]
        check(st["bandwidth_cap"] == CAP, f"status shows the cap: {st['bandwidth_cap']}")
    finally:
        gw.stop()
        relay.close()
        repo.stop()
    return gw.log_text()


def segment(name, values):
    """An HL7 segment from {field number: value}."""
    fields = [name] + [""] * max(values)
    for n, v in values.items():
        fields[n] = v
    return "|".join(fields)


def orm(control_id, accession, priority):
    return "\r".join([
        f"MSH|^~\\&|RIS|TEST|DIRGW|TEST|20261203100000||ORM^O01|{control_id}|P|2.3.1",
        segment("ORC", {1: "NW", 2: "PL" + control_id, 7: "^^^^^" + priority}),
        segment("OBR", {1: "1", 2: "PL" + control_id, 4: "CT^CT HEAD", 18: accession}),
    ]) + "\r"


def omi(control_id, accession, priority):
    return "\r".join([
        f"MSH|^~\\&|RIS|TEST|DIRGW|TEST|20261203100000||OMI^O23^OMI_O23|{control_id}|P|2.5.1",
        segment("ORC", {1: "NW", 2: "PL" + control_id}),
        segment("TQ1", {1: "1", 9: priority}),
        segment("OBR", {1: "1", 2: "PL" + control_id, 4: "CT^CT HEAD"}),
        segment("IPC", {1: accession, 2: "REQ" + control_id, 3: "1.2.3.4." + control_id[-4:]}),
    ]) + "\r"


def hl7_stat_phase(args, work, manifest, check):
    files = {}
    for name, seed, acc in (("stat", 91, "ACCSTAT0001"), ("routine", 92, "ACCROUT0001"),
                            ("late", 93, "ACCLATE0001")):
        uid, fs = harness.synth(args.build_dir, os.path.join(work, "hl7-" + name), "CR", 1,
                                seed=seed, patient_index=7, manifest=manifest,
                                extra=("--accession", acc))
        files[name] = (uid, fs)
    now = datetime.datetime.now(datetime.timezone.utc)
    opens = (now + datetime.timedelta(hours=3)).replace(second=0, microsecond=0)
    window = f"{opens:%H:%M}-{opens + datetime.timedelta(hours=1):%H:%M}"
    hl7_port = harness.free_port()
    repo = harness.Orthanc(work, name="repo-hl7").start()
    gw = harness.Gateway(
        args.build_dir, work, repo.dicomweb, name="dirgw-hl7", stable_age="1s",
        ingest_yaml=f"  hl7: {{ enabled: true, bind: 127.0.0.1, port: {hl7_port} }}\n",
        dest_yaml=f"    schedule: {{ windows: [\"Mon-Sun {window}\"], stat_bypass: true }}\n",
        extra_yaml="priority: { hl7_orders: { stat_values: [S] } }\n")
    gw.start()
    try:
        # The order first, then its study.
        ack = mllp(hl7_port, orm("ORD0001", "ACCSTAT0001", "S"))
        check("MSA|AA|ORD0001" in ack, f"ORM^O01 acknowledged AA: {ack!r}")
        ack = mllp(hl7_port, orm("ORD0002", "ACCROUT0001", "R"))
        check("MSA|AA|ORD0002" in ack, f"routine ORM^O01 acknowledged AA: {ack!r}")
        ack = mllp(hl7_port, orm("ORD0003", "", "S"))
        check("MSA|AE|ORD0003" in ack, f"an order without accession number: AE: {ack!r}")
        rc, out = harness.storescu(gw.port, files["routine"][1] + files["late"][1])
        check(rc == 0, f"storescu of the routine studies: rc={rc} {out[-300:]}")
        t0 = time.time()
        rc, out = harness.storescu(gw.port, files["stat"][1])
        check(rc == 0, f"storescu of the ordered STAT study: rc={rc} {out[-300:]}")
        harness.wait_for("the STAT study (by its HL7 order) in Orthanc",
                         lambda: repo.count_instances() == 1, 30)
        log(f"hl7 order STAT: the study went {time.time() - t0:.1f} s after it was sent, "
            f"window closed until {opens:%H:%M}Z")
        # The late one waits, SCHEDULED, with the window's opening.
        late_uid = files["late"][0]
        shown = harness.wait_for("the late study to wait SCHEDULED", lambda: (lambda r: r if r[
            "destinations"][0]["state"] == "SCHEDULED" else None)(json.loads(
                gw.run_cli("study", late_uid, "--json")[1])), 30)
        d = shown["destinations"][0]
        check((d.get("window_opens_at") or "").startswith(opens.strftime("%Y-%m-%dT%H:%M")),
              f"dirgw study shows when the window opens: {d}")
        rc, text, _ = gw.run_cli("studies")
        check("=SCHEDULED (window opens " + opens.strftime("%Y-%m-%dT%H:%M") in text,
              f"dirgw studies shows SCHEDULED and the opening: {text[-400:]}")
        check(repo.count_instances() == 1, f"routine studies wait: {repo.count_instances()}")
        # A later OMI^O23 makes the waiting study STAT: it goes at once.
        ack = mllp(hl7_port, omi("ORD0004", "ACCLATE0001", "S"))
        check("MSA|AA|ORD0004" in ack, f"OMI^O23 acknowledged AA: {ack!r}")
        harness.wait_for("the study made STAT by a later order in Orthanc",
                         lambda: repo.count_instances() == 2, 30)
        time.sleep(2)
        check(repo.count_instances() == 2, f"the routine study still waits: {repo.count_instances()}")
        rc, text, _ = gw.run_cli("study", files["routine"][0])
        check("SCHEDULED" in text and "window" in text, f"dirgw study (routine): {text[:300]}")
    finally:
        gw.stop()
        repo.stop()
    return gw.log_text()


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    work = harness.tempdir("dirgw-fwd-")
    manifest = os.path.join(work, "manifest.jsonl")
    _, ct_files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", 24, seed=81,
                                patient_index=1, manifest=manifest)
    logs = {"dirgwd-lanes.log": concurrency_phase(args, work, manifest, check, ct_files),
            "dirgwd-stow-cap.log": stow_default_lanes_phase(args, work, manifest, check, ct_files),
            "dirgwd-dimse-cap.log": dimse_cap_phase(args, work, manifest, check, ct_files),
            "dirgwd-hl7.log": hl7_stat_phase(args, work, manifest, check)}
    phi = harness.scan_for_phi(logs, manifest)
    check(not phi, f"no patient value in the logs: {phi[:3]}")
    return check.finish("forwarding (more): all checks passed")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Connections that linger and a stop that is bounded (issue 17, items 7 and 8), with a real
dirgwd and DCMTK's storescu: an HL7 connection idle beyond idle_timeout, and one trickling a
message byte by byte (slow loris), are closed by total time; a rejected association's socket is
closed within a second; on SIGTERM during a 10,000-object association the SCP refuses new
associations at once, `dirgw status` says "stopping", the daemon exits within stop_grace plus a
little, and every object storescu saw acknowledged is in the catalog after a restart."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import door  # noqa: E402
import harness  # noqa: E402

IDLE, MESSAGE, GRACE = 3.0, 2.0, 3.0


def seconds_until_closed(sock, trickle=None, limit=30):
    """Time from now until the peer closes; `trickle` is sent one byte every 0.25 s meanwhile."""
    t0 = time.monotonic()
    sock.settimeout(0.25)
    i = 0
    while time.monotonic() - t0 < limit:
        if trickle is not None and i < len(trickle):
            try:
                sock.sendall(trickle[i:i + 1])
            except OSError:
                break
            i += 1
        try:
            if sock.recv(65536) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    return time.monotonic() - t0


def hl7_cases(check, hl7_port):
    msg = ("MSH|^~\\&|ADMIT|LGH|DIRGW|LGH|20261128101500||ADT^A08|MSG1|P|2.5\r"
           "EVN|A08|20261128101500\rPID|1||MRN-SYNTH-1\r")
    # A whole message is still answered.
    with socket.create_connection(("127.0.0.1", hl7_port), timeout=10) as s:
        s.sendall(b"\x0b" + msg.encode() + b"\x1c\x0d")
        data = b""
        while not data.endswith(b"\x1c\x0d"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        check(b"MSA|" in data, f"a complete HL7 message is acknowledged: {data[:80]!r}")
        # After the answer the idle clock starts again: closed after idle_timeout.
        secs = seconds_until_closed(s)
        check(IDLE - 0.5 <= secs <= IDLE + 2, f"idle after an ACK: closed after {secs:.1f} s")
    # Silent from the start.
    with socket.create_connection(("127.0.0.1", hl7_port), timeout=10) as s:
        secs = seconds_until_closed(s)
        check(IDLE - 0.5 <= secs <= IDLE + 2, f"silent HL7 connection closed after {secs:.1f} s")
    # Slow loris: a byte every 0.25 s, never finishing; message_timeout bounds it by total time
    # (each byte would have restarted the old per-read idle timer).
    with socket.create_connection(("127.0.0.1", hl7_port), timeout=10) as s:
        secs = seconds_until_closed(s, trickle=b"\x0b" + msg.encode() * 10)
        check(MESSAGE - 0.5 <= secs <= MESSAGE + 1.5,
              f"slow-loris HL7 connection closed after {secs:.1f} s (message_timeout {MESSAGE} s)")


def rejected_association_closes(check, gw):
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(door.associate_rq("NOBODY", "DIRGW"))
    secs, first = door.time_to_close(s)
    s.close()
    check(first == 0x03, f"unknown caller gets an A-ASSOCIATE-RJ (PDU type {first})")
    check(secs < 1.0, f"rejected association's socket closed within 1 s ({secs:.2f} s)")
    # The row is written just after the connection is closed.
    try:
        harness.wait_for("the refusal row", lambda: any(
            r[3] == "caller-unknown" for r in door.refusals(gw.state_dir)), 5, 0.1)
    except TimeoutError:
        pass
    rows = door.refusals(gw.state_dir)
    check(rows and rows[-1][3] == "caller-unknown", f"refusal recorded with its code: {rows[-1:]}")


def acknowledged_files(storescu_output):
    """The files storescu sent and saw a Success response for, in order."""
    acked, current = [], None
    for line in storescu_output.splitlines():
        m = re.search(r"Sending file: (.+)$", line)
        if m:
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            acked.append(current)
            current = None
    return acked


OBJECTS = 10000


def many_copies(template, out_dir, n):
    """n small objects from one synthetic file, each with its own SOP Instance UID: the UID's
    second-to-last component replaced by a number of the same width (meta header and dataset
    alike, so no length changes). Much faster than synthesising 10,000 files."""
    with open(template, "rb") as f:
        data = f.read()
    uid = harness.sop_instance_uid(template)
    parts = uid.split(".")
    width = len(parts[-2])
    assert width >= len(str(n)) + 1, uid
    files = []
    for i in range(n):
        new = ".".join(parts[:-2] + [f"9{i:0{width - 1}d}", parts[-1]])
        path = os.path.join(out_dir, f"copy{i:05d}.dcm")
        with open(path, "wb") as f:
            f.write(data.replace(uid.encode(), new.encode()))
        files.append(path)
    return files


def bounded_stop(check, args, work, gw):
    _, one = harness.synth(args.build_dir, os.path.join(work, "one"), "CT", 1, seed=91,
                           extra=["--rows", "16", "--cols", "16"])
    os.makedirs(os.path.join(work, "many"))
    files = many_copies(one[0], os.path.join(work, "many"), OBJECTS)
    env = dict(os.environ, TCP_NODELAY="1")
    sender = subprocess.Popen(["storescu", "-v", "-aet", "PACS1", "-aec", "DIRGW", "-nh",
                               "127.0.0.1", str(gw.port)] + files,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = []
    reader = threading.Thread(target=lambda: output.append(sender.stdout.read()), daemon=True)
    reader.start()
    harness.wait_for("some objects stored", lambda: gw.status()["ingest"]["dicom"]["stored"] >= 300,
                     120, 0.1)
    t0 = time.monotonic()
    gw.process.proc.send_signal(signal.SIGTERM)
    # The control socket stays up during the stop and says so.
    states = []
    while gw.process.alive() and time.monotonic() - t0 < 30:
        rc, out, _ = gw.run_cli("status", "--json")
        if rc == 0:
            states.append("stopping" if '"state": "stopping"' in out or '"state":"stopping"' in out
                          else "other")
            rc_h, out_h, _ = gw.run_cli("status")
            if rc_h == 0 and "stopping" in out_h.splitlines()[0]:
                states.append("human-stopping")
        # New associations are refused at once (the listening socket is closed).
        if len(states) == 1:
            p = subprocess.run(["echoscu", "-aet", "PACS1", "-aec", "DIRGW", "-to", "5",
                                "127.0.0.1", str(gw.port)], capture_output=True, text=True,
                               timeout=30)
            check(p.returncode != 0, f"a new association during the stop is refused: {p.returncode}")
        time.sleep(0.1)
    gw.process.proc.wait(60)
    elapsed = time.monotonic() - t0
    rc = gw.process.proc.returncode
    gw.process.stop()
    gw.process = None
    check(rc == 0, f"dirgwd exited cleanly: {rc}")
    check(elapsed <= GRACE + 3, f"stopped within stop_grace ({GRACE} s) + 3 s: {elapsed:.1f} s")
    harness.log(f"SIGTERM to exit: {elapsed:.1f} s (stop_grace {GRACE} s)")
    check("stopping" in states, f"status said stopping during the stop: {states}")
    check("human-stopping" in states, f"dirgw status (for people) said stopping: {states}")
    sender.wait(60)
    reader.join(10)
    acked = acknowledged_files("".join(output))
    check(0 < len(acked) < len(files),
          f"the association was cut by the stop: {len(acked)} of {len(files)} acknowledged")
    log = gw.log_text()
    check("stop_grace over: aborting" in log, "the log says the associations left were aborted")
    # Nothing acknowledged is lost: restart and look in the catalog.
    gw.start()
    db = sqlite3.connect(f"file:{os.path.join(gw.state_dir, 'catalog.db')}?mode=ro", uri=True)
    have = {r[0]: r[1] for r in db.execute("SELECT sop_instance_uid, object_sha256 FROM instances")}
    db.close()
    lost = [f for f in acked if harness.sop_instance_uid(f) not in have]
    check(not lost, f"every acknowledged object is in the catalog ({len(acked)} acked, "
                    f"{len(lost)} missing)")
    # ... and in the spool, byte for byte what was sent (its file named by its hash).
    spool = os.path.join(gw.state_dir, "spool", "objects")
    unspooled = []
    for f in acked:
        sha = have.get(harness.sop_instance_uid(f))
        obj = os.path.join(spool, sha[:2], sha) if sha else None
        if obj is None or not os.path.exists(obj):
            unspooled.append(f)
            continue
        with open(f, "rb") as a, open(obj, "rb") as b:
            if harness.compare_datasets(a.read(), b.read()):
                unspooled.append(f)
    check(not unspooled, f"every acknowledged object is in the spool as sent "
                         f"({len(unspooled)} missing or different)")
    return len(acked)


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-conn-")
    check = harness.Checks()
    repo = harness.Orthanc(work).start()
    hl7_port = harness.free_port()
    ingest = (f"    stop_grace: {int(GRACE)}s\n"
              f"  hl7:\n    enabled: true\n    bind: 127.0.0.1\n    port: {hl7_port}\n"
              f"    idle_timeout: {int(IDLE)}s\n    message_timeout: {int(MESSAGE)}s\n")
    # The repository is unreachable for this test's purposes: a long stable_age keeps the
    # forwarders quiet, so the stop measured is the SCP's.
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="10m",
                         ingest_yaml=ingest).start()
    hl7_cases(check, hl7_port)
    rejected_association_closes(check, gw)
    acked = bounded_stop(check, args, work, gw)
    gw.stop()
    repo.stop()
    print(f"connections: {acked} of {OBJECTS} objects acknowledged before the stop, "
          f"{len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())

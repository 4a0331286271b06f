#!/usr/bin/env python3
"""Issue 17's last leftovers, with real parts: dirgwd, DCMTK's storescu, rawscu.py, a real Orthanc
with its DICOMweb plugin.

- Item 10, the cut (1a): objects over `max_object_size` (8 MiB here) sent with storescu and with a
  sender that pauses just before the limit (rawscu --stall-after, the case that used to wait for
  the sender's time-out) are cut at once: each sender is told within 2 s, spool/tmp never holds
  more than the limit plus one PDU (sampled every few ms), each leaves a refusal row
  `object-too-large`, nothing is left in spool/tmp, and a good study sent at the same time
  arrives in Orthanc whole.
- Item 5, the way out (2): an object whose SOP Class/Instance UIDs are encoded VR UN (taken from
  an export folder: DCMTK's senders cannot send one) reaches Orthanc over STOW-RS and is VERIFIED
  by QIDO-RS; Orthanc holds the UIDs as UI with the same values; the spooled original is
  byte-identical to the file dropped in the folder.
- Item 10, taken but never confirmed (1b): Debian's Orthanc answers a STOW-RS of an object whose
  Patient ID is 65 534 bytes with 200 and neither stores nor fails it (validation is off here, so
  nothing stops it before). With `verify.max_resends: 1` it is sent twice, then its study is
  QUARANTINED with reason code `repository-unconfirmed` (before: retried until give_up_after,
  then FAILED), `dirgw quarantine list` shows it, and the study's other instance was delivered.
  Orthanc answers a request that holds such an object without evidence for every instance in it,
  so only an instance alone in its request (or beside acknowledged ones) is counted; this
  gateway sends one instance per request (batch max_instances 1), as the circuit's probes do.
"""

import json
import os
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
from test_door_leftovers import catalog, elements, meta_end, meta_value, with_un_uids  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RAWSCU = os.path.join(HERE, "..", "tools", "rawscu.py")
LIMIT = 8 << 20
MAX_PDU = 65536  # dirgwd's default max_pdu: the most one PDU can add to the temporary


def oversized(path, out, extra_bytes):
    """`path` (explicit VR little endian) with a private element of `extra_bytes` appended after
    Pixel Data (group 7FE1: private, and in tag order)."""
    with open(path, "rb") as f:
        data = f.read()
    creator = b"DIRGW TEST"
    data += struct.pack("<HH", 0x7FE1, 0x0010) + b"LO" + struct.pack("<H", len(creator)) + creator
    data += struct.pack("<HH", 0x7FE1, 0x1001) + b"OB\0\0" + struct.pack("<I", extra_bytes)
    data += b"\x5a" * extra_bytes
    with open(out, "wb") as f:
        f.write(data)
    return out


class TmpProbe:
    """Samples spool/tmp every 2 ms. `peak` is the largest single file seen there that is not yet
    an object: what one incoming object wrote. A slot whose object was accepted is also linked
    under objects/ (st_nlink 2) until the shard directory is synced (issue 16's spool slots); it
    is the good study, already kept, and does not count. `peak_total` sums the unlinked files."""

    def __init__(self, state_dir):
        self.dir = os.path.join(state_dir, "spool", "tmp")
        self.peak = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            total = largest = 0
            try:
                for name in os.listdir(self.dir):
                    try:
                        st = os.stat(os.path.join(self.dir, name))
                    except OSError:
                        continue
                    if st.st_nlink > 1:
                        continue
                    total += st.st_size
                    largest = max(largest, st.st_size)
            except OSError:
                pass
            self.peak = max(self.peak, largest)
            self.peak_total = max(self.peak_total, total)
            time.sleep(0.002)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def now(self):
        """What spool/tmp holds besides the SCP's free slots (empty, pre-created: issue 16)."""
        return harness.spool_temporaries(os.path.dirname(self.dir))


def refusal_codes(gw):
    db = catalog(gw)
    rows = [r[0] for r in db.execute("SELECT reason_code FROM refusals")]
    db.close()
    return rows


def cut_over_size(check, args, work, repo, gw):
    """Item 10's cut (1a)."""
    _, good = harness.synth(args.build_dir, os.path.join(work, "good"), "CT", 6, seed=181,
                            extra=["--rows", "256", "--cols", "256"])
    _, base = harness.synth(args.build_dir, os.path.join(work, "big"), "CT", 1, seed=182,
                            patient_index=1, extra=["--rows", "16", "--cols", "16"])
    big = oversized(base[0], os.path.join(work, "big.dcm"), 24 << 20)
    probe = TmpProbe(gw.state_dir)
    good_result = {}

    def send_good():
        good_result["rc"], good_result["out"] = harness.storescu(gw.port, good)
    sender = threading.Thread(target=send_good)
    sender.start()
    timings = []
    env = dict(os.environ, TCP_NODELAY="1")
    for i in range(6):
        stall = i % 2 == 1  # every other one pauses just before the limit, then goes on
        t0 = time.monotonic()
        if stall:
            p = subprocess.run([sys.executable, RAWSCU, "127.0.0.1", str(gw.port), big,
                                "--calling-ae", "PACS1", "--called-ae", gw.ae_title,
                                "--stall-after", str(LIMIT - (256 << 10)), "--stall-seconds", "1",
                                "--timeout", "60"], capture_output=True, text=True, timeout=120)
            told = time.monotonic() - t0 - 1.0
            ok = p.returncode == 4  # aborted / connection closed by dirgwd
            what = f"rawscu (pause before the limit): rc={p.returncode} {p.stdout.strip()}"
        else:
            p = subprocess.run(["storescu", "-aet", "PACS1", "-aec", gw.ae_title, "-nh",
                                "127.0.0.1", str(gw.port), big], capture_output=True, text=True,
                               env=env, timeout=120)
            told = time.monotonic() - t0
            ok = p.returncode != 0
            what = f"storescu: rc={p.returncode} {(p.stdout + p.stderr).strip()[-160:]}"
        timings.append(told)
        check(ok and told < 2.0, f"over-size object {i + 1} cut, sender told in {told:.2f} s: "
              f"{what}")
    sender.join()
    harness.wait_for("spool/tmp to be empty", lambda: not probe.now(), 10, 0.05)
    probe.stop()
    allowance = LIMIT + MAX_PDU + 4096  # the limit, one PDU, the file meta header
    check(probe.peak <= allowance,
          f"largest object in spool/tmp {probe.peak / 2**20:.2f} MiB <= limit + one PDU "
          f"({allowance / 2**20:.2f} MiB); all unaccepted bytes there at most "
          f"{probe.peak_total / 2**20:.2f} MiB")
    # The refusal row is written as the SCP closes the cut association, which can be just after
    # the sender was told: wait a little for the last one, then count them exactly.
    codes = refusal_codes(gw)
    deadline = time.monotonic() + 10
    while codes.count("object-too-large") < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
        codes = refusal_codes(gw)
    check(codes.count("object-too-large") == 6,
          f"one refusal row object-too-large per cut: {codes}")
    check(good_result.get("rc") == 0, f"the good study's storescu: {good_result.get('out', '')[-200:]}")
    uids = [harness.sop_instance_uid(f) for f in good]
    harness.wait_for("the good study in Orthanc",
                     lambda: all(repo.instance_id(u) for u in uids), 60)
    log(f"cut figures: sender told in {min(timings):.2f}-{max(timings):.2f} s; largest object in "
        f"spool/tmp {probe.peak / 2**20:.2f} MiB (all unaccepted bytes at most "
        f"{probe.peak_total / 2**20:.2f} MiB) against max_object_size {LIMIT / 2**20:.0f} MiB")


def un_uids_verified(check, args, work, repo, gw, folder):
    """Item 5 on the way out (2)."""
    study_uid, files = harness.synth(args.build_dir, os.path.join(work, "rt"), "CT", 3, seed=183,
                                     patient_index=2, extra=["--rows", "16", "--cols", "16"])
    with open(files[0], "rb") as f:
        ui = f.read()
    un = with_un_uids(ui)
    un_uid = meta_value(un, 0x00020003)
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        with open(os.path.join(folder, f"obj{i}.dcm"), "wb") as f:
            f.write(un if i == 0 else data)

    def state():
        rc, out, _ = gw.run_cli("study", study_uid, "--json")
        return json.loads(out)["destinations"][0]["state"] if rc == 0 else None
    harness.wait_for("the UN-UID study VERIFIED", lambda: state() == "VERIFIED", 90)
    oid = repo.instance_id(un_uid)
    check(oid is not None, "Orthanc holds the UN-UID object")
    got = repo.instance_file(oid)
    vrs = {t: (vr, got[v:v + n].rstrip(b"\0").decode()) for t, vr, v, n in
           elements(got, meta_end(got), len(got)) if t in (0x00080016, 0x00080018)}
    check(vrs.get(0x00080018) == (b"UI", un_uid) and
          vrs.get(0x00080016) == (b"UI", meta_value(un, 0x00020002)),
          f"Orthanc's copy has the UIDs as UI with the same values: {vrs}")
    rc, out, _ = gw.run_cli("study", study_uid, "--json")
    objs = {i["sop_instance_uid"]: i["object"] for i in json.loads(out)["instance_list"]}
    path = os.path.join(gw.state_dir, "spool", "objects", objs[un_uid][:2], objs[un_uid])
    with open(path, "rb") as f:
        check(f.read() == un, "the spooled original is byte-identical to the UN file received")


def with_long_patient_id(data):
    """The file with Patient ID (0010,0020) 65 534 bytes long (LO allows 64)."""
    start = meta_end(data)
    for tag, vr, val, length in elements(data, start, len(data)):
        if tag == 0x00100020:
            value = b"P" * 65534
            return data[:val - 2] + struct.pack("<H", len(value)) + value + data[val + length:]
    raise AssertionError("no Patient ID")


def unconfirmed_quarantined(check, args, work, repo, gw):
    """Item 10's taken-but-never-confirmed (1b)."""
    study_uid, files = harness.synth(args.build_dir, os.path.join(work, "hostile"), "CT", 2,
                                     seed=184, patient_index=3,
                                     extra=["--rows", "16", "--cols", "16"])
    with open(files[0], "rb") as f:
        hostile = with_long_patient_id(f.read())
    with open(files[0], "wb") as f:
        f.write(hostile)
    rc, out = harness.storescu(gw.port, files)
    check(rc == 0, f"storescu of the study with the hostile object: {out[-200:]}")

    def study():
        rc, out, _ = gw.run_cli("study", study_uid, "--json")
        return json.loads(out) if rc == 0 else None
    harness.wait_for("the study QUARANTINED", lambda: (study() or {}).get(
        "destinations", [{}])[0].get("state") in ("QUARANTINED", "FAILED"), 90)
    d = study()["destinations"][0]
    db = catalog(gw)
    row = db.execute("SELECT sd.state, sd.reason_code, sd.reason FROM study_destinations sd JOIN "
                     "studies s ON s.id = sd.study_id WHERE s.study_uid = ?",
                     (study_uid,)).fetchone()
    deliveries = db.execute("SELECT i.sop_instance_uid, d.state, d.attempts, d.last_error FROM "
                            "deliveries d JOIN instances i ON i.id = d.instance_id JOIN studies s "
                            "ON s.id = i.study_id WHERE s.study_uid = ?", (study_uid,)).fetchall()
    db.close()
    log(f"taken but never confirmed: study {d['state']}, {row[1]}: {row[2]}; {deliveries}")
    check(row[0] == "QUARANTINED" and row[1] == "repository-unconfirmed" and
          "never confirmed" in row[2], f"QUARANTINED with a clear reason: {row}")
    bad = [x for x in deliveries if x[0] == harness.sop_instance_uid(files[0])]
    check(len(bad) == 1 and bad[0][1] == "failed" and bad[0][2] == 2 and
          "without evidence of storing it" in bad[0][3],
          f"the hostile instance was sent max_resends + 1 = 2 times: {bad}")
    good = harness.sop_instance_uid(files[1])
    check(repo.instance_id(good) is not None, "the study's good instance reached Orthanc")
    rc, out, _ = gw.run_cli("quarantine", "list")
    check(rc == 0 and study_uid in out, f"dirgw quarantine list shows it: {out[-300:]}")


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-door-final-")
    check = harness.Checks()
    started = time.monotonic()
    repo = harness.Orthanc(work).start()
    folder = os.path.join(work, "export")
    os.makedirs(folder)
    ingest = (f"    max_object_size: 8MiB\n  folders:\n    - {{ path: {folder}, name: rt-export, "
              f"after: delete, settle: 1s, rescan: 1s }}\n")
    verify = "{ mode: qido, delay: 1s, retry: 1s, max_resends: 1, timeout: 10s }"
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, name="dirgw", stable_age="1s",
                         batch_max=1,
                         ingest_yaml=ingest, verify=verify,
                         policy_yaml="  validation: { profile: none }\n").start()
    cut_over_size(check, args, work, repo, gw)
    un_uids_verified(check, args, work, repo, gw, folder)
    unconfirmed_quarantined(check, args, work, repo, gw)
    text = gw.log_text()
    gw.stop()
    repo.stop()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in text, f"dirgwd's log free of '{marker}'")
    print(f"door final: {len(check.failures)} failures in {time.monotonic() - started:.1f} s")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())

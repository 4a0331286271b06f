#!/usr/bin/env python3
"""DIMSE command sets that DCMTK cannot survive do not end dirgwd (docs/hostile-input.md).

DCMTK parses every DIMSE command set itself, before any code of ours sees the message, from any
host that reaches the port under an allowed calling AE title (which is no authentication). Two
ways that ended dirgwd, both found on 2026-12-05:

- DCMTK 3.6.7 throws std::out_of_range while it reads a Directory Record Sequence (0004,1220) item
  whose Directory Record Type has a last value longer than 16 bytes, in any data set: the
  exception is now caught (common/dcmtk_guard.h);
- its reader is recursive and has no depth limit: sequences nested 16,384 deep (512 KiB)
  overflowed the stack. The SCP's transport now ends a connection whose command set grows past
  16 KiB before DCMTK reads more of it (ingest/dimse_scp/pdu_watch.h).

Here, with a real dirgwd and DCMTK's storescu:

1. a C-ECHO and a C-STORE carrying each: every such association is ended, its refusal recorded
   with the reason, nothing is stored, dirgwd lives; a good study sent afterwards is stored whole;
2. a DIMSE destination and a PACS (tests/tools/hostile_scp.py) whose C-STORE and C-FIND answers
   carry each, and a PACS whose C-FIND identifiers (data sets, which DCMTK's DcmSCU parses in
   memory) do: a second dirgwd says why it did not take them, counts nothing as delivered, lives;
3. a storage commitment report from the destination's AE title whose data set nests 100,000
   deep: pre-scanned before DCMTK parses it (ingest/dimse_scp/checked_receive.h), refused, not
   answered;

and both dirgwd stop cleanly with no sanitizer report. DCMTK
leaks the objects it was building when it threw (1-2 KB a message); those allocations, and only
DCMTK's, are suppressed for LeakSanitizer (tests/data/lsan/hostile-commands.supp)."""

import os
import shlex
import sqlite3
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tests/tools"))
from hostile_scp import HostileScp  # noqa: E402

RAWSCU = os.path.join(harness.SOURCE_DIR, "tests/tools/rawscu.py")
SUPPRESSIONS = os.path.join(harness.SOURCE_DIR, "tests/data/lsan/hostile-commands.supp")
GOOD_INSTANCES = 3


def implicit(group, element, value):
    if len(value) % 2:
        value += b" "
    return struct.pack("<HHI", group, element, len(value)) + value


def directory_record_bomb():
    """(0004,1220) with one item whose (0004,1430) ends in a 19-byte value, implicit VR LE."""
    record = implicit(0x0004, 0x1430, b"IMAGE AND A LONG TAIL\\IMAGE TOO LONG TAIL")
    item = struct.pack("<HHI", 0xFFFE, 0xE000, len(record)) + record
    return struct.pack("<HHI", 0x0004, 0x1220, len(item)) + item


def deep_nesting(depth):
    """Sequences nested `depth` deep, undefined lengths, implicit VR LE (16 bytes a level)."""
    down = struct.pack("<HHI", 0x0008, 0x1115, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000,
                                                                          0xFFFFFFFF)
    up = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return down * depth + up * depth


def rawscu(port, *args, calling="PACS1"):
    """args: the file to send (if any) first, then options."""
    p = subprocess.run([sys.executable, RAWSCU, "127.0.0.1", str(port), *args, "--calling-ae",
                        calling, "--called-ae", "DIRGW", "--timeout", "20"],
                       capture_output=True, text=True, timeout=120)
    line = (p.stdout.strip().splitlines() or ["rawscu: " + p.stderr.strip()[-300:]])[-1]
    return line, dict(tok.partition("=")[::2] for tok in shlex.split(line) if "=" in tok)


def clean_log(check, text, who):
    for needle in ("terminate called", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:"):
        check(needle not in text, f"no '{needle}' in {who}'s log")


def query2(gw, sql):
    con = sqlite3.connect(f"file:{os.path.join(gw.state_dir, 'catalog.db')}?mode=ro", uri=True,
                          timeout=30)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    work = harness.tempdir("dirgw-hostile-commands-")
    catalog = None

    def query(sql):
        con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    # The repository is never reached: stable_age keeps the study here; only the door matters.
    os.environ["LSAN_OPTIONS"] = f"suppressions={SUPPRESSIONS}:print_suppressions=0"
    gw = harness.Gateway(args.build_dir, work, "http://127.0.0.1:9/dicom-web", stable_age="1h")
    gw.start()
    catalog = os.path.join(gw.state_dir, "catalog.db")
    extras = {}
    for name, data in (("directory record", directory_record_bomb()),
                       ("sequences nested 65,536 deep", deep_nesting(65536))):
        extras[name] = os.path.join(work, name.replace(" ", "-").replace(",", "") + ".bin")
        with open(extras[name], "wb") as f:
            f.write(data)
    expected = {"directory record": "DICOM library failed",
                "sequences nested 65,536 deep": "command set longer than 16384 bytes"}

    good_uid, good_files = harness.synth(args.build_dir, os.path.join(work, "good"), "CT",
                                         GOOD_INSTANCES, seed=7)
    hostile = [(kind, message, extra) for kind in extras
               for message, extra in (("C-ECHO", ["--echo"]), ("C-STORE", [good_files[0]]))]
    for kind, message, extra in hostile:
        what = f"{message} with {kind} in its command set"
        before = query("SELECT coalesce(max(id), 0) FROM refusals")[0][0]
        line, fields = rawscu(gw.port, *extra, "--command-extra", extras[kind])
        log(f"{what}: {line}")
        check(line.startswith("aborted") or "closed" in fields,
              f"{what}: dirgwd ends the association (got: {line})")
        check(gw.process.alive(), f"{what}: dirgwd is alive after it")
        # The watch closes the connection first; dirgwd records the refusal right after.
        def reasons():
            return [r[0] for r in query(f"SELECT reason FROM refusals WHERE id > {before}")]
        try:
            harness.wait_for(f"{what}: its refusal row",
                             lambda: any(expected[kind] in r for r in reasons()), 10, 0.1)
        except TimeoutError:
            pass
        check(any(expected[kind] in r for r in reasons()),
              f"{what}: the refusal is recorded with its reason ({reasons()})")
    check(query("SELECT count(*) FROM instances")[0][0] == 0, "nothing was stored from them")
    check(gw.status_ok(), "dirgwd answers on its control socket")

    rc, out = harness.storescu(gw.port, [os.path.join(work, "good")])
    check(rc == 0, f"the good study is sent afterwards (storescu rc {rc}: {out[-500:]})")
    stored = query("SELECT count(*) FROM instances i JOIN studies s ON s.id = i.study_id "
                   f"WHERE s.study_uid = '{good_uid}'")[0][0]
    check(stored == GOOD_INSTANCES, f"the good study is stored whole ({stored}/{GOOD_INSTANCES})")

    exit_code = gw.stop()
    check(exit_code == 0, f"dirgwd stops cleanly on SIGTERM (exit {exit_code})")
    text = gw.log_text()
    for kind in extras:
        check(text.count(expected[kind]) >= 2, f"the log says why ({kind}): '{expected[kind]}'")
    clean_log(check, text, "the SCP's dirgwd")

    # The other side: a DIMSE destination whose C-STORE answers, and a PACS whose C-FIND answers,
    # carry the same command sets. dirgwd parses those with DCMTK too.
    payloads = [directory_record_bomb(), deep_nesting(65536)]
    destination, pacs = HostileScp(payloads), HostileScp(payloads)
    # A PACS whose C-FIND identifiers (data sets, which DcmSCU parses in memory) carry them.
    identifiers = HostileScp([directory_record_bomb(), deep_nesting(100000)], mode="identifier")
    pull = "  pull:\n" + "".join(
        f"    - {{ name: {name}, ae_title: PACS, host: 127.0.0.1, port: {scp.port}, every: 1s, "
        f"look_back: 1d, retry: {{ initial: 1s, max: 1s }}, timeout: 10s }}\n"
        for name, scp in (("hostile-pacs", pacs), ("hostile-identifiers", identifiers)))
    # Storage commitment: the destination's AE may send reports to the SCP (part 3 below).
    verify = "{ mode: storage-commitment, delay: 1s, retry: 2s, max_resends: 1, timeout: 15s }"
    gw2 = harness.Gateway(args.build_dir, work, "http://127.0.0.1:9/dicom-web", name="client",
                          stable_age="1s", ingest_yaml=pull, allowed_callers=("PACS1", "PACS"),
                          verify=verify)
    gw2.use_dimse("HOSTILE", destination.port)
    gw2.start()
    rc, out = harness.storescu(gw2.port, [os.path.join(work, "good")])
    check(rc == 0, f"the study is received by the second dirgwd (rc {rc})")

    def both_met(scp):
        return scp.answered >= 2 and scp.associations >= 2

    for name, scp in (("the destination", destination), ("the PACS", pacs),
                      ("the PACS with hostile identifiers", identifiers)):
        try:
            harness.wait_for(f"{name} to answer with both command sets", lambda scp=scp:
                             both_met(scp) and gw2.process.alive(), 60, 0.5)
        except TimeoutError as e:
            check(False, str(e))
    check(gw2.process.alive(), "the second dirgwd is alive after both")
    def said(needle, path):
        return any(needle in l and path in l for l in gw2.log_text().splitlines())

    def all_said():
        return all(said(n, p) for n in expected.values() for p in ("C-STORE", "C-FIND")) and \
            said("max_depth", "refused before it was parsed") and \
            said("longer than 16", "refused before it was parsed")
    try:
        harness.wait_for("the log to say why, for each answer", all_said, 30, 0.5)
    except TimeoutError:
        pass
    for kind, needle in expected.items():
        check(said(needle, "C-STORE"),
              f"the sender says why the destination's answer was not taken ({kind})")
        check(said(needle, "C-FIND"), f"the pull says why the PACS's answer was not taken ({kind})")
    for needle in ("sequence nesting deeper than max_depth", "has a component longer than 16"):
        check(said(needle, "C-FIND failed: DIMSE data set refused before it was parsed"),
              f"the pull refuses an identifier before DCMTK parses it ({needle})")
    sent = query2(gw2, "SELECT count(*) FROM deliveries WHERE state = 'sent'")
    check(sent == 0, f"nothing counts as delivered to the hostile destination ({sent})")

    # 3. A storage commitment report (N-EVENT-REPORT) from the destination's AE whose data set
    # nests 100,000 deep: DCMTK would parse it in memory; it is pre-scanned first.
    report = os.path.join(work, "deep-report.bin")
    with open(report, "wb") as f:
        f.write(deep_nesting(100000))
    line, fields = rawscu(gw2.port, "--n-event-report", report, calling="HOSTILE")
    log(f"N-EVENT-REPORT whose data set nests 100,000 deep: {line}")
    check(not line.startswith("status="), f"the report is not answered ({line})")
    check(gw2.process.alive(), "the second dirgwd is alive after the report")
    harness.wait_for("the refusal in the log", lambda: "data set refused before parsing" in
                     gw2.log_text(), 20, 0.5)
    check(any("storage commitment report" in l and "sequence nesting deeper than max_depth" in l
              for l in gw2.log_text().splitlines()),
          "the log says the report's data set was refused for its nesting")
    exit_code = gw2.stop()
    check(exit_code == 0, f"the second dirgwd stops cleanly on SIGTERM (exit {exit_code})")
    clean_log(check, gw2.log_text(), "the client's dirgwd")
    destination.stop()
    pacs.stop()
    identifiers.stop()
    return check.finish("OK: dirgwd survived command sets that DCMTK cannot")


if __name__ == "__main__":
    sys.exit(main())

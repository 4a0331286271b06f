#!/usr/bin/env python3
"""The hostile-input suite through the real Storage SCP, under the ASan/UBSan build of dirgwd.

tests/tools/make_bad_inputs.py generates the cases (truncation anywhere, lying lengths, deep and
unterminated nesting, huge counts, lying and unknown transfer syntaxes, broken envelopes,
polyglot preambles, invalid UIDs, traversal/shell/SQL strings in every identifier, oversized
values, unusual character sets, broken associations and streams cut mid-PDU); each says what must
happen. They are sent one after the other with rawscu.py (raw datasets, any breakage), storescu
(what a PACS would send) or a sender written here that dies half-way through a PDU. Meanwhile a
good study goes in through storescu, and at the end it must be in Orthanc whole, exactly once.

Every case must end as its expectation says, with dirgwd alive (no crash) and within its time-out
(no hang). At the end: dirgwd exits 0 on SIGTERM, its log has no sanitizer report and no forged
line, the spool holds only dirgw's own hex names, and the catalog is intact with every hostile
value stored as data. Prints one line:  bad input: N cases, N as expected, crashes 0, hangs 0
See docs/hostile-input.md.
"""

import argparse
import json
import os
import re
import shlex
import sqlite3
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import harness  # noqa: E402
import rawscu  # noqa: E402
from harness import log  # noqa: E402

MAKE_BAD_INPUTS = os.path.join(harness.SOURCE_DIR, "tests/tools/make_bad_inputs.py")
RAWSCU = os.path.join(harness.SOURCE_DIR, "tests/tools/rawscu.py")
CASE_TIMEOUT = 120  # seconds; a case still running then is a hang (unless the case allows more)
GOOD_INSTANCES = 20
# Strings of the hostile cases that must never appear in a file or directory name.
HOSTILE_NAME_TOKENS = ["passwd", "DROP", "rm -rf", "$(", "..", "\\", "'", ";", "FAKE-LOG"]


# --------------------------------------------------------------------------------------------
# Looking at dirgwd's state from outside: the catalog (read-only) and the spool.

class State:
    def __init__(self, state_dir):
        self.dir = state_dir
        self.catalog = os.path.join(state_dir, "catalog.db")
        self.spool = os.path.join(state_dir, "spool")

    def query(self, sql, params=()):
        con = sqlite3.connect(f"file:{self.catalog}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def last_refusal_id(self):
        return self.query("SELECT coalesce(max(id), 0) FROM refusals")[0][0]

    def refusals_since(self, last_id):
        return [r[0] for r in self.query("SELECT reason FROM refusals WHERE id > ? ORDER BY id",
                                         (last_id,))]

    def objects_for(self, sop_instance_uid):
        if sop_instance_uid is None:
            return []
        return [r[0] for r in self.query(
            "SELECT object_sha256 FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,))]

    def object_path(self, sha256):
        return os.path.join(self.spool, "objects", sha256[:2], sha256)

    def temporaries(self):
        return harness.spool_temporaries(self.spool)


def dataset_of(part10):
    """The dataset bytes of a Part-10 file (after the meta group)."""
    if len(part10) < 144 or part10[128:132] != b"DICM":
        return None
    (glen,) = struct.unpack_from("<I", part10, 140)
    return part10[144 + glen:]


# --------------------------------------------------------------------------------------------
# Senders

def run_rawscu(port, case, path, meta):
    send = case["send"]
    args = [sys.executable, RAWSCU, "127.0.0.1", str(port)]
    if send.get("raw"):
        # The whole file goes as the dataset; the command claims the case object's UIDs.
        args += ["--raw-dataset", path, "--sop-class", meta["sop_class"],
                 "--sop-instance", meta["sop_instance"], "--ts", meta["transfer_syntax"]]
    else:
        args.append(path)
    extra = list(send.get("extra", []))
    if "stall_after_command" in send:
        # Silence at a PDU boundary: after the command's P-DATA-TF PDU, before the dataset's.
        m = rawscu.read_part10_meta(path)
        command = rawscu.c_store_rq(1, m["sop_class"], m["sop_instance"])
        extra += ["--stall-after", str(6 + 6 + len(command)),
                  "--stall-seconds", str(send["stall_after_command"])]
    timeout = send.get("timeout", 30)
    args += ["--calling-ae", send.get("calling", "PACS1"), "--called-ae", send.get("called", "DIRGW"),
             "--timeout", str(timeout)] + extra
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=max(CASE_TIMEOUT, timeout + 60))
    line = (p.stdout.strip().splitlines() or [""])[-1]
    if not line:
        line = "rawscu: " + p.stderr.strip()[-300:]
    fields = {}
    for tok in shlex.split(line):
        k, _, v = tok.partition("=")
        fields[k] = v
    return p.returncode, line, fields


def run_storescu(port, path):
    rc, out = harness.storescu(port, [path], extra=["-v"])
    status = None
    m = re.search(r"Received Store Response \(([^)]*)\)", out)
    if m:
        status = m.group(1)
    return rc, out, status


def send_and_die(port, path, how):
    """Opens an association, sends the C-STORE command and part of the dataset, then dies:
    'a-abort'      complete PDVs for half the dataset (none marked last), then A-ABORT;
    'close'        the connection closes in the middle of a P-DATA-TF PDU;
    'stall-close'  half a PDU, 2 s of silence, then the connection closes.
    Returns what came back, if anything (nothing is the expectation)."""
    meta = rawscu.read_part10_meta(path)
    with open(path, "rb") as f:
        data = f.read()[meta["dataset_offset"]:]
    conn = rawscu.Connection("127.0.0.1", port, 30)
    try:
        contexts = [(1, rawscu.VERIFICATION, [rawscu.IMPLICIT_LE]),
                    (3, meta["sop_class"], [meta["transfer_syntax"]])]
        conn.send(rawscu.associate_rq("PACS1", "DIRGW", contexts, 16384), "associate")
        pdu_type, body = conn.read_pdu("associate")
        if pdu_type != 0x02:
            return f"association not accepted (PDU 0x{pdu_type:02x})"
        _, peer_max = rawscu.parse_associate_ac(body)
        chunk = (peer_max or 16384) - 6
        command = rawscu.c_store_rq(1, meta["sop_class"], meta["sop_instance"])
        conn.send(rawscu.pdu(0x04, rawscu.pdv(3, True, True, command)), "send")
        half = len(data) // 2
        pos = 0
        while pos + chunk <= half:
            conn.send(rawscu.pdu(0x04, rawscu.pdv(3, False, False, data[pos:pos + chunk])), "send")
            pos += chunk
        if how == "a-abort":
            conn.send(rawscu.pdu(0x07, bytes(4)), "abort")
        else:
            p = rawscu.pdu(0x04, rawscu.pdv(3, False, False, data[pos:pos + chunk]))
            conn.send(p[:len(p) // 2], "send")
            if how == "stall-close":
                time.sleep(2)
            return "nothing (the sender closed the connection mid-PDU)"
        # After the A-ABORT: whatever dirgwd says now must not be a success.
        conn.sock.settimeout(2)
        try:
            pdu_type, body = conn.read_pdu("after")
            return f"PDU 0x{pdu_type:02x}"
        except rawscu.Outcome as o:
            if o.code == rawscu.EXIT_TIMEOUT:
                return "nothing within 2 s"
            return "closed" if o.code == rawscu.EXIT_ABORTED else f"outcome {o.fields}"
        except OSError:
            return "closed"
    except rawscu.Outcome as o:
        return f"outcome {o.fields}"
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# One case

class Result:
    def __init__(self, case):
        self.case = case
        self.observed = ""
        self.problems = []
        self.crash = False
        self.hang = False
        self.notes = []

    @property
    def ok(self):
        return not self.problems and not self.crash and not self.hang


def expected_text(e):
    out = e["outcome"]
    if "status" in e:
        out += " " + e["status"]
    if "reason" in e:
        out += f' "{e["reason"]}"'
    if "refusal" in e and e["outcome"] == "aborted":
        out += f' (refusal "{e["refusal"]}")'
    if "assoc_reason" in e:
        out += f" (result {e['result']}, source {e['source']}, reason {e['assoc_reason']})"
    return out


def run_case(case, cases_dir, gw, state):
    r = Result(case)
    e = case["expect"]
    path = os.path.join(cases_dir, case["file"])
    with open(path, "rb") as f:
        data = f.read()
    sop = case.get("sop_instance_uid")
    before_objects = set(state.objects_for(sop))
    last_refusal = state.last_refusal_id()
    tool = case["send"]["tool"]
    started = time.time()
    status = None
    rc = None
    probe = {"max_tmp": 0}
    try:
        if tool == "rawscu":
            meta = None
            if case["send"].get("raw"):
                # The UIDs the command claims: the case object's (see make_bad_inputs.py).
                meta = {"sop_class": "1.2.840.10008.5.1.4.1.1.7", "sop_instance": sop,
                        "transfer_syntax": rawscu.EXPLICIT_LE}
            if case.get("probe_spool_tmp"):
                # The case pauses part-way (--stall-after); the spool is watched meanwhile.
                done = threading.Event()

                def watch():
                    while not done.is_set():
                        for _, size in state.temporaries():
                            probe["max_tmp"] = max(probe["max_tmp"], size)
                        time.sleep(0.02)
                t = threading.Thread(target=watch, daemon=True)
                t.start()
                try:
                    rc, line, fields = run_rawscu(gw.port, case, path, meta)
                finally:
                    done.set()
                    t.join()
            else:
                rc, line, fields = run_rawscu(gw.port, case, path, meta)
            r.observed = line
            status = fields.get("status")
        elif tool == "storescu":
            rc, out, status_text = run_storescu(gw.port, path)
            m = re.search(r"0x([0-9A-Fa-f]{4})", status_text or "")
            status = f"0x{m.group(1).upper()}" if m else ("0x0000" if status_text == "Success" else None)
            r.observed = f"storescu rc={rc} response={status_text!r}"
        elif tool == "abort":
            r.observed = "sender died; dirgwd answered: " + send_and_die(gw.port, path,
                                                                          case["send"]["how"])
        else:
            raise ValueError(tool)
    except subprocess.TimeoutExpired:
        r.hang = True
        r.observed = f"no answer within {CASE_TIMEOUT}s"
        return r
    elapsed = time.time() - started
    if elapsed > max(CASE_TIMEOUT, case["send"].get("timeout", 0) + 60):
        r.hang = True
    if elapsed > 10:
        r.observed += f" [took {elapsed:.0f} s]"

    if not gw.process.alive():
        r.crash = True
        r.problems.append("dirgwd died")
        return r

    # Let dirgwd finish recording (the refusal row is written after the response goes out).
    time.sleep(0.1)
    refusals = state.refusals_since(last_refusal)
    for _ in range(20):
        if refusals or (e["outcome"] not in ("refused", "association-rejected")
                        and not e.get("refusal")):
            break
        time.sleep(0.1)
        refusals = state.refusals_since(last_refusal)
    new_objects = set(state.objects_for(sop)) - before_objects
    if probe["max_tmp"]:
        r.notes.append(f"spool/tmp reached {probe['max_tmp'] / 2**20:.1f} MiB during receipt")
        r.observed += f" [spool/tmp peak {probe['max_tmp'] / 2**20:.1f} MiB]"
    if refusals:
        r.observed += f" [refusal: {refusals[-1]}]"

    outcome = e["outcome"]
    if outcome == "stored":
        if status != e["status"]:
            r.problems.append(f"status {status}, expected {e['status']}")
        if not new_objects:
            r.problems.append("not in the catalog")
        for sha in new_objects:
            obj = state.object_path(sha)
            if not os.path.isfile(obj):
                r.problems.append(f"catalogued object {sha[:12]}... missing from the spool")
                continue
            with open(obj, "rb") as f:
                stored_bytes = f.read()
            if tool == "rawscu" and dataset_of(stored_bytes) != dataset_of(data):
                r.problems.append("stored dataset differs from the bytes sent (not bit-preserving)")
            if case.get("check_zero_preamble") and stored_bytes[:128] != bytes(128):
                r.problems.append("the stored object kept a non-zero preamble (polyglot)")
    elif outcome == "refused":
        if status != e["status"]:
            r.problems.append(f"status {status}, expected {e['status']}")
        if not any(e["reason"] in x for x in refusals):
            r.problems.append(f"no refusal recorded with '{e['reason']}' (got {refusals})")
        if new_objects:
            r.problems.append("refused, yet catalogued")
    elif outcome == "association-rejected":
        if rc != rawscu.EXIT_REJECTED:
            r.problems.append(f"rawscu exit {rc}, expected {rawscu.EXIT_REJECTED} (rejected)")
        else:
            got = (int(fields.get("result", -1)), int(fields.get("source", -1)),
                   int(fields.get("reason", -1)))
            if got != (e["result"], e["source"], e["assoc_reason"]):
                r.problems.append(f"rejected with {got}")
        if not any(e["refusal"] in x for x in refusals):
            r.problems.append(f"no refusal recorded with '{e['refusal']}'")
        if new_objects:
            r.problems.append("catalogued")
    elif outcome == "context-rejected":
        if rc != rawscu.EXIT_CONTEXT:
            r.problems.append(f"rawscu exit {rc}, expected {rawscu.EXIT_CONTEXT} (context rejected)")
        if new_objects:
            r.problems.append("catalogued")
    elif outcome == "aborted":
        if e.get("refusal") and not any(e["refusal"] in x for x in refusals):
            r.problems.append(f"no refusal recorded with '{e['refusal']}' (got {refusals})")
        if e.get("max_spool_tmp") and probe["max_tmp"] > e["max_spool_tmp"]:
            r.problems.append(f"spool/tmp grew to {probe['max_tmp']} bytes, more than "
                              f"{e['max_spool_tmp']}")
        if status == "0x0000":
            r.problems.append("success reported for an object that never arrived whole")
        if tool == "rawscu" and rc != rawscu.EXIT_ABORTED:
            r.problems.append(f"rawscu exit {rc}, expected {rawscu.EXIT_ABORTED} (aborted/closed)")
        if new_objects:
            r.problems.append("an incomplete object was catalogued")
    else:
        r.problems.append(f"unknown expectation {outcome}")
    return r


# --------------------------------------------------------------------------------------------
# The run

def check_spool_names(state):
    """Only dirgw's own names on disk: in the spool, objects/<2 hex>/<64 hex> and
    tmp/<32 hex>.part; elsewhere in the state directory (catalog, keys, audit, quarantine...),
    plain names of letters, digits, '.', '_' and '-'. None may contain a hostile token."""
    bad = []
    plain = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
    objects = os.path.join("spool", "objects")
    for root, dirs, files in os.walk(state.dir):
        rel = os.path.relpath(root, state.dir)
        for name in dirs + files:
            full = os.path.normpath(os.path.join(rel, name))
            for tok in HOSTILE_NAME_TOKENS:
                if tok in name:
                    bad.append(f"{full!r} contains {tok!r}")
            if rel == "spool":
                ok = plain.fullmatch(name) is not None
            elif rel == objects:
                ok = re.fullmatch(r"[0-9a-f]{2}", name) is not None
            elif rel.startswith(objects + os.sep):
                ok = re.fullmatch(r"[0-9a-f]{64}", name) is not None and name.startswith(rel[-2:])
            elif rel == os.path.join("spool", "tmp"):
                ok = re.fullmatch(r"[0-9a-f]{32}\.part|slot-[0-9a-f]{32}", name) is not None
            else:
                ok = plain.fullmatch(name) is not None
            if not ok:
                bad.append(f"unexpected name {full!r}")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--only", action="append", default=[], help="run only these cases (repeatable)")
    args = ap.parse_args()
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])

    work = harness.tempdir("dirgw-badinput-")
    cases_dir = os.path.join(work, "cases")
    subprocess.run([sys.executable, MAKE_BAD_INPUTS, "--out", cases_dir], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(cases_dir, "manifest.json")) as f:
        cases = json.load(f)
    if args.only:
        cases = [c for c in cases if c["name"] in args.only]
    log(f"{len(cases)} hostile-input cases generated")

    manifest = os.path.join(work, "manifest.jsonl")
    good_uid, good_files = harness.synth(args.build_dir, os.path.join(work, "good"), "CT",
                                         GOOD_INSTANCES, seed=31, patient_index=4,
                                         manifest=manifest)

    repo = harness.Orthanc(work).start()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb)
    # Small enough to test the limits cheaply: 32 MiB objects, 5 s of silence ends an association.
    with open(gw.config_path) as f:
        cfg = f.read()
    cfg = cfg.replace("    dimse_timeout: 30s\n", "    dimse_timeout: 5s\n    max_object_size: 32MiB\n")
    assert "max_object_size: 32MiB" in cfg
    with open(gw.config_path, "w") as f:
        f.write(cfg)
    gw.start()
    state = State(gw.state_dir)
    failures = []

    # The good study goes in while the hostile cases run, over its own association.
    good = {}

    def send_good():
        good["rc"], good["out"] = harness.storescu(gw.port, [os.path.join(work, "good")])
    good_thread = threading.Thread(target=send_good)
    good_thread.start()

    results = []
    crashes = hangs = 0
    for case in cases:
        r = run_case(case, cases_dir, gw, state)
        results.append(r)
        mark = "ok  " if r.ok else "FAIL"
        log(f"{mark} {case['name']}: expected {expected_text(case['expect'])}; observed {r.observed}"
            + (f"; PROBLEMS: {'; '.join(r.problems)}" if r.problems else ""))
        if r.hang:
            hangs += 1
        if r.crash:
            crashes += 1
            log(f"dirgwd died during {case['name']}:\n" + gw.log_text()[-3000:])
            gw.process.stop()
            gw.start()  # the remaining cases still run

    good_thread.join(timeout=600)
    if good.get("rc") != 0:
        failures.append(f"storescu of the good study failed: {good.get('out', '')[-1500:]}")

    # The good study: whole in Orthanc, each instance delivered exactly once.
    def good_in_orthanc():
        found = repo.post("/tools/lookup", good_uid)
        ids = [x["ID"] for x in found if x.get("Type") == "Study"]
        if not ids:
            return False
        n = len(repo.get(f"/studies/{ids[0]}/instances") or [])
        return n >= GOOD_INSTANCES and n
    try:
        n = harness.wait_for("the good study in Orthanc", good_in_orthanc, 300, 0.5)
        if n != GOOD_INSTANCES:
            failures.append(f"Orthanc holds {n} instances of the good study, expected {GOOD_INSTANCES}")
    except TimeoutError as e:
        failures.append(str(e))
    compared = 0
    for path in good_files:
        uid = harness.sop_instance_uid(path)
        oid = repo.instance_id(uid)
        if oid is None:
            failures.append(f"good instance {uid} is not in Orthanc")
            continue
        with open(path, "rb") as f:
            diffs = harness.compare_datasets(f.read(), repo.instance_file(oid))
        if diffs:
            failures.append(f"good instance {uid} differs in Orthanc: {diffs[:5]}")
        compared += 1

    def good_delivered():
        rows = state.query(
            "SELECT d.state, d.attempts FROM deliveries d JOIN instances i ON i.id = d.instance_id "
            "JOIN studies s ON s.id = i.study_id WHERE s.study_uid = ?", (good_uid,))
        return len(rows) == GOOD_INSTANCES and all(st == "sent" for st, _ in rows) and rows
    try:
        rows = harness.wait_for("the catalog to record the good study as sent", good_delivered, 60, 0.5)
        if any(a != 1 for _, a in rows):
            failures.append(f"good study delivery attempts {sorted(a for _, a in rows)}, expected 1 each")
    except TimeoutError as e:
        failures.append(str(e))

    # The catalog is intact and hostile values are data in it.
    if state.query("PRAGMA integrity_check")[0][0] != "ok":
        failures.append("catalog integrity_check failed")
    tables = {r[0] for r in state.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for t in ("objects", "studies", "instances", "deliveries", "refusals"):
        if t not in tables:
            failures.append(f"catalog table {t} is gone")
    verbatim = 0
    for r in results:
        c = r.case
        if c["expect"]["outcome"] != "stored" or not r.ok or "study_uid" not in c:
            continue
        if state.query("SELECT count(*) FROM studies WHERE study_uid = ?", (c["study_uid"],))[0][0] != 1:
            failures.append(f"{c['name']}: its Study Instance UID is not in the catalog verbatim")
        else:
            verbatim += 1

    # Issue 17, item 10: validation (ontario-dir) records its own finding for the stored objects
    # whose text, value lengths or private values it must flag.
    flagged = 0
    for r in results:
        c = r.case
        code = c["expect"].get("finding")
        if not code or not r.ok or "sop_instance_uid" not in c:
            continue

        def recorded(c=c, code=code):
            return state.query("SELECT count(*) FROM policy_findings WHERE sop_instance_uid = ? "
                               "AND code = ?", (c["sop_instance_uid"], code))[0][0] > 0
        try:
            harness.wait_for(f"finding {code} for {c['name']}", recorded, 60, 0.5)
            flagged += 1
        except TimeoutError:
            failures.append(f"{c['name']}: no validation finding {code} recorded")

    # Nothing half-received left behind, and only dirgw's own names on disk.
    try:
        harness.wait_for("spool/tmp to be empty", lambda: not state.temporaries(), 30, 0.5)
    except TimeoutError:
        failures.append(f"temporaries left in spool/tmp: {state.temporaries()}")
    failures += [f"spool: {b}" for b in check_spool_names(state)]

    status = gw.status()
    exit_code = gw.stop()
    if exit_code != 0:
        failures.append(f"dirgwd exited {exit_code} on SIGTERM")
    text = gw.log_text()
    for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        if needle in text:
            crashes += 1
            i = text.index(needle)
            failures.append(f"dirgwd log has '{needle}': {text[max(0, i - 200):i + 1500]}")
    if re.search(r"^FAKE-LOG-LINE", text, re.M):
        failures.append("a control character in an identifier forged a line in dirgwd's log")
    failures += harness.scan_for_phi({"dirgwd.log": text}, manifest)
    for c in cases:
        # The cases' own patient values: PatientID BADINPUT-xxxxxx, accession BIxxxxxxxx.
        for token in re.findall(r"BADINPUT-[0-9a-f]{6}", json.dumps(c)):
            if token in text:
                failures.append(f"a case's Patient ID is in dirgwd's log ({c['name']})")
    repo.stop()

    for r in results:
        if not r.ok:
            failures.append(f"{r.case['name']}: expected {expected_text(r.case['expect'])}; "
                            f"observed {r.observed}; {'; '.join(r.problems)}")
    log(f"validation findings recorded for {flagged} stored cases")
    log(f"good study: {compared} instances compared; {verbatim} stored cases found in the catalog "
        f"under their Study Instance UID verbatim; refusals in status: "
        f"{status.get('refusals', {}).get('count')}")
    for f in failures:
        print("FAIL:", f)
    as_expected = sum(1 for r in results if r.ok)
    print(f"bad input: {len(results)} cases, {as_expected} as expected, crashes {crashes}, "
          f"hangs {hangs}")
    return 0 if not failures and as_expected == len(results) and not crashes and not hangs else 1


if __name__ == "__main__":
    sys.exit(main())

"""A PACS that keeps sending until every instance is acknowledged, and the checks that what was
acknowledged arrived and that the stopped gateway left a sound catalog and a clean log: shared
by the crash tests (test_fault_injection, test_power_cut)."""

import os
import re
import sqlite3
import subprocess
import threading
import time

import harness


class ResendingPacs:
    """storescu as a PACS that keeps sending what was not acknowledged yet, chunk files per
    association. acked: the files whose C-STORE got a success response (from storescu -v);
    busy: a storescu is running now."""

    def __init__(self, port, files, chunk=20, timeout=10, pause_ok=0.4, pause_failed=0.2):
        self.port = port
        self.remaining = list(files)
        self.chunk = chunk
        self.timeout = str(timeout)
        self.pauses = (pause_ok, pause_failed)
        self.acked = set()
        self.refused = 0
        self.busy = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while self.remaining and not self.stop.is_set():
            env = dict(os.environ, TCP_NODELAY="1")
            self.busy = True
            p = subprocess.run(["storescu", "-v", "-aet", "PACS1", "-aec", "DIRGW", "-to",
                                self.timeout, "-ta", self.timeout, "-td", "10", "127.0.0.1",
                                str(self.port)] + self.remaining[:self.chunk],
                               capture_output=True, text=True, env=env, timeout=120)
            self.busy = False
            current = None
            for line in (p.stdout + p.stderr).splitlines():
                m = re.search(r"Sending file: (.*)$", line)
                if m:
                    current = m.group(1).strip()
                elif "Received Store Response (Success)" in line and current:
                    self.acked.add(current)
                    current = None
                elif "Received Store Response" in line:
                    self.refused += 1
                    current = None
            self.remaining = [f for f in self.remaining if f not in self.acked]
            # A PACS sends as studies are read; not all at once.
            time.sleep(self.pauses[0] if p.returncode == 0 else self.pauses[1])

    def finish(self, timeout):
        """Waits until every instance is acknowledged; returns the acknowledged files, sorted."""
        harness.wait_for("the PACS to have every instance acknowledged", lambda: not self.remaining,
                         timeout, 0.5)
        self.stop.set()
        self.thread.join(60)
        return sorted(self.acked)


def wait_drained(gw, timeout):
    """dirgwd's status once its one destination has nothing pending."""
    def drained():
        st = gw.status()
        return st["destinations"][0]["pending_instances"] == 0 and st
    return harness.wait_for("dirgw to send everything", drained, timeout, 0.5)


def missing_or_different(repo, acked, uid_of=harness.sop_instance_uid):
    """(uids of acknowledged files not in the repository, failures for those that differ)."""
    missing, failures = [], []
    for path in acked:
        uid = uid_of(path)
        oid = repo.instance_id(uid)
        if oid is None:
            missing.append(uid)
            continue
        with open(path, "rb") as f:
            diffs = harness.compare_datasets(f.read(), repo.instance_file(oid))
        if diffs:
            failures.append(f"instance {uid} differs in the repository: {diffs[:3]}")
    return missing, failures


def stopped_gateway_failures(gw):
    """After gw.stop(): the catalog's PRAGMA integrity_check and sanitizer reports in its log."""
    failures = []
    db = sqlite3.connect(os.path.join(gw.state_dir, "catalog.db"))
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    if integrity != "ok":
        failures.append(f"catalog integrity_check: {integrity}")
    text = gw.log_text()
    for bad in ("ERROR: AddressSanitizer", "runtime error:"):
        if bad in text:
            failures.append(f"sanitizer report in dirgwd's log: {bad}")
    return failures

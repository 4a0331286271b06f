#!/usr/bin/env python3
"""The dirgw CLI's command line, against a stand-in daemon (no dirgwd, no Orthanc).

For every command and its options, and for the usage errors: the exit status and the exact
request the CLI sends over the control socket. The stand-in answers every request with one
canned answer that every printer can show (or, for the refusal cases, {"ok": false}). Also: a
usage error says what is wrong on stderr and prints nothing on stdout; --help and --version.
The expectations were taken from the CLI before it moved to CLI11, so they pin its behaviour.
Prints one line:  cli usage: N cases, N failures
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

ANSWER = {"ok": True, "pid": 1, "version": "x", "started_at": "t", "facility": "f",
          "catalog": {"studies": 1, "instances": 2, "bytes": 3000, "schema": 5, "states": []},
          "spool": {"free_bytes": 1e9, "floor_bytes": 1e6}, "destinations": [],
          "refusals": {"count": 0}, "studies": [], "rounds": [], "instance_list": [],
          "findings": [], "rejected": [], "identifiers": [], "state": {}, "history": [],
          "known": True, "intact": True, "anchor": None, "checked": 3, "xml": "<x/>\n",
          "entries": 2, "accepted": 1, "changed": 1, "refused": ["because"],
          "objects_removed": 2, "derived_removed": 1, "study_uid": "1.2"}

# (arguments, exit status, the request sent or None[, the daemon refuses])
CASES = [
    ([], 2, None),
    (['foo'], 2, None),
    (['--socket', '$SOCK', 'foo'], 2, None),
    (['--socket', '$SOCK', 'status'], 0, {'cmd': 'status'}),
    (['--socket', '$SOCK', 'status', '--json'], 0, {'cmd': 'status'}),
    (['--socket', '$SOCK', '--json', 'status'], 0, {'cmd': 'status'}),
    (['status', '--socket', '$SOCK'], 0, {'cmd': 'status'}),
    (['--socket', '$SOCK', 'status', 'x'], 2, None),
    (['--socket', '$SOCK', 'studies'], 0, {'cmd': 'studies'}),
    (['--socket', '$SOCK', 'purge'], 0, {'cmd': 'purge', 'dry_run': False}),
    (['--socket', '$SOCK', 'purge', '--dry-run'], 0, {'cmd': 'purge', 'dry_run': True}),
    (['--socket', '$SOCK', 'purge', '--dry-run', '--json'], 0, {'cmd': 'purge', 'dry_run': True}),
    (['--socket', '$SOCK', 'purge', 'x'], 2, None),
    (['--socket', '$SOCK', 'studies', '--state', 'HELD', '--destination', 'd', '--limit', '5'], 0, {'cmd': 'studies', 'destination': 'd', 'limit': 5, 'state': 'HELD'}),
    (['--socket', '$SOCK', 'studies', '--limit', 'abc'], 2, None),  # was sent as limit 0
    (['--socket', '$SOCK', 'studies', '--bogus'], 2, None),
    (['--socket', '$SOCK', 'studies', '--state'], 2, None),
    (['--socket', '$SOCK', 'study', '1.2.3'], 0, {'cmd': 'study', 'study_uid': '1.2.3'}),
    (['--socket', '$SOCK', 'study', '1.2.3', '--json'], 0, {'cmd': 'study', 'study_uid': '1.2.3'}),
    (['--socket', '$SOCK', 'study'], 2, None),
    (['--socket', '$SOCK', 'study', '1', '2'], 2, None),
    (['--socket', '$SOCK', 'study', '1.2', '--destination', 'd'], 0, {'cmd': 'study', 'destination': 'd', 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'retry', '1.2'], 0, {'cmd': 'retry', 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'retry', '--failed'], 0, {'all_failed': True, 'cmd': 'retry'}),
    (['--socket', '$SOCK', 'retry', '--failed', '--destination', 'd'], 0, {'all_failed': True, 'cmd': 'retry', 'destination': 'd'}),
    (['--socket', '$SOCK', 'retry'], 2, None),
    (['--socket', '$SOCK', 'retry', '1.2', '--failed'], 0, {'all_failed': True, 'cmd': 'retry', 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'hold', '1.2', '--reason', 'radiologist reviewing'], 0, {'cmd': 'hold', 'reason': 'radiologist reviewing', 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'hold', '1.2', '--destination', 'd'], 0, {'cmd': 'hold', 'destination': 'd', 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'hold'], 2, None),
    (['--socket', '$SOCK', 'release', '1.2', '--reason', 'x'], 2, None),
    (['--socket', '$SOCK', 'release', '1.2'], 0, {'cmd': 'release', 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'consent', 'grant', 'hn:1'], 0, {'action': 'grant', 'cmd': 'consent', 'patient': 'hn:1'}),
    (['--socket', '$SOCK', 'consent', 'withdraw', 'hn:1', '--destination', 'd'], 0, {'action': 'withdraw', 'cmd': 'consent', 'patient': 'hn:1', 'scope': 'd'}),
    (['--socket', '$SOCK', 'consent', 'show', 'hn:1'], 0, {'action': 'show', 'cmd': 'consent', 'patient': 'hn:1'}),
    (['--socket', '$SOCK', 'consent', 'show', 'hn:1', '--json'], 0, {'action': 'show', 'cmd': 'consent', 'patient': 'hn:1'}),
    (['--socket', '$SOCK', 'consent', 'import', '$W/consent.csv'], 0, {'action': 'import', 'cli_rejected': [{'line': 3, 'reason': 'expected 2 columns, found 3'}], 'cmd': 'consent', 'file': 'consent.csv', 'rows': [{'decision': 'grant', 'health_number': '1234567890', 'line': 2}]}),
    (['--socket', '$SOCK', 'consent', 'import', '$W/consent.csv', '--destination', 'd'], 0, {'action': 'import', 'cli_rejected': [{'line': 3, 'reason': 'expected 2 columns, found 3'}], 'cmd': 'consent', 'file': 'consent.csv', 'rows': [{'decision': 'grant', 'health_number': '1234567890', 'line': 2}], 'scope': 'd'}),
    (['--socket', '$SOCK', 'consent', 'import', '$W/bad.csv'], 2, None),
    (['--socket', '$SOCK', 'consent', 'import', '/nonexistent.csv'], 2, None),
    (['--socket', '$SOCK', 'consent'], 2, None),
    (['--socket', '$SOCK', 'consent', 'grant'], 2, None),
    (['--socket', '$SOCK', 'consent', 'foo', 'x'], 2, None),
    (['--socket', '$SOCK', 'mrn', 'import', '$W/mrn.csv'], 0, {'cmd': 'mrn_import', 'rows': [{'health_number': '1234567890', 'line': 2, 'mrn': '1', 'mrn_issuer': 'A'}]}),
    (['--socket', '$SOCK', 'mrn', 'import'], 2, None),
    (['--socket', '$SOCK', 'mrn', 'import', '$W/bad.csv'], 2, None),
    (['--socket', '$SOCK', 'mrn'], 2, None),
    (['--socket', '$SOCK', 'quarantine', 'list'], 0, {'action': 'list', 'cmd': 'quarantine', 'confirmed': False}),
    (['--socket', '$SOCK', 'quarantine', 'show', '1.2'], 0, {'action': 'show', 'cmd': 'quarantine', 'confirmed': False, 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'quarantine', 'release', '1.2'], 0, {'action': 'release', 'cmd': 'quarantine', 'confirmed': False, 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'quarantine', 'delete', '1.2', '--yes'], 0, {'action': 'delete', 'cmd': 'quarantine', 'confirmed': True, 'study_uid': '1.2'}),
    (['--socket', '$SOCK', 'quarantine', 'delete', '1.2'], 2, None),
    (['--socket', '$SOCK', 'quarantine', 'show'], 2, None),
    (['--socket', '$SOCK', 'quarantine'], 2, None),
    (['--socket', '$SOCK', 'quarantine', 'list', '--json'], 0, {'action': 'list', 'cmd': 'quarantine', 'confirmed': False}),
    (['--socket', '$SOCK', 'audit', 'verify'], 0, {'action': 'verify', 'cmd': 'audit'}),
    (['--socket', '$SOCK', 'audit', 'export', '--since', '2026-11-28'], 0, {'action': 'export', 'cmd': 'audit', 'since_ms': 1795824000000}),
    (['--socket', '$SOCK', 'audit', 'export', '--since', '2026-11-28T10:00:00Z', '--out', '$W/audit.xml'], 0, {'action': 'export', 'cmd': 'audit', 'since_ms': 1795860000000}),
    (['--socket', '$SOCK', 'audit', 'export'], 0, {'action': 'export', 'cmd': 'audit', 'since_ms': 0}),
    (['--socket', '$SOCK', 'audit', 'export', '--since', 'yesterday'], 2, None),
    (['--socket', '$SOCK', 'audit'], 2, None),
    (['--socket', '$SOCK', 'audit', 'verify', 'x'], 2, None),
    (['config', 'check', '$W/bad.yaml'], 1, None),
    (['config', 'check', '$W/bad.yaml', '--json'], 1, None),
    (['config', 'check'], 2, None),
    (['config'], 2, None),
    (['--config', '$W/bad.yaml', 'status'], 2, None),
    (['--socket', '/nonexistent/sock', 'status'], 3, None),
    (['--socket', '/nonexistent/sock', 'status', '--json'], 3, None),
    (['--socket', '$SOCK', '--socket', '/nonexistent/sock', 'status'], 3, None),
    (['--socket', '$SOCK', 'status', '--json', '--json'], 0, {'cmd': 'status'}),
    (['--socket', '$SOCK', 'hold', '1.2'], 1, {'cmd': 'hold', 'study_uid': '1.2'}, True),
    (['--socket', '$SOCK', 'hold', '1.2', '--json'], 1, {'cmd': 'hold', 'study_uid': '1.2'}, True),
]


class StandIn:
    """Answers one JSON line per connection and keeps the requests."""

    def __init__(self, path):
        self.requests, self.refuse = [], False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            c, _ = self.sock.accept()
            with c:
                c.settimeout(10)
                data = b""
                while b"\n" not in data:
                    d = c.recv(65536)
                    if not d:
                        break
                    data += d
                self.requests.append(json.loads(data.split(b"\n")[0]))
                answer = {"ok": False, "error": "no such study"} if self.refuse else ANSWER
                c.sendall((json.dumps(answer) + "\n").encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    cli = os.path.join(os.path.abspath(args.build_dir), "tools/dirgw/dirgw")
    work = tempfile.mkdtemp(prefix="dirgw-cli-")
    sock = os.path.join(work, "c.sock")
    daemon = StandIn(sock)
    with open(os.path.join(work, "consent.csv"), "w") as f:
        f.write("health_number,decision\n1234567890,grant\n99,withdraw,extra\n")
    with open(os.path.join(work, "bad.csv"), "w") as f:
        f.write("foo,bar\n1,2\n")
    with open(os.path.join(work, "mrn.csv"), "w") as f:
        f.write("mrn_issuer,mrn,health_number\nA,1,1234567890\n")
    with open(os.path.join(work, "bad.yaml"), "w") as f:
        f.write("nonsense: [\n")

    failures = []

    def run(argv):
        daemon.requests.clear()
        return subprocess.run([cli] + argv, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)

    for case in CASES:
        argv = [a.replace("$SOCK", sock).replace("$W", work) for a in case[0]]
        rc, request = case[1], case[2]
        daemon.refuse = len(case) > 3 and case[3]
        p = run(argv)
        sent = daemon.requests[0] if daemon.requests else None
        what = "dirgw " + " ".join(case[0])
        if p.returncode != rc or sent != request:
            failures.append(f"{what}: exit {p.returncode} (want {rc}), sent {sent} (want {request})"
                            f" {p.stderr.strip()[:200]}")
        if rc == 2 and (p.stdout or not p.stderr.startswith(("dirgw", "Usage:"))):
            failures.append(f"{what}: a usage error prints on stderr only, saying what is wrong "
                            f"(stdout {p.stdout[:100]!r}, stderr {p.stderr[:100]!r})")

    h = run(["--help"])
    if h.returncode != 0 or "Usage: dirgw" not in h.stdout or "Commands:" not in h.stdout:
        failures.append(f"dirgw --help: {h.returncode} {h.stdout[:200]!r}")
    for sub in ("status", "consent", "consent grant", "audit export", "config check"):
        h = run(sub.split() + ["--help"])
        if h.returncode != 0 or f"Usage: dirgw {sub}" not in h.stdout:
            failures.append(f"dirgw {sub} --help: {h.returncode} {h.stdout[:200]!r}")
    v = run(["--version"])
    if v.returncode != 0 or not v.stdout.startswith("dirgw "):
        failures.append(f"dirgw --version: {v.returncode} {v.stdout!r}")

    for f in failures:
        print("FAIL:", f)
    print(f"cli usage: {len(CASES)} cases, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

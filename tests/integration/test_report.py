#!/usr/bin/env python3
"""The daily reconciliation report (issue 15, docs/report.md) against a real Orthanc.

One facility day with every kind of outcome, each study made to end where the test wants it:
A verified (QIDO-RS lists it), B sent but not verified (QIDO-RS answers 503 through a relay of
the test's own), E failed (STOW-RS answered 400 by the relay: permanent), C held (opt-in, no
consent), D quarantined (invalid health number), W withdrawn (consent withdrawn before it
arrived). `dirgw report --day TODAY` must put every instance in exactly one column, match what
Orthanc holds (QIDO-RS, study by study) and what the catalog says (`dirgw studies`), and print
its check line; the CSV form says the same; the nightly file is written (at start, yesterday's;
`dirgw report --write`, today's); the same report rebuilt from the audit trail alone
(`--from-audit`) says the same; `dirgw status` shows its forecasts ("n/a" before any rate,
then the backlog's drain time and when the spool would reach its floor)."""

import csv
import datetime
import http.client
import http.server
import io
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


class Relay:
    """HTTP relay in front of Orthanc: GETs (QIDO-RS) or POSTs (STOW-RS) pass, or are answered
    with a fixed status without reaching Orthanc."""

    def __init__(self, upstream_port):
        self.get_status = None
        self.post_status = None
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def relay(self, method, body=None):
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept")}
                conn.request(method, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                if r.getheader("Content-Type"):
                    self.send_header("Content-Type", r.getheader("Content-Type"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def do_GET(self):
                if relay.get_status is not None:
                    return self.answer(relay.get_status)
                self.relay("GET")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if relay.post_status is not None:
                    return self.answer(relay.post_status)
                self.relay("POST", body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def orthanc_instances(repo, study_uid):
    """How many instances of the study Orthanc lists over QIDO-RS (0 when it has none)."""
    try:
        with urllib.request.urlopen(f"{repo.dicomweb}/studies/{study_uid}/instances",
                                    timeout=30) as r:
            data = r.read()
            return len(json.loads(data)) if data.strip() else 0
    except urllib.error.HTTPError as e:
        if e.code in (204, 404):
            return 0
        raise


def main():
    args = harness.test_args(__file__)
    harness.clear_of_midnight()  # its counts are of "today" (UTC)
    work = harness.tempdir("dirgw-report-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    failures = check.failures
    started = time.monotonic()

    small = ["--rows", "64", "--cols", "64"]
    plan = {"A": ("CT", 3, []), "B": ("CT", 2, []), "E": ("MR", 2, []), "C": ("MR", 2, []),
            "D": ("CR", 1, ["--health-number", "1234567890"]), "W": ("CT", 2, [])}
    studies = {}
    for i, (key, (modality, n, extra)) in enumerate(plan.items()):
        studies[key] = harness.synth(args.build_dir, os.path.join(work, key), modality, n,
                                     seed=60 + i, patient_index=20 + i, manifest=manifest,
                                     extra=small + extra)
    hn = {json.loads(l)["study_uid"]: json.loads(l)["health_number"] for l in open(manifest)}
    uid = {k: v[0] for k, v in studies.items()}
    files = {k: v[1] for k, v in studies.items()}

    repo = harness.Orthanc(work).start()
    relay = Relay(repo.http_port)
    reports = os.path.join(work, "reports")
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{relay.port}/dicom-web",
                         stable_age="1s", consent="opt-in",
                         retry="{ initial: 500ms, max: 2s }",
                         verify="{ mode: qido, delay: 1s, retry: 1s, timeout: 10s }",
                         extra_yaml=f"report: {{ folder: {reports}, at: \"00:00\" }}\n").start()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    today = today.isoformat()

    # The daemon writes the last day due at start (report.at 00:00: yesterday's).
    harness.wait_for("yesterday's nightly report", lambda: os.path.exists(
        os.path.join(reports, f"dirgw-report-{yesterday}.json")), 30, 0.2)
    check(os.path.exists(os.path.join(reports, f"dirgw-report-{yesterday}.csv")),
          "yesterday's CSV beside its JSON")

    def cli(*a):
        return gw.run_cli(*a)

    # Forecasts before anything came in: no ingest rate, so "n/a".
    st = gw.status()
    check(st["spool"].get("floor_reached_at") == "n/a",
          f"spool forecast without an ingest rate: {st['spool']}")

    def state(key):
        rc, out, err = cli("study", uid[key], "--json")
        return json.loads(out)["destinations"][0]["state"] if rc == 0 else None

    def send(key, want):
        rc, out = harness.storescu(gw.port, files[key])
        check(rc == 0, f"storescu {key}: {out[-300:]}")
        harness.wait_for(f"{key} to be {want}", lambda: state(key) == want, 40, 0.2)

    for key in ("A", "B", "E"):  # D: quarantined before consent matters
        rc, out, err = cli("consent", "grant", "hn:" + hn[uid[key]])
        check(rc == 0, f"grant {key}: {out} {err}")
    rc, out, err = cli("consent", "withdraw", "hn:" + hn[uid["W"]])
    check(rc == 0, f"withdraw W: {out} {err}")

    send("A", "VERIFIED")
    relay.get_status = 503  # B's verification cannot run: it stays SENT
    send("B", "SENT")
    relay.post_status = 400  # E is refused for good
    send("E", "FAILED")
    relay.post_status = None
    send("C", "HELD")
    send("D", "QUARANTINED")
    send("W", "WITHDRAWN")

    # Forecasts now that instances came in and went out in the last 15 minutes.
    st = gw.status()
    fc = st["destinations"][0].get("forecast", {})
    log(f"forecast: {fc}; spool: {st['spool']}")
    check(fc.get("rate_per_s", 0) > 0 and fc.get("drained_at") not in (None, "n/a"),
          f"destination forecast: {fc}")
    sp = st["spool"]
    rate = sp.get("ingest_bytes_per_s", 0)
    # Beyond 60 days (a big test disk, a trickle of small test files) the forecast says n/a.
    far = rate > 0 and (sp["free_bytes"] - sp["floor_bytes"]) / rate > 60 * 86400
    check(rate > 0 and (sp.get("floor_reached_at") not in (None, "n/a") or far),
          f"spool forecast: {sp}")
    rc, out, err = cli("status")
    check("forecast:" in out and "backlog drained" in out and "floor reached" in out,
          f"human status shows the forecasts: {out}")

    rc, out, err = cli("report", "--day", today, "--json")
    check(rc == 0, f"dirgw report --json: {rc} {err}")
    rep = json.loads(out)
    log("report: " + json.dumps(rep["destinations"]))
    n = {k: len(files[k]) for k in files}
    total = sum(n.values())
    check(rep["received"]["instances"] == total and rep["received"]["studies"] == 6,
          f"received: {rep['received']}")
    check(rep["received"]["by_source"].get("dicom:PACS1", {}).get("instances") == total,
          f"by source: {rep['received']['by_source']}")
    d = rep["destinations"][0]
    want = {"verified": n["A"], "sent": n["B"], "failed": n["E"], "held": n["C"],
            "quarantined": n["D"], "withdrawn": n["W"], "superseded": 0, "pending": 0}
    for col, v in want.items():
        check(d[col] == v, f"column {col}: {d[col]} != {v}")
    check(sum(d[c] for c in want) == d["instances"] == total, f"columns add up: {d}")
    check(d["held_by_reason"] == {"no-consent": n["C"]}, f"held by reason: {d['held_by_reason']}")
    check(d["quarantined_by_reason"] == {"validation": n["D"]},
          f"quarantined by reason: {d['quarantined_by_reason']}")
    check(rep["adds_up"] and d["oldest_pending_age_s"] is None and rep["pacs_count"] == "n/a",
          f"adds_up, no pending, no PACS count: {rep['adds_up']} {d['oldest_pending_age_s']}")

    # Orthanc's own content (QIDO-RS, study by study): what it holds is exactly verified + sent.
    held = {k: orthanc_instances(repo, uid[k]) for k in uid}
    log(f"Orthanc holds per study: {held}")
    check(held == {"A": n["A"], "B": n["B"], "E": 0, "C": 0, "D": 0, "W": 0},
          f"Orthanc's content per study: {held}")
    check(repo.count_instances() == d["verified"] + d["sent"],
          f"Orthanc holds {repo.count_instances()}, report verified+sent {d['verified'] + d['sent']}")

    # The catalog's own view (dirgw studies): instances per study state.
    rc, out, err = cli("studies", "--json", "--limit", "100")
    listed = json.loads(out)["studies"] if rc == 0 else []
    by_state = {}
    for s in listed:
        st = s["destinations"].get("repository")
        by_state[st] = by_state.get(st, 0) + s.get("instances", 0)
    log(f"catalog instances per state: {by_state}")
    check(by_state.get("VERIFIED") == d["verified"] and by_state.get("SENT") == d["sent"]
          and by_state.get("FAILED") == d["failed"] and by_state.get("HELD") == d["held"]
          and by_state.get("QUARANTINED") == d["quarantined"]
          and by_state.get("WITHDRAWN") == d["withdrawn"], f"catalog per state: {by_state}")

    # The audit trail alone tells the same story (issue 15).
    rc, out, err = cli("report", "--day", today, "--from-audit", "--json")
    trail = json.loads(out) if rc == 0 else {}
    check(rc == 0 and trail.get("basis") == "audit", f"report --from-audit: {rc} {err}")
    if trail:
        t = trail["destinations"][0]
        check(all(t[c] == d[c] for c in want) and trail["received"] == rep["received"]
              and t["held_by_reason"] == d["held_by_reason"]
              and t["quarantined_by_reason"] == d["quarantined_by_reason"],
              f"report from the audit trail {t} != from the catalog {d}")

    # The table for people, with its check line; the CSV says the same.
    rc, out, err = cli("report", "--day", today)
    check(rc == 0 and f"check: repository: {total} received =" in out and ": ok" in out,
          f"human report: {out} {err}")
    rc, out, err = cli("report", "--day", today, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    dest_rows = [r for r in rows if r["row"] == "destination"]
    check(len(dest_rows) == 1 and all(int(dest_rows[0][c]) == v for c, v in want.items())
          and dest_rows[0]["adds_up"] == "yes", f"CSV: {out}")
    rc, out, err = cli("report", "--day", "2026-02-30")
    check(rc != 0 and "YYYY-MM-DD" in err, f"a bad day is refused: {rc} {err}")

    # Today's file on demand (the nightly writer's code): the same numbers.
    rc, out, err = cli("report", "--day", today, "--write")
    check(rc == 0 and f"dirgw-report-{today}.json" in out, f"report --write: {out} {err}")
    with open(os.path.join(reports, f"dirgw-report-{today}.json")) as f:
        filed = json.load(f)
    check(all(filed["destinations"][0][c] == v for c, v in want.items()),
          f"the file's numbers: {filed['destinations']}")

    gw.stop()
    relay.close()
    repo.stop()
    log(f"report test: {time.monotonic() - started:.1f}s, {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

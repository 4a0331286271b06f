#!/usr/bin/env python3
"""The PACS's own count of a day beside dirgw's (issue 15, report.pacs, docs/report.md "PACS
count"), with real parts: DCMTK's dcmqrscp is the PACS, dirgwd the gateway, `dirgw` the CLI.

- the PACS holds three studies of today (A: 2 instances, B: 1, M: 2) and one of another day; the
  modality sent A and B to dirgw, never M;
- `dirgw report --json`: the PACS counts 3 studies, 5 instances; dirgw received 2 studies, 3
  instances of them; M's Study Instance UID, and only it, never received;
- a second PACS that does not listen is "unavailable: <reason>", with no number;
- the table, the CSV (19 fields on every row) and the file `--write` puts into report.folder say
  the same; the log carries no patient value."""

import csv
import datetime
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
from test_pull import Pacs, dated  # noqa: E402


def main():
    args = harness.test_args(__file__)
    harness.clear_of_midnight()  # its counts are of "today" (UTC)
    check = harness.Checks()
    t_start = time.time()

    work = harness.tempdir("dirgw-report-pacs-")
    manifest = os.path.join(work, "manifest.jsonl")
    today = datetime.datetime.now(datetime.timezone.utc).date()
    study_date = today.strftime("%Y%m%d")

    def study(name, modality, n, seed):
        return harness.synth(args.build_dir, os.path.join(work, "synth", name), modality, n,
                             seed=seed, patient_index=seed - 60, manifest=manifest,
                             extra=["--rows", "32", "--cols", "32"])

    a_uid, a = study("a", "CT", 2, 61)
    b_uid, b = study("b", "CR", 1, 62)
    m_uid, m = study("m", "MR", 2, 63)       # in the PACS, never sent to dirgw
    old_uid, old = study("old", "CR", 1, 64)  # another Study Date: not in the day's count
    for files in (a, b, m):
        dated(files, study_date)

    reports = os.path.join(work, "reports")
    # No repository is needed for what is counted here: deliveries wait (connection refused).
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{harness.free_port()}/dicom-web",
                         stable_age="1s", retry="{ initial: 5s, max: 30s }")
    pacs = Pacs(work, gw.port)
    gone = harness.free_port()  # nothing listens there
    gw.reconfigure(extra_yaml=(
        f"report:\n  folder: {reports}\n  at: \"23:59\"\n  pacs:\n"
        f"    - {{ name: main-pacs, ae_title: PACS, host: 127.0.0.1, port: {pacs.port},"
        f" timeout: 10s }}\n"
        f"    - {{ name: gone-pacs, ae_title: GONE, host: 127.0.0.1, port: {gone},"
        f" timeout: 2s }}\n"))
    pacs.load(a + b + m + old)
    gw.start()
    rc, out = harness.storescu(gw.port, a + b)
    check(rc == 0, f"storescu into dirgw: {out}")
    harness.wait_for("dirgw to hold A and B",
                     lambda: gw.status()["catalog"]["instances"] >= 3, 30, 0.2)

    day = today.isoformat()
    rc, out, err = gw.run_cli("report", "--day", day, "--json")
    check(rc == 0, f"dirgw report --json: {rc} {err}")
    rep = json.loads(out) if rc == 0 else {}
    pc = {p["pacs"]: p for p in rep.get("pacs", [])}
    log("PACS count: " + json.dumps(rep.get("pacs")))
    mp = pc.get("main-pacs", {})
    check(mp.get("available") is True and mp.get("study_date") == study_date,
          f"main-pacs counted for {study_date}: {mp}")
    check(mp.get("studies") == 3 and mp.get("instances") == 5,
          f"the PACS holds 3 studies, 5 instances of the day: {mp}")
    check(mp.get("received_studies") == 2 and mp.get("received_instances") == 3,
          f"dirgw received 2 studies, 3 instances of them: {mp}")
    check(mp.get("studies_difference") == 1 and mp.get("instances_difference") == 2,
          f"differences 1 study, 2 instances: {mp}")
    check(mp.get("never_received") == [m_uid],
          f"never received: {mp.get('never_received')}, expected [{m_uid}]")
    gp = pc.get("gone-pacs", {})
    check(gp.get("available") is False and gp.get("reason") and gp.get("studies") is None,
          f"a PACS that does not listen is unavailable, no number: {gp}")
    check(rep.get("received", {}).get("instances") == 3 and rep.get("adds_up"),
          f"dirgw's own columns unchanged: {rep.get('received')}")
    check("main-pacs: 3 studies, 5 instances, 1 studies never received" in
          rep.get("pacs_count", "") and "gone-pacs: unavailable: " in rep.get("pacs_count", ""),
          f"pacs_count summary: {rep.get('pacs_count')}")

    rc, out, err = gw.run_cli("report", "--day", day)
    check(rc == 0 and f"never received: {m_uid}" in out and "gone-pacs (GONE): unavailable:" in out
          and "dirgw received 2 studies, 3 instances of them" in out, f"the table: {out} {err}")

    rc, out, err = gw.run_cli("report", "--day", day, "--csv")
    rows = list(csv.reader(io.StringIO(out))) if rc == 0 else []
    check(rows and all(len(r) == 19 for r in rows), f"19 fields on every CSV row: {out}")
    by = {(r[2], r[3]): r for r in rows[1:]} if rows else {}
    main_row = by.get(("pacs", "main-pacs"), [])
    check(main_row[4:6] == ["5", "3"] and f"never_received={m_uid}" in main_row[17],
          f"CSV pacs row: {main_row}")
    check(by.get(("pacs", "gone-pacs"), [""] * 19)[17].startswith("unavailable: "),
          f"CSV unavailable row: {by.get(('pacs', 'gone-pacs'))}")

    rc, out, err = gw.run_cli("report", "--day", day, "--write")
    check(rc == 0, f"report --write: {out} {err}")
    with open(os.path.join(reports, f"dirgw-report-{day}.json")) as f:
        filed = json.load(f)
    fp = {p["pacs"]: p for p in filed.get("pacs", [])}
    check(fp.get("main-pacs", {}).get("never_received") == [m_uid] and
          fp.get("gone-pacs", {}).get("available") is False, f"the file's PACS count: {fp}")

    log_text = gw.log_text()
    check("report: PACS count unavailable" in log_text and "gone-pacs" in log_text,
          "the unavailable PACS is logged")
    hits = harness.scan_for_phi({"dirgwd.log": log_text}, manifest)
    check(not hits, f"patient values in the log: {hits}")

    gw.stop()
    pacs.process.stop()
    log(f"done in {time.time() - t_start:.0f}s")
    return check.finish("report_pacs: all checks passed")


if __name__ == "__main__":
    sys.exit(main())

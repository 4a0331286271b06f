#!/usr/bin/env python3
"""Pulling with C-GET from a PACS that cannot connect back to us (issue 12, ingest.pull with
`retrieve: get`), with real parts: DCMTK's dcmqrscp is the PACS and knows no route to dirgw (its
host table points nowhere, and dirgw's receiver does not admit it), Orthanc the repository.

- three studies of today are polled: every instance comes back on dirgw's own association (C-STORE
  sub-operations), takes the intake path (pre-scan, spool, catalog) and arrives in Orthanc
  exactly once, recorded with the source pull:<name>;
- one of them the PACS holds JPEG lossless and cannot decompress (dcmqrscp): the C-GET association
  proposes the study's classes in the compressed syntaxes too, so it comes back as the PACS holds
  it, and reaches Orthanc bit for bit, still JPEG lossless;
- a second PACS, an Orthanc with its DICOM server (it answers SOP Class UID at IMAGE level and
  sends each object on a context accepted in its own syntax), holds another JPEG-lossless CT: it
  comes in one association, on the class's JPEG context (not its first), still JPEG lossless;
- further polls retrieve nothing; a study added later arrives on the next poll;
- nothing is asked of dirgw's receiver (no C-MOVE, no association from the PACS);
- logs carry no patient value."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
from test_pull import Pacs, dated, retrieving_lines, sources  # noqa: E402


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    t_start = time.time()
    work = harness.tempdir("dirgw-pull-get-")
    manifest = os.path.join(work, "manifest.jsonl")
    today = time.strftime("%Y%m%d")

    def study(name, modality, n, seed):
        return harness.synth(args.build_dir, os.path.join(work, "synth", name), modality, n,
                             seed=seed, patient_index=seed - 50, manifest=manifest,
                             extra=["--rows", "64", "--cols", "64"])

    a_uid, a = study("a", "CT", 3, 61)
    b_uid, b = study("b", "MR", 2, 62)
    c_uid, c = study("c", "CR", 1, 63)
    d_uid, d = study("d", "CT", 3, 64)
    e_uid, e = study("e", "CT", 3, 65)
    for files in (a, b, c, d, e):
        dated(files, today)
    # Studies d and e as their PACS hold them: JPEG lossless (first-order prediction), by DCMTK.
    for p in d + e:
        subprocess.run(["dcmcjpeg", "+e1", p, p + ".jpeg"], check=True)
        os.replace(p + ".jpeg", p)

    repo = harness.Orthanc(work).start()
    # The PACS's host table points at a port where nothing listens: it could not C-MOVE to us.
    # +xs: it takes JPEG lossless as sent and keeps it so; it cannot decompress for a C-GET.
    pacs = Pacs(work, harness.free_port(), options=["+xs"])
    # The second PACS: Orthanc's DICOM server (AE OPACS), which lets our AE C-GET.
    opacs_port = harness.free_port()
    opacs = harness.Orthanc(work, "pacs", extra_config={
        "DicomServerEnabled": True, "DicomAet": "OPACS", "DicomPort": opacs_port,
        "DicomModalities": {"dirgw": {"AET": "DIRGW", "Host": "127.0.0.1",
                                      "Port": harness.free_port(), "AllowGet": True}}}).start()
    every = " retrieve: get, every: 2s, look_back: 1d, retry: { initial: 1s, max: 4s }, timeout: 20s"
    ingest = (f"  pull:\n    - {{ name: get-pacs, ae_title: PACS, host: 127.0.0.1, port: {pacs.port},"
              f"{every} }}\n"
              f"    - {{ name: orthanc-pacs, ae_title: OPACS, host: 127.0.0.1, port: {opacs_port},"
              f"{every} }}\n")
    # allowed_callers without PACS: our receiver would refuse the PACS if it ever called.
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, allowed_callers=("PACS1",),
                         ingest_yaml=ingest)
    pacs.load(a + b)
    pacs.load(d, extra=["-xs"])  # storescu proposes JPEG lossless for them
    gw.start()

    harness.wait_for("the three studies in Orthanc", lambda: repo.count_instances() >= 8, 60, 0.5)
    polls_before = sources(gw, check).get("last_poll_at")
    harness.wait_for("a further poll", lambda: sources(gw, check).get("last_poll_at") !=
                     polls_before, 20, 0.5)
    time.sleep(2.5)
    check(repo.count_instances() == 8, f"Orthanc holds {repo.count_instances()}, expected 8")
    for files in (a, b, d):
        for p in files:
            check(repo.instance_id(harness.sop_instance_uid(p)) is not None,
                  f"instance {harness.sop_instance_uid(p)} is not in Orthanc")
    # The compressed study as the PACS held it: JPEG lossless in Orthanc, every attribute and the
    # encapsulated pixel data equal to what was loaded into the PACS.
    for p in d:
        oid = repo.instance_id(harness.sop_instance_uid(p))
        if oid is None:
            continue
        ts = repo.get(f"/instances/{oid}/metadata/TransferSyntax", raw=True)
        check(ts == b"1.2.840.10008.1.2.4.70", f"{harness.sop_instance_uid(p)} arrived as {ts!r}")
        with open(p, "rb") as f:
            diffs = harness.compare_datasets(f.read(), repo.instance_file(oid))
        check(not diffs, f"{harness.sop_instance_uid(p)} changed on the way: {diffs[:5]}")
    get_lines = [l for l in gw.log_text().splitlines() if "pull: C-GET association" in l]
    check(any(f"study_uid={d_uid}" in l and "image_classes=" in l for l in get_lines),
          f"no C-GET association logged for the compressed study: {get_lines}")
    # dcmqrscp sends on the first context of a class: the uncompressed-first association fails
    # the JPEG objects, the second (the PACS's choice first) brings them. Only for that study.
    second = [l for l in get_lines if "layout=pacs-choice-first" in l]
    check(len(second) == 1 and f"study_uid={d_uid}" in second[0],
          f"the PACS's-choice association should be used once, for the compressed study: {second}")
    st = gw.status()
    check(st["catalog"]["instances"] == 8,
          f"catalog holds {st['catalog']['instances']}, expected 8 (taken twice?)")
    check(len(retrieving_lines(gw)) == 3,
          f"{len(retrieving_lines(gw))} retrieves for three studies over several polls")
    rc, out, err = gw.run_cli("study", a_uid)
    check(rc == 0 and "source: pull:get-pacs" in out, f"dirgw study shows no pull source: {out}{err}")
    p1 = sources(gw, check)
    check(p1.get("studies_complete") == 3 and p1.get("objects_stored") == 8 and
          p1.get("last_error") == "", f"dirgw sources: {p1}")
    check(st.get("refusals", {}).get("count", 0) == 0,
          f"nothing called our receiver (refusals: {st.get('refusals')})")

    # A study added later arrives on the next poll.
    pacs.load(c)
    harness.wait_for("the later study in Orthanc", lambda: repo.count_instances() >= 9, 30, 0.5)
    time.sleep(2.5)
    check(repo.count_instances() == 9, f"Orthanc holds {repo.count_instances()}, expected 9")
    check(len(retrieving_lines(gw)) == 4, f"{len(retrieving_lines(gw))} retrieves, expected 4")
    text = gw.log_text()
    check("C-GET" not in "".join(l for l in text.splitlines() if "error" in l.lower()),
          "no C-GET error in the log")

    # The second PACS: Orthanc reports the SOP class and sends on the context in the object's
    # syntax, so one association (uncompressed context first) brings the JPEG study as it is.
    rc, out = harness.storescu(opacs_port, e, calling="LOADER", called="OPACS", extra=["-xs"])
    check(rc == 0, f"storescu into Orthanc's DICOM server: {out[-500:]}")
    harness.wait_for("the study of the second PACS in the repository",
                     lambda: repo.count_instances() >= 12, 30, 0.5)
    for p in e:
        oid = repo.instance_id(harness.sop_instance_uid(p))
        ts = repo.get(f"/instances/{oid}/metadata/TransferSyntax", raw=True) if oid else None
        check(ts == b"1.2.840.10008.1.2.4.70", f"{harness.sop_instance_uid(p)} arrived as {ts!r}")
    e_lines = [l for l in gw.log_text().splitlines()
               if "pull: C-GET association" in l and f"study_uid={e_uid}" in l]
    check(len(e_lines) == 1 and "layout=uncompressed-first" in e_lines[0] and
          "sop_classes_reported=1" in e_lines[0],
          f"the second PACS's study should come in one association, its class reported: {e_lines}")
    text = gw.log_text()

    hits = harness.scan_for_phi({"dirgwd.log": text}, manifest)
    check(not hits, f"patient values in the log: {hits}")
    gw.stop()
    repo.stop()
    opacs.stop()
    log(f"done in {time.time() - t_start:.0f}s")
    print(f"pull get: {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())

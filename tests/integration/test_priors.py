#!/usr/bin/env python3
"""Priors from the regional repository into the local PACS (issue 18, docs/priors.md), with two
real Orthancs: the repository (DICOMweb) holding a patient's studies at several dates and
modalities, some from this facility, and the local PACS (DICOM port only).

1. an ORM^O01 for the patient brings the matching priors into the PACS, coerced to the local MRN
   (Patient ID, Issuer; the health number in Other Patient IDs, the old values in Original
   Attributes Sequence, Institution Name kept, the series description prefix), exactly once;
   the rules hold: modality, last N years, at most M studies, not this facility's;
2. a second order fetches nothing new;
3. a patient whose consent is withdrawn: nothing searched, nothing fetched;
4. `dirgw priors fetch` by an operator, `dirgw priors list`;
5. the audit trail names each search and fetch and its trigger; no patient value in the logs;
6. the body part / procedure rule: a chest order (OBR-4 CPT4:71250) for a third patient brings
   the chest CT (its body part on one of two series) and not the knee MR or the head MR;
   `dirgw priors fetch --body-part KNEE` then brings the knee; the audit names the rules."""

import datetime
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

FACILITY = "Integration test facility"
PREFIX = "PRIOR "


class PacsOrthanc(harness.Orthanc):
    """harness.Orthanc as the local PACS: its DICOM port on (AE LOCALPACS), storing whatever
    DIRGW sends."""

    def __init__(self, workdir):
        super().__init__(workdir, name="pacs")
        self.aet = "LOCALPACS"
        self.dicom_port = harness.free_port()
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg.update({"DicomServerEnabled": True, "DicomAet": self.aet,
                    "DicomPort": self.dicom_port, "DicomCheckCalledAet": True,
                    "DicomModalities": {"dirgw": ["DIRGW", "127.0.0.1", 104]},
                    "DicomAlwaysAllowStore": True})
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)


def segment(name, values):
    fields = [name] + [""] * max(values)
    for n, v in values.items():
        fields[n] = v
    return "|".join(fields)


def orm(control_id, mrn, health_number, accession, procedure="CT^CT HEAD"):
    return "\r".join([
        f"MSH|^~\\&|RIS|TEST|DIRGW|TEST|20261203100000||ORM^O01|{control_id}|P|2.3.1",
        segment("PID", {1: "1", 3: f"{mrn}^^^TEST-MRN^MR~{health_number}^^^ON^JHN"}),
        segment("ORC", {1: "NW", 2: "PL" + control_id, 7: "^^^^^R"}),
        segment("OBR", {1: "1", 2: "PL" + control_id, 4: procedure, 18: accession}),
    ]) + "\r"


def mllp(port, message):
    """python3-hl7's mllp_send, as an interface engine would send. Returns the ACK's MSA-1."""
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"priors-{os.getpid()}.hl7")
    with open(path, "wb") as f:
        f.write(message.encode() + b"\x1c")
    try:
        p = subprocess.run(["mllp_send", "--port", str(port), "--file", path, "127.0.0.1"],
                           capture_output=True, timeout=30)
    finally:
        os.unlink(path)
    out = p.stdout.decode("latin-1")
    for seg in out.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA|"):
            return seg.split("|")[1]
    return f"no ACK ({p.returncode}): {out} {p.stderr.decode('latin-1')}"


def health_number(body):
    """A 10-digit health number whose last digit is the Luhn check digit of the 9 before it."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def make_study(args, work, manifest, key, modality, seed, hn, years_ago, institution,
               body_parts=None):
    """A synthetic study of the patient with health number `hn`, as the repository files it:
    Patient ID = the health number, issuer ON, the given date and institution."""
    out = os.path.join(work, "repo-" + key)
    uid, files = harness.synth(args.build_dir, out, modality, 2, seed=seed, patient_index=1,
                               manifest=manifest,
                               extra=("--rows", "32", "--cols", "32", "--health-number", hn))
    with open(manifest) as f:
        m = [json.loads(line) for line in f][-1]
    date = (datetime.date.today() - datetime.timedelta(days=int(365.25 * years_ago))).strftime(
        "%Y%m%d")
    subprocess.run(["dcmodify", "-nb", "-i", f"(0010,0020)={m['health_number']}",
                    "-i", "(0010,0021)=ON", "-i", f"(0008,0020)={date}",
                    "-i", f"(0008,0080)={institution}"] + files, check=True, capture_output=True)
    for i, part in enumerate(body_parts or []):
        # One series per body part: the second instance moves to a series of its own.
        edit = ["-i", f"(0018,0015)={part}"]
        if i > 0:
            edit += ["-i", f"(0020,000E)={uid}.{90 + i}"]
        subprocess.run(["dcmodify", "-nb"] + edit + [files[i]], check=True, capture_output=True)
    return {"uid": uid, "files": files, "modality": modality, "date": date, "mrn": m["patient_id"],
            "hn": m["health_number"], "institution": institution}


def upload(repo, study):
    for path in study["files"]:
        with open(path, "rb") as f:
            repo.post("/instances", f.read())


def pacs_studies(pacs):
    out = {}
    for sid in pacs.get("/studies") or []:
        s = pacs.get(f"/studies/{sid}")
        out[s["MainDicomTags"]["StudyInstanceUID"]] = sid
    return out


def audit_rows(gw, types):
    db = sqlite3.connect(f"file:{gw.state_dir}/catalog.db?mode=ro", uri=True)
    try:
        q = "SELECT type, actor, outcome, study_uid, detail FROM audit_events WHERE type IN (%s)"
        rows = db.execute(q % ",".join("?" * len(types)), types).fetchall()
    finally:
        db.close()
    return [(t, a, o, s, json.loads(d)) for t, a, o, s, d in rows]


def body_part_rule(gw, pacs, check, hl7_port, p3, done):
    """6. A chest order brings the chest priors only; --body-part KNEE then the knee."""
    mrn3, hn3 = p3["chest"]["mrn"], p3["chest"]["hn"]
    ack = mllp(hl7_port, orm("ORD0004", mrn3, hn3, "ACCP0004", "71250^CT CHEST^CPT4"))
    check(ack == "AA", f"chest ORM^O01 acknowledged AA: {ack}")
    harness.wait_for("the chest order to finish", lambda: done(5), 60)
    here = set(pacs_studies(pacs))
    check(p3["chest"]["uid"] in here, "the chest order brings the chest CT")
    check(p3["knee"]["uid"] not in here and p3["head"]["uid"] not in here,
          "the chest order brings neither the knee MR nor the head MR")
    rows = audit_rows(gw, ["priors_searched", "prior_fetched"])
    search = [r for r in rows if r[0] == "priors_searched" and r[4]["trigger"] == "ORM^O01 ORD0004"]
    check(len(search) == 1 and search[0][4].get("relevance") == "chest",
          f"the chest order's search names its rule: {search}")
    skipped = {k["study"]: k["rule"] for k in (search[0][4].get("skipped") if search else [])}
    check(skipped.get(p3["knee"]["uid"]) == "relevance (chest)" and
          skipped.get(p3["head"]["uid"]) == "relevance (chest)",
          f"the knee and the head are skipped by the relevance rule: {skipped}")
    fetched = [r for r in rows if r[0] == "prior_fetched" and r[3] == p3["chest"]["uid"]]
    check(len(fetched) == 1 and fetched[0][4].get("selected_by") == "chest: body part CHEST",
          f"the chest CT's fetch names the rule that chose it: {fetched}")
    rc, out, err = gw.run_cli("priors", "fetch", f"mrn:TEST-MRN:{mrn3}", "--body-part", "KNEE",
                              "--health-number", hn3)
    check(rc == 0 and "1 fetched" in out, f"dirgw priors fetch --body-part KNEE: {rc} {out} {err}")
    here = set(pacs_studies(pacs))
    check(p3["knee"]["uid"] in here and p3["head"]["uid"] not in here,
          "--body-part KNEE brings the knee MR, still not the head MR")
    rc, out, err = gw.run_cli("priors", "fetch", f"mrn:TEST-MRN:{mrn3}", "--procedure", "bad\\x",
                              "--health-number", hn3)
    check(rc != 0 and "--procedure" in (out + err), f"a malformed --procedure is refused: {out} {err}")


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-priors-")
    check = harness.Checks()
    started = time.monotonic()
    manifest = os.path.join(work, "manifest.jsonl")

    # Patient 1: seven studies at the repository; patient 2 (withdrawn): one.
    hn1, hn2 = health_number("612345678"), health_number("698765432")
    p1 = {
        "recent_here": make_study(args, work, manifest, "a", "CT", 41, hn1, 0.5, FACILITY),
        "ct_1y": make_study(args, work, manifest, "b", "CT", 42, hn1, 1, "Outside Hospital"),
        "mr_2y": make_study(args, work, manifest, "c", "MR", 43, hn1, 2, "Outside Hospital"),
        "us_2y": make_study(args, work, manifest, "d", "US", 44, hn1, 2.5, "Outside Hospital"),
        "ct_3y": make_study(args, work, manifest, "e", "CT", 45, hn1, 3, "Outside Hospital"),
        "ct_4y": make_study(args, work, manifest, "f", "CT", 46, hn1, 4, "Outside Hospital"),
        "ct_7y": make_study(args, work, manifest, "g", "CT", 47, hn1, 7, "Outside Hospital"),
    }
    p2 = make_study(args, work, manifest, "h", "CT", 48, hn2, 1, "Outside Hospital")
    # Patient 3, for the body part / procedure rule: a CT whose second series is the chest, a knee
    # MR and a head MR.
    hn3 = health_number("623456789")
    p3 = {
        "chest": make_study(args, work, manifest, "i", "CT", 49, hn3, 1, "Outside Hospital",
                            ["ABDOMEN", "CHEST"]),
        "knee": make_study(args, work, manifest, "j", "MR", 50, hn3, 2, "Outside Hospital",
                           ["KNEE", "KNEE"]),
        "head": make_study(args, work, manifest, "k", "MR", 51, hn3, 3, "Outside Hospital"),
    }
    mrn, hn = p1["ct_1y"]["mrn"], p1["ct_1y"]["hn"]

    repo = harness.Orthanc(work, name="repository").start()
    pacs = PacsOrthanc(work).start()
    for s in list(p1.values()) + [p2] + list(p3.values()):
        upload(repo, s)
    hl7_port = harness.free_port()
    priors_yaml = f"""priors:
  enabled: true
  repository: repository
  local_pacs: {{ ae_title: {pacs.aet}, host: 127.0.0.1, port: {pacs.dicom_port} }}
  mrn_issuer: TEST-MRN
  rules:
    modalities: [CT, MR]
    years: 5
    max_studies: 3
    skip_institutions: ["{FACILITY}"]
    relevance:
      unmapped: all
      groups:
        - {{ name: chest, procedures: ["CPT4:71250"], body_parts: [CHEST, LUNG] }}
        - {{ name: knee, procedures: ["CPT4:73721"], body_parts: [KNEE] }}
  triggers: {{ orders: true }}
  series_description_prefix: "{PREFIX}"
  retry: {{ initial: 500ms, max: 2s }}
"""
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="1s",
                         ingest_yaml=f"  hl7: {{ enabled: true, bind: 127.0.0.1, port: {hl7_port} }}\n",
                         extra_yaml=priors_yaml)
    gw.start()
    try:
        rc, out, err = gw.run_cli("consent", "withdraw", f"hn:ON:{p2['hn']}")
        check(rc == 0, f"consent withdraw for patient 2: {rc} {err}")

        # 1. The order brings the priors.
        ack = mllp(hl7_port, orm("ORD0001", mrn, hn, "ACCP0001"))
        check(ack == "AA", f"ORM^O01 acknowledged AA: {ack}")

        def done(n):
            rc, out, _ = gw.run_cli("priors", "list", "--json")
            if rc != 0:
                return None
            r = json.loads(out)
            settled = [q for q in r["requests"] if q["state"] != "pending"]
            return r if len(settled) >= n else None
        listing = harness.wait_for("the order's prior request to finish", lambda: done(1), 60)
        wanted = {p1[k]["uid"] for k in ("ct_1y", "mr_2y", "ct_3y")}
        here = pacs_studies(pacs)
        check(set(here) == wanted,
              f"the PACS holds exactly the three most recent CT/MR priors of the last 5 years "
              f"not from this facility: {sorted(here)} vs {sorted(wanted)}")
        check(pacs.count_instances() == 6, f"two instances each: {pacs.count_instances()}")
        for uid, sid in here.items():
            inst = pacs.get(f"/studies/{sid}/instances")[0]["ID"]
            tags = pacs.get(f"/instances/{inst}/tags?short")
            check(tags.get("0010,0020") == mrn and tags.get("0010,0021") == "TEST-MRN",
                  f"{uid}: Patient ID and Issuer are the local MRN")
            others = tags.get("0010,1002") or []
            check(any(o.get("0010,0020") == hn and o.get("0010,0021") == "ON" for o in others),
                  f"{uid}: the health number kept in Other Patient IDs Sequence")
            orig = tags.get("0400,0561") or []
            mod = [m for o in orig for m in (o.get("0400,0550") or [])]
            check(any(m.get("0010,0020") == hn for m in mod),
                  f"{uid}: the old Patient ID in Original Attributes Sequence")
            check(tags.get("0008,0080") == "Outside Hospital", f"{uid}: Institution Name kept")
            check((tags.get("0008,103e") or "").startswith(PREFIX),
                  f"{uid}: series description prefixed: {tags.get('0008,103e')!r}")
        q1 = listing["requests"][0]
        check(q1["state"] == "done" and q1["fetched"] == 3, f"request 1 done, 3 fetched: {q1}")

        # 2. A second order: nothing new.
        ack = mllp(hl7_port, orm("ORD0002", mrn, hn, "ACCP0002"))
        check(ack == "AA", f"second ORM^O01 acknowledged AA: {ack}")
        listing = harness.wait_for("the second request to finish", lambda: done(2), 60)
        q2 = listing["requests"][0]
        check(q2["state"] == "done" and q2["fetched"] == 0, f"second order fetched nothing: {q2}")
        check(pacs.count_instances() == 6, f"still six instances: {pacs.count_instances()}")

        # 3. The withdrawn patient.
        ack = mllp(hl7_port, orm("ORD0003", p2["mrn"], p2["hn"], "ACCP0003"))
        check(ack == "AA", f"ORM^O01 for the withdrawn patient acknowledged AA: {ack}")
        listing = harness.wait_for("the withdrawn patient's request to end", lambda: done(3), 60)
        q3 = listing["requests"][0]
        check(q3["state"] == "refused" and q3["error"] == "consent-withdrawn",
              f"withdrawn patient refused: {q3}")
        check(p2["uid"] not in pacs_studies(pacs), "the withdrawn patient's prior is not fetched")

        # 4. The operator: --since 18m finds only what is already here.
        rc, out, err = gw.run_cli("priors", "fetch", f"mrn:TEST-MRN:{mrn}", "--since", "18m",
                                  "--health-number", hn)
        check(rc == 0 and "0 fetched" in out, f"dirgw priors fetch --since 18m: {rc} {out} {err}")
        rc, out, err = gw.run_cli("priors", "list", f"mrn:TEST-MRN:{mrn}")
        check(rc == 0 and all(u in out for u in wanted) and "ORM^O01 ORD0001" in out,
              f"dirgw priors list names the studies and the trigger: {out[-600:]}")
        check(pacs.count_instances() == 6, f"still six instances: {pacs.count_instances()}")

        # 5. The audit trail.
        rows = audit_rows(gw, ["priors_searched", "prior_fetched"])
        fetched = [r for r in rows if r[0] == "prior_fetched" and r[2] == "success"]
        check({r[3] for r in fetched} == wanted and len(fetched) == 3,
              f"one prior_fetched per prior: {[(r[3], r[2]) for r in rows if r[0] == 'prior_fetched']}")
        check(all(r[4].get("trigger") == "ORM^O01 ORD0001" and r[1].startswith("hl7:RIS@")
                  for r in fetched), f"each fetch names its trigger: {fetched[:1]}")
        searches = [r for r in rows if r[0] == "priors_searched"]
        check(len(searches) == 4, f"four searches audited: {[(r[2], r[4]) for r in searches]}")
        check(any(r[2] == "failure:consent-withdrawn" and r[4]["trigger"] == "ORM^O01 ORD0003"
                  for r in searches), "the refused search is audited with its trigger")
        check(any(r[1].startswith("user:") and r[4]["trigger_kind"] == "operator"
                  for r in searches), "the operator's search is audited with the operator")
        body_part_rule(gw, pacs, check, hl7_port, p3, done)
        rc, out, err = gw.run_cli("audit", "verify")
        check(rc == 0, f"dirgw audit verify: {out} {err}")
    finally:
        gw.stop()
        pacs.stop()
        repo.stop()

    hits = harness.scan_for_phi({"dirgwd log": gw.log_text()}, manifest)
    check(not hits, f"no patient value in the daemon's log: {hits[:3]}")
    log(f"test_priors: {time.monotonic() - started:.1f} s")
    return check.finish("test_priors: OK")


if __name__ == "__main__":
    sys.exit(main())

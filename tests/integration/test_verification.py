#!/usr/bin/env python3
"""Proof of delivery and retention (issue 15, docs/verification.md) against a real Orthanc:

1. a study goes SENT -> VERIFIED (QIDO-RS, series then instances, paged two at a time);
2. an instance deleted from Orthanc behind dirgw's back after sending is found missing, sent
   again, and the study ends VERIFIED with the instance back in Orthanc;
3. a verification that cannot run (QIDO-RS answering 503, through a relay of the test's own
   that passes STOW-RS untouched) is shown in dirgw status and retried; the study stays SENT
   until QIDO-RS answers, then becomes VERIFIED;
4. retention removes verified spool files after keep_after_verified, never a study that was not
   verified (held here);
5. below the spool floor, verified files are removed before a C-STORE is refused (A700), and the
   unverified ones stay.
Storage commitment (type: dimse) is tested in test_storage_commitment.py."""

import http.client
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


class QidoSwitch:
    """An HTTP relay in front of Orthanc: POST (STOW-RS) always passes; GET (QIDO-RS) passes or
    is answered `status` without reaching Orthanc, so verification can be made unable to run
    while sending goes on."""

    def __init__(self, upstream_port):
        self.get_status = None  # None: pass; else answer GETs with this HTTP status
        self.gets = 0
        switch = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def relay(self, method, body=None):
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept", "authorization")}
                conn.request(method, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() in ("content-type",):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def do_GET(self):
                switch.gets += 1
                if switch.get_status is not None:
                    self.send_response(switch.get_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.relay("GET")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.relay("POST", self.rfile.read(n))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-verify-")
    check = harness.Checks()
    failures = check.failures
    started = time.monotonic()

    small = ["--rows", "64", "--cols", "64"]
    studies = {}
    for key, modality, n, seed in (("a", "CT", 5, 31), ("b", "MR", 3, 32), ("c", "CR", 2, 33),
                                   ("d", "CT", 2, 34), ("e", "CT", 1, 35), ("f", "MR", 2, 36)):
        studies[key] = harness.synth(args.build_dir, os.path.join(work, key), modality, n,
                                     seed=seed, patient_index=seed - 30, extra=small)
    a_uid, a_files = studies["a"]
    b_uid, b_files = studies["b"]
    c_uid, c_files = studies["c"]

    repo = harness.Orthanc(work).start()
    relay = QidoSwitch(repo.http_port)
    verify = "{ mode: qido, delay: 4s, retry: 1s, max_resends: 2, page_size: 2, timeout: 10s }"
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{relay.port}/dicom-web",
                         stable_age="2s", verify=verify,
                         retention_yaml=", keep_after_verified: 6s").start()

    study, state = gw.study, gw.study_state

    def spool_files(uid):
        objs = [i["object"] for i in study(uid)["instance_list"]]
        return [os.path.join(gw.state_dir, "spool", "objects", o[:2], o) for o in objs]

    # C is held: never sent, never verified; its files must survive everything below.
    rc, out = harness.storescu(gw.port, c_files)
    check(rc == 0, f"storescu C: {out[-300:]}")
    rc, out, err = gw.run_cli("hold", c_uid, "--reason", "kept back by the test")
    check(rc == 0, f"hold C: {out} {err}")

    # 1 and 4: A goes SENT -> VERIFIED; its files stay keep_after_verified, then go.
    rc, out = harness.storescu(gw.port, a_files + b_files)
    check(rc == 0, f"storescu A+B: {out[-300:]}")
    # 2: one of B's instances disappears from Orthanc behind dirgw's back as soon as it is
    # stored there, well before verify.delay has passed.
    lost_uid = harness.sop_instance_uid(b_files[1])
    lost_id = harness.wait_for("B's instance to reach Orthanc", lambda: repo.instance_id(lost_uid),
                               60, 0.05)
    repo.delete_instance(lost_id)
    check(repo.instance_id(lost_uid) is None, "the instance was not deleted from Orthanc")
    harness.wait_for("A to be VERIFIED", lambda: state(a_uid) == "VERIFIED", 30, 0.2)
    a = study(a_uid)
    check(all(i["deliveries"][0]["state"] == "verified" for i in a["instance_list"]),
          f"every delivery of A verified: {[i['deliveries'] for i in a['instance_list']]}")
    check(a["destinations"][0]["sent_at"] is not None, "A was SENT before VERIFIED")
    a_paths = spool_files(a_uid)
    check(all(os.path.exists(p) for p in a_paths), "A's files removed before keep_after_verified")
    harness.wait_for("B's lost instance to be sent again and B VERIFIED",
                     lambda: state(b_uid) == "VERIFIED", 40, 0.3)
    b = study(b_uid)
    lost = [i for i in b["instance_list"] if i["sop_instance_uid"] == lost_uid][0]
    check(lost["deliveries"][0]["resends"] == 1, f"lost instance re-sent once: {lost['deliveries']}")
    check(repo.instance_id(lost_uid) is not None, "the lost instance is back in Orthanc")
    harness.wait_for("A's spool files to be purged", lambda: state(a_uid) == "PURGED", 30, 0.3)
    check(not any(os.path.exists(p) for p in a_paths), "A's spool files still there after PURGED")
    check(all(i["purged"] for i in study(a_uid)["instance_list"]), "A's instances shown purged")
    c_paths = spool_files(c_uid)
    check(all(os.path.exists(p) for p in c_paths), "an unverified (held) study's files were removed")
    st = gw.status()
    v = st["destinations"][0]["verification"]
    check(v["verified_instances"] >= 8 and v["resent_instances"] == 1,
          f"status verification counts: {v}")
    check(st["retention"]["purged_objects"] >= 5, f"status retention: {st['retention']}")
    rc, out, err = gw.run_cli("status")
    check("verification: qido" in out and "retention:" in out, f"human status: {out}")

    # 3: QIDO-RS answers 503: shown, retried, never assumed.
    f_uid, f_files = studies["f"]
    relay.get_status = 503
    rc, out = harness.storescu(gw.port, f_files)
    check(rc == 0, f"storescu F: {out[-300:]}")
    harness.wait_for("verification of F to be shown failing",
                     lambda: any("verification cannot run" in w for w in gw.status()["warnings"]),
                     40, 0.3)
    gets = relay.gets
    time.sleep(2)
    check(state(f_uid) == "SENT", f"F must stay SENT while QIDO-RS fails: {state(f_uid)}")
    check(relay.gets > gets, "the failing verification was not retried")
    check("HTTP 503" in study(f_uid)["destinations"][0]["verify_error"],
          f"study shows why: {study(f_uid)['destinations'][0]}")
    relay.get_status = None
    harness.wait_for("F to be VERIFIED once QIDO-RS answers", lambda: state(f_uid) == "VERIFIED",
                     30, 0.3)

    # 5: disk pressure. D verified and kept (keep_after_verified 1h), then the floor is put far
    # above the free space: D's files go first, then E is refused with A700; C's stay.
    d_uid, d_files = studies["d"]
    e_uid, e_files = studies["e"]
    gw.stop()
    gw.reconfigure(retention_yaml=", keep_after_verified: 1h")
    gw.start()
    rc, out = harness.storescu(gw.port, d_files)
    check(rc == 0, f"storescu D: {out[-300:]}")
    harness.wait_for("D to be VERIFIED", lambda: state(d_uid) == "VERIFIED", 40, 0.3)
    d_paths = spool_files(d_uid)
    check(all(os.path.exists(p) for p in d_paths), "D's files removed before their time")
    rc, out, err = gw.run_cli("purge", "--dry-run", "--json")
    plan = json.loads(out) if rc == 0 else {}
    check(rc == 0 and plan.get("dry_run") and plan.get("objects") == 0,
          f"purge --dry-run with nothing due: {rc} {out} {err}")
    gw.stop()
    gw.reconfigure(spool_floor="900TiB", retention_yaml=", keep_after_verified: 1h")
    gw.start()
    rc, out = harness.storescu(gw.port, e_files, extra=["-v"])
    check("Refused: OutOfResources" in out or "0xa700" in out.lower(),
          f"below the floor with nothing verified left, a C-STORE must be refused: {out[-400:]}")
    harness.wait_for("D to be purged under pressure", lambda: state(d_uid) == "PURGED", 20, 0.3)
    check(not any(os.path.exists(p) for p in d_paths), "D's verified files still there under pressure")
    check(all(os.path.exists(p) for p in c_paths), "an unverified study's files removed under pressure")
    rc, out, err = gw.run_cli("studies", "--json")
    check(e_uid not in out, "E was accepted below the floor")
    check(gw.stop() == 0, "dirgwd did not stop cleanly")
    trail = gw.log_text()
    check("verified spool objects removed" in trail and "disk-pressure" in trail,
          "the log does not show the pressure purge")
    relay.close()
    repo.stop()
    log(f"verification: A VERIFIED and PURGED after 6s, B's lost instance re-sent once, F shown "
        f"failing then VERIFIED, D purged under pressure, C (unverified) kept; "
        f"{time.monotonic() - started:.0f}s")
    print(f"verification and retention: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

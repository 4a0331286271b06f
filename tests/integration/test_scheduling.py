#!/usr/bin/env python3
"""Forwarding on a schedule (issue 14), with real parts: dirgwd forwards to a real Orthanc over
STOW-RS with an upload window that is closed now (computed from the current UTC time, so the test
never waits for a minute boundary).
  1. Outside the window nothing is sent; `dirgw status` says SCHEDULED and when the window opens.
  2. A STAT study (calling AE listed in priority.stat_calling_aes) goes at once, window closed.
  3. `dirgw prioritize UID` makes a waiting study STAT: it goes at once; the others keep waiting.
  4. Restarted with the window open and a 2 MiB/s cap, the backlog drains; the measured upload
     rate (bytes sent / time in requests, from dirgwd's log) is within 10 % of the cap.
  5. OAuth2: a small token server in the test, which also fronts Orthanc's STOW-RS and checks the
     bearer token. Tokens live 2 s (they expire mid-backlog and are fetched again); then the
     client is revoked (token endpoint 401, tokens refused): status says "authentication
     failed", nothing fails; restored, the backlog drains.
  6. type: dimse: the study goes by C-STORE to Orthanc's DICOM port, data sets byte for byte;
     and once over TLS (test CA, client certificate required) to DCMTK's storescp."""

import base64
import datetime
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
import test_dimse_sender as tds  # noqa: E402

CAP = 2 * 1024 * 1024


def hhmm(t):
    return t.strftime("%H:%M")


def dest_yaml(window, cap="2MiB"):
    return (f"    schedule: {{ windows: [\"Mon-Sun {window}\"], stat_bypass: true }}\n"
            f"    bandwidth: {cap}\n")


class TokenServer:
    """OAuth2 client-credentials endpoint (POST /token, HTTP Basic) and, in front of Orthanc,
    STOW-RS that wants a bearer token it issued, unexpired and not revoked (else 401)."""

    def __init__(self, orthanc_dicomweb, client_id, secret, lifetime=2):
        self.upstream = orthanc_dicomweb
        self.client_id, self.secret, self.lifetime = client_id, secret, lifetime
        self.revoked = False
        self.tokens = {}  # token -> expiry (time.time())
        self.issued = 0
        self.refused_tokens = 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/token":
                    return self.reply(*server.token(self.headers.get("Authorization", "")))
                auth = self.headers.get("Authorization", "")
                if not server.valid(auth[len("Bearer "):] if auth.startswith("Bearer ") else ""):
                    return self.reply(401, b'{"error": "invalid_token"}')
                req = urllib.request.Request(server.upstream + self.path[len("/dicom-web"):],
                                             data=body, method="POST",
                                             headers={"Content-Type": self.headers["Content-Type"],
                                                      "Accept": "application/dicom+json"})
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        self.reply(r.status, r.read(), r.headers.get("Content-Type"))
                except urllib.error.HTTPError as e:
                    self.reply(e.code, e.read(), e.headers.get("Content-Type", "text/plain"))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, authorization):
        want = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        with self.lock:
            if self.revoked or authorization != want:
                return 401, b'{"error": "invalid_client"}'
            self.issued += 1
            tok = f"tok-{self.issued}-{os.urandom(8).hex()}"
            self.tokens[tok] = time.time() + self.lifetime
        return 200, json.dumps({"access_token": tok, "token_type": "Bearer",
                                "expires_in": self.lifetime}).encode()

    def valid(self, tok):
        with self.lock:
            ok = not self.revoked and self.tokens.get(tok, 0) > time.time()
            if not ok:
                self.refused_tokens += 1
            return ok

    def stop(self):
        self.httpd.shutdown()


def oauth2_phase(args, work, manifest, check):
    uid, files = harness.synth(args.build_dir, os.path.join(work, "ct-oauth"), "CT", 16, seed=51,
                               patient_index=4, manifest=manifest)
    repo = harness.Orthanc(work, name="oauth").start()
    secret_file = os.path.join(work, "client-secret")
    with open(secret_file, "w") as f:
        f.write("s3cret-for-tests\n")
    os.chmod(secret_file, 0o600)
    tokens = TokenServer(repo.dicomweb, "dirgw-test", "s3cret-for-tests")
    auth = (f"    auth:\n      oauth2: {{ token_url: \"{tokens.url}/token\", client_id: dirgw-test, "
            f"client_secret_file: {secret_file} }}\n    bandwidth: 2MiB\n")
    gw = harness.Gateway(args.build_dir, work, tokens.url + "/dicom-web", name="dirgw-oauth",
                         stable_age="1s", batch_max=2, dest_yaml=auth,
                         retry="{ initial: 200ms, max: 2s }",
                         circuit="{ failures: 3, cooldown: 1s }").start()
    try:
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu (oauth2): rc={rc} {out[-300:]}")
        harness.wait_for("some instances through the token-checking proxy",
                         lambda: repo.count_instances() >= 4, 60)
        tokens.revoked = True
        log(f"oauth2: client revoked after {repo.count_instances()} instances, "
            f"{tokens.issued} tokens issued")
        st = harness.wait_for("status to say authentication failed", lambda: (lambda d: d if d[
            "auth_state"] == "authentication failed" else None)(gw.status()["destinations"][0]), 30)
        check(st["auth"] == "oauth2", f"status names the auth kind: {st['auth']}")
        held = repo.count_instances()
        time.sleep(2)
        check(repo.count_instances() == held, "nothing goes while the credentials are revoked")
        states = gw.status()["destinations"][0]["states"]
        check("FAILED" not in states, f"no study failed while revoked: {states}")
        tokens.revoked = False
        harness.wait_for("the backlog to drain after the restore",
                         lambda: repo.count_instances() == len(files), 60)
        st = gw.status()["destinations"][0]
        check("FAILED" not in st["states"], f"nothing failed permanently: {st['states']}")
        harness.wait_for("status to say ok", lambda: gw.status()["destinations"][0]["auth_state"] == "ok", 10)
        log(f"oauth2: {tokens.issued} tokens issued (lifetime 2 s), {tokens.refused_tokens} "
            f"requests refused 401; all {len(files)} instances arrived")
        check(tokens.issued >= 3, f"tokens were fetched again as they expired: {tokens.issued}")
        check("s3cret-for-tests" not in gw.log_text() and "tok-" not in gw.log_text(),
              "neither the secret nor a token is logged")
    finally:
        gw.stop()
        tokens.stop()
        repo.stop()
    return gw.log_text()


def dimse_phase(args, work, manifest, check):
    uid, files = harness.synth(args.build_dir, os.path.join(work, "cr-dimse"), "CR", 2, seed=61,
                               patient_index=5, manifest=manifest)
    repo = tds.DicomOrthanc(work).start()
    gw = harness.Gateway(args.build_dir, work, "http://unused/", name="dirgw-dimse", stable_age="1s")
    gw.use_dimse(repo.aet, repo.dicom_port)
    gw.start()
    try:
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu (dimse): rc={rc} {out[-300:]}")
        harness.wait_for("the study in Orthanc over C-STORE",
                         lambda: repo.count_instances() == len(files), 60)
        st = gw.status()["destinations"][0]
        check(st["type"] == "dimse" and st["url"].startswith(f"dicom://{repo.aet}@"),
              f"status shows the DICOM destination: {st['type']} {st['url']}")
        for f in files:
            with open(f, "rb") as fh:
                original = fh.read()
            oid = repo.instance_id(harness.sop_instance_uid(f))
            stored = repo.instance_file(oid) if oid else None
            if check(stored is not None, f"{os.path.basename(f)} in Orthanc"):
                check(tds.split_part10(stored)[1] == tds.split_part10(original)[1],
                      f"{os.path.basename(f)}: data set byte for byte as sent")
        log(f"dimse: {len(files)} instances arrived by C-STORE, data sets identical")
    finally:
        gw.stop()
        repo.stop()
    return gw.log_text()


def dimse_tls_phase(args, work, manifest, check):
    uid, files = harness.synth(args.build_dir, os.path.join(work, "cr-tls"), "CR", 2, seed=71,
                               patient_index=6, manifest=manifest)
    pki = tds.make_pki(work)
    out_dir = os.path.join(work, "storescp-tls")
    os.makedirs(out_dir)
    scp_port = harness.free_port()
    scp = harness.Process("storescp", [
        "storescp", "--aetitle", "TLSSCP", "+tls", pki["server.key"], pki["server.crt"],
        "+cf", pki["ca.crt"], "--require-peer-cert", "--profile-bcp195-nd",
        "--bit-preserving", "--output-directory", out_dir, str(scp_port)],
        os.path.join(work, "storescp-tls.log"))
    harness.wait_for("storescp to listen", lambda: tds._connects(scp_port) or not scp.alive(), 30)
    gw = harness.Gateway(args.build_dir, work, "http://unused/", name="dirgw-tls", stable_age="1s")
    with open(gw.config_path) as f:
        text = f.read()
    text = text.replace("    type: stow-rs\n    url: http://unused/\n",
                        f"    type: dimse\n    dimse: {{ ae_title: TLSSCP, host: 127.0.0.1, "
                        f"port: {scp_port}, tls: true, ca: {pki['ca.crt']}, "
                        f"client_cert: {pki['client.crt']}, client_key: {pki['client.key']} }}\n")
    with open(gw.config_path, "w") as f:
        f.write(text)
    gw.start()
    try:
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu (dimse tls): rc={rc} {out[-300:]}")
        harness.wait_for("the study at storescp over TLS",
                         lambda: len(os.listdir(out_dir)) == len(files), 60)
        st = gw.status()["destinations"][0]
        check(st["auth"] == "tls+client-cert", f"status shows TLS with a client certificate: {st['auth']}")
        received = {}
        for name in os.listdir(out_dir):
            with open(os.path.join(out_dir, name), "rb") as fh:
                data = fh.read()
            received[tds.split_part10(data)[0][0x0003].rstrip(b"\0 ").decode()] = data
        for f in files:
            with open(f, "rb") as fh:
                original = fh.read()
            got = received.get(harness.sop_instance_uid(f))
            check(got == original or (got is not None and tds.split_part10(got)[1] ==
                                      tds.split_part10(original)[1]),
                  f"TLS: {os.path.basename(f)} received byte for byte")
        log(f"dimse over TLS: {len(files)} instances at storescp, data sets identical")
    finally:
        gw.stop()
        scp.stop()
    return gw.log_text()


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()

    work = harness.tempdir("dirgw-sched-")
    manifest = os.path.join(work, "manifest.jsonl")
    ct_uid, ct_files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", 24, seed=41,
                                     patient_index=1, manifest=manifest)
    cr_uid, cr_files = harness.synth(args.build_dir, os.path.join(work, "cr"), "CR", 1, seed=42,
                                     patient_index=2, manifest=manifest)
    mr_uid, mr_files = harness.synth(args.build_dir, os.path.join(work, "mr"), "MR", 2, seed=43,
                                     patient_index=3, manifest=manifest)
    ct_bytes = sum(os.path.getsize(f) for f in ct_files)

    now = datetime.datetime.now(datetime.timezone.utc)
    opens = (now + datetime.timedelta(hours=3)).replace(second=0, microsecond=0)
    closed_window = f"{hhmm(opens)}-{hhmm(opens + datetime.timedelta(hours=1))}"
    repo = harness.Orthanc(work).start()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, allowed_callers=("PACS1", "ER_CT"),
                         stable_age="1s", batch_max=4, dest_yaml=dest_yaml(closed_window),
                         extra_yaml="priority: { stat_calling_aes: [ER_CT] }\n").start()
    try:
        rc, out = harness.storescu(gw.port, ct_files + mr_files)
        check(rc == 0, f"storescu of the routine studies: rc={rc} {out[-300:]}")
        rc, out = harness.storescu(gw.port, cr_files, calling="ER_CT")
        check(rc == 0, f"storescu of the STAT study: rc={rc} {out[-300:]}")

        # 2. the STAT study goes although the window is closed
        harness.wait_for("the STAT study in Orthanc", lambda: repo.count_instances() == 1, 30)
        time.sleep(3)  # the routine studies are READY by now and must still wait
        check(repo.count_instances() == 1,
              f"only the STAT study was sent outside the window ({repo.count_instances()})")

        # 1. status shows the window closed and when it opens
        st = gw.status()["destinations"][0]
        log(f"window: {st['window']}, cap {st['bandwidth_cap']}, auth {st['auth']}")
        check(st["window"]["state"] == "SCHEDULED", f"status says SCHEDULED: {st['window']}")
        check((st["window"]["next_open"] or "").startswith(opens.strftime("%Y-%m-%dT%H:%M")),
              f"next window opens at {opens:%Y-%m-%dT%H:%M}: {st['window']['next_open']}")
        check(st["bandwidth_cap"] == CAP, f"status shows the cap: {st['bandwidth_cap']}")
        check(st["pending_instances"] == 26, f"26 instances wait: {st['pending_instances']}")
        rc, text, _ = gw.run_cli("status")
        check("next window opens" in text, "dirgw status prints when the next window opens")

        # 3. an operator makes the MR study STAT: it goes at once, the CT keeps waiting
        rc, out, err = gw.run_cli("prioritize", mr_uid)
        check(rc == 0 and "1 changed" in out, f"dirgw prioritize: rc={rc} {out} {err}")
        harness.wait_for("the prioritized study in Orthanc", lambda: repo.count_instances() == 3, 30)
        time.sleep(2)
        check(repo.count_instances() == 3, f"the CT study still waits ({repo.count_instances()})")
        check(re.search(r'msg="?operator action"?.*action="?prioritize', gw.log_text()),
              "the operator action is logged")

        # 4. window open, 2 MiB/s: the backlog drains at the cap. One request at a time, so that
        # each request's logged time is its share of the drain (the cap shared by the default two
        # lanes is measured on the wire by test_forwarding_more.py).
        gw.stop()
        before = len(gw.log_text())
        start = now - datetime.timedelta(hours=1)
        gw.reconfigure(dest_yaml=dest_yaml(f"{hhmm(start)}-{hhmm(start + datetime.timedelta(hours=3))}")
                       + "    concurrency: 1\n")
        gw.start()
        t0 = time.time()
        harness.wait_for("the CT study in Orthanc", lambda: repo.count_instances() == 27, 60)
        wall = time.time() - t0

        def requests_logged():
            text = gw.log_text()[before:] if len(gw.log_text()) > before else gw.log_text()
            # Bytes on the wire and time per request, as dirgwd logs each STOW-RS request.
            return [(int(b), int(m)) for b, m in re.findall(
                r'msg="?stow-rs request done"?.*? bytes_sent="?(\d+)"? ms="?(\d+)', text)]

        # Orthanc counts an instance before dirgwd has read its answer and logged the request:
        # on a loaded machine the last request's line comes a moment after the count.
        try:
            harness.wait_for("the last request's log line",
                             lambda: sum(b for b, _ in requests_logged()) >= ct_bytes, 15, 0.2)
        except TimeoutError:
            pass  # judged below with what was logged
        reqs = requests_logged()
        sent, ms = sum(b for b, _ in reqs), sum(m for _, m in reqs)
        rate = sent / (ms / 1000.0) if ms else 0
        log(f"measured upload rate {rate / 1048576:.3f} MiB/s: {sent} bytes in {len(reqs)} "
            f"requests taking {ms} ms (study files {ct_bytes} bytes; wall {wall:.1f}s) against a "
            f"cap of {CAP / 1048576:.1f} MiB/s")
        check(sent >= ct_bytes, f"every byte of the study counted ({sent} >= {ct_bytes})")
        check(ms > 0 and abs(rate - CAP) <= 0.10 * CAP,
              f"rate within 10 % of the cap: {rate / 1048576:.3f} MiB/s")
        st = gw.status()["destinations"][0]
        check(st["window"]["state"] == "open", f"window open after the restart: {st['window']}")
    finally:
        gw.stop()
        repo.stop()
    logs = {"dirgwd.log": gw.log_text(), "dirgwd-oauth.log": oauth2_phase(args, work, manifest, check),
            "dirgwd-dimse.log": dimse_phase(args, work, manifest, check),
            "dirgwd-tls.log": dimse_tls_phase(args, work, manifest, check)}
    phi = harness.scan_for_phi(logs, manifest)
    check(not phi, f"no patient value in the logs: {phi[:3]}")
    return check.finish("scheduling: all checks passed")


if __name__ == "__main__":
    sys.exit(main())

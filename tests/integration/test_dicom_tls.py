#!/usr/bin/env python3
"""DICOM TLS and who may call (issue 17, items 7 and 9), with a real dirgwd, a real Orthanc and
DCMTK's storescu/echoscu as the PACS: TLS with the right client certificate is accepted and
forwarded; plain TCP, a certificate from another CA, an expired one, none at all and TLS 1.0 are
refused; an AE title bound to an address and a certificate subject is refused from elsewhere or
with another certificate; each refusal is in the refusals table with its code and in the audit
trail with the peer's address; a rejected association's socket is closed within a second."""

import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import door  # noqa: E402
import harness  # noqa: E402


def tls_args(cert, ca):
    return ["+tls", cert[1], cert[0], "+cf", ca]


def dcmtk(tool, gw, extra, files=(), calling="PACS1"):
    args = [tool, "-aet", calling, "-aec", "DIRGW"] + list(extra) + ["127.0.0.1", str(gw.port)]
    args += list(files)
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-tls-")
    check = harness.Checks()
    pki = door.TestPki(work)
    _, files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 3, seed=71,
                             extra=["--rows", "64", "--cols", "64"])
    repo = harness.Orthanc(work).start()
    ingest = (f"    tls:\n"
              f"      certificate: {pki.server[0]}\n"
              f"      private_key: {pki.server[1]}\n"
              f"      ca: {pki.ca[0]}\n"
              f"      require_client_certificate: true\n"
              f"    callers:\n"
              f"      - {{ ae_title: PACS1, addresses: [127.0.0.1], subjects: [\"CN=pacs1,O=Lakeside\"] }}\n"
              f"      - {{ ae_title: FARAWAY, addresses: [10.9.9.0/24] }}\n")
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="1s",
                         allowed_callers=("PACS1", "OPEN"), ingest_yaml=ingest).start()
    ca = pki.ca[0]

    # The right certificate: echo and store succeed, and the study reaches the repository.
    rc, out, _ = dcmtk("echoscu", gw, tls_args(pki.client, ca))
    check(rc == 0, f"echoscu over TLS with the right certificate: {rc} {out[-400:]}")
    rc, out, _ = dcmtk("storescu", gw, tls_args(pki.client, ca) + ["-nh"], files)
    check(rc == 0, f"storescu over TLS with the right certificate: {rc} {out[-400:]}")
    harness.wait_for("the study to reach the repository", lambda: repo.count_instances() == 3, 60, 0.3)

    # Each of these fails, and each leaves a refusal row with its code.
    cases = [
        ("plain TCP", "storescu", ["-nh"], "PACS1", "tls-handshake"),
        ("a certificate from another CA", "storescu", tls_args(pki.rogue, ca) + ["-nh"], "PACS1",
         "tls-handshake"),
        ("an expired certificate", "storescu", tls_args(pki.expired, ca) + ["-nh"], "PACS1",
         "tls-handshake"),
        ("no client certificate", "storescu", ["+tla", "+cf", ca, "-nh"], "PACS1", "tls-handshake"),
        ("PACS1 with another subject's certificate", "storescu",
         tls_args(pki.intruder, ca) + ["-nh"], "PACS1", "caller-certificate"),
        ("FARAWAY from an address it is not bound to", "echoscu", tls_args(pki.client, ca),
         "FARAWAY", "caller-address"),
        ("an AE title nobody admitted", "echoscu", tls_args(pki.client, ca), "NOBODY",
         "caller-unknown"),
    ]
    for what, tool, extra, calling, code in cases:
        before = len(door.refusals(gw.state_dir))
        rc, out, secs = dcmtk(tool, gw, extra, files[:1] if tool == "storescu" else (),
                              calling=calling)
        check(rc != 0, f"{what}: refused (rc {rc})")
        check(secs < 10, f"{what}: answered within 10 s ({secs:.1f} s)")
        # The row is written just after the answer that made the sender give up.
        try:
            harness.wait_for(f"{what}: refusal row", lambda: any(
                r[3] == code for r in door.refusals(gw.state_dir)[before:]), 5, 0.1)
        except TimeoutError:
            pass
        rows = door.refusals(gw.state_dir)[before:]
        check(any(r[3] == code for r in rows), f"{what}: refusal recorded as {code}: {rows}")
    # An AE admitted by allowed_callers but not bound is not asked for a subject.
    rc, out, _ = dcmtk("echoscu", gw, tls_args(pki.intruder, ca), calling="OPEN")
    check(rc == 0, f"an unbound admitted AE with a valid certificate: {rc} {out[-300:]}")

    # TLS 1.0 (and 1.1) is refused by the BCP 195 non-downgrading profile.
    before = len(door.refusals(gw.state_dir))
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{gw.port}", "-tls1",
                        "-cipher", "DEFAULT@SECLEVEL=0", "-cert", pki.client[0], "-key",
                        pki.client[1]], input="", capture_output=True, text=True, timeout=30)
    check(p.returncode != 0 and "Cipher is (NONE)" in p.stdout + p.stderr or
          "alert" in (p.stdout + p.stderr).lower(), f"TLS 1.0 refused: {p.stdout[-300:]}")
    harness.wait_for("the TLS 1.0 attempt's refusal row",
                     lambda: any(r[3] == "tls-handshake" for r in door.refusals(gw.state_dir)[before:]),
                     10, 0.2)

    # Rejected association: the socket closes at once after the A-ASSOCIATE-RJ.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(pki.client[0], pki.client[1])
    raw = socket.create_connection(("127.0.0.1", gw.port))
    s = ctx.wrap_socket(raw)
    s.sendall(door.associate_rq("NOBODY", "DIRGW"))
    secs, first = door.time_to_close(s)
    check(first == 0x03, f"an A-ASSOCIATE-RJ came back (PDU type {first})")
    check(secs < 1.0, f"rejected TLS association closed within 1 s ({secs:.2f} s)")
    s.close()

    # The audit trail has the security refusals, with the peer's address.
    harness.wait_for("the last refusal's audit entry", lambda: any(
        a[1] == "failure:caller-unknown" for a in door.audit_refusals(gw.state_dir)), 5, 0.1)
    audited = door.audit_refusals(gw.state_dir)
    outcomes = {a[1] for a in audited}
    for code in ("tls-handshake", "caller-certificate", "caller-address", "caller-unknown"):
        check(f"failure:{code}" in outcomes, f"audit entry for {code}: {sorted(outcomes)}")
    check(all("127.0.0.1" in a[0] and "127.0.0.1" in json.loads(a[2])["peer"] for a in audited),
          f"audit entries name the peer's address: {audited[:2]}")
    rc, out, err = gw.run_cli("audit", "verify")
    check(rc == 0, f"audit trail verifies with the refusals in it: {out} {err}")
    st = gw.status()
    check(st["refusals"]["last"]["reason_code"] != "", f"status shows the last refusal's code: {st['refusals']}")
    check(st["ingest"]["dicom"]["associations_rejected"] >= 9,
          f"rejections counted: {st['ingest']['dicom']}")

    # A key readable by others is refused at start.
    os.chmod(pki.server[1], 0o644)
    gw.stop()
    p = subprocess.run([gw.dirgwd, "--config", gw.config_path], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode != 0 and "group- or world-accessible" in p.stdout + p.stderr,
          f"a world-readable private key stops the start: {p.returncode} {(p.stdout + p.stderr)[-300:]}")
    repo.stop()
    print(f"dicom tls: {len(cases) + 4} cases, {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The DIMSE destination (C-STORE SCU) against real peers, through make_dimse_sender() driven by
tests/tools/dimse_send_driver.cpp (one batch per run, outcomes as JSON lines):

- Orthanc with its DICOM server on: native objects arrive with their data sets byte for byte
  (Orthanc writes its own file meta, so the comparison is of the data set after the meta), in
  their own syntax; a JPEG-LS object arrives as JPEG-LS; a deflated object, whose syntax Orthanc
  is told to refuse, arrives re-encoded as Explicit VR Little Endian with every attribute equal;
  an RLE object, whose syntax Orthanc refuses, fails permanently with a reason naming it; all in
  one association.
- A wrong called AE title: permanent for every instance, with a reason that says what to fix.
- A connection cut in the middle of the second C-STORE: the first stays accepted, the second
  and third are to be retried.
- Orthanc stopped: every instance to be retried.
- DCMTK's storescp over TLS (BCP 195 non-downgrading, client certificate required) with a CA
  made here with openssl: the study arrives byte for byte (storescp --bit-preserving); with a
  CA that did not sign the server's certificate, or a client certificate it does not trust, the
  handshake fails and every instance is to be retried.
- TCP_NODELAY is on although the environment says TCP_NODELAY=0; no patient value in any output.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_LS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"


def split_part10(data):
    """(meta {element: value bytes}, data set bytes) of a Part-10 file."""
    if data[128:132] != b"DICM":
        raise ValueError("no DICM prefix")
    pos, meta = 132, {}
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV", b"SV", b"UV"):
            length = struct.unpack_from("<I", data, pos + 8)[0]
            start = pos + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            start = pos + 8
        meta[elem] = data[start:start + length]
        pos = start + length
    return meta, data[pos:]


def syntax_of(data):
    return split_part10(data)[0][0x0010].rstrip(b"\0 ").decode()


class DicomOrthanc(harness.Orthanc):
    """harness.Orthanc with its DICOM server on (AE REPO), checking the called AE title, and
    refusing the deflated and RLE syntaxes so that the sender has to cope."""

    def __init__(self, workdir):
        super().__init__(workdir, name="dimse")
        self.aet = "REPO"
        self.dicom_port = harness.free_port()
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg.update({
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomModalities": {"dirgw": ["DIRGW", "127.0.0.1", 104]},
            "DicomAlwaysAllowStore": True,
            "AcceptedTransferSyntaxes": [IMPLICIT, EXPLICIT, JPEG_LS],
            "DeflatedTransferSyntaxAccepted": False,
            "RleTransferSyntaxAccepted": False,
        })
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)


class CuttingProxy:
    """Forwards one TCP connection to `upstream` and cuts both directions once `cut_after`
    bytes have gone upstream: the peer vanishes in the middle of a C-STORE."""

    def __init__(self, upstream_port, cut_after):
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        try:
            client, _ = self.sock.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        done = threading.Event()

        def pump(src, dst, limit):
            sent = 0
            try:
                while not done.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    if limit is not None and sent + len(data) >= limit:
                        dst.sendall(data[:max(0, limit - sent)])
                        break
                    dst.sendall(data)
                    sent += len(data)
            except OSError:
                pass
            done.set()
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()
        pump(client, upstream, self.cut_after)
        client.close()
        upstream.close()

    def close(self):
        self.sock.close()


def make_pki(work):
    """A test CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and
    a second CA that signed neither (with a client certificate of its own)."""
    d = os.path.join(work, "pki")
    os.makedirs(d, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)

    for ca in ("ca", "otherca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-sha256",
            "-subj", f"/CN=dirgw test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, ca, ext):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        run("req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "1", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt")

    leaf("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", "extendedKeyUsage=clientAuth\n")
    leaf("intruder", "otherca", "extendedKeyUsage=clientAuth\n")
    return {k: os.path.join(d, k) for k in ("ca.crt", "otherca.crt", "server.crt", "server.key",
                                           "client.crt", "client.key", "intruder.crt", "intruder.key")}


class Driver:
    def __init__(self, build_dir, work):
        self.exe = os.path.join(os.path.abspath(build_dir), "tests/integration/dirgw-dimse-send-driver")
        self.work = work
        self.outputs = {}
        self.runs = 0

    def send(self, port, called, files, extra=(), name=None):
        env = dict(os.environ)
        env["TCP_NODELAY"] = "0"  # a hostile environment: the sender sets TCP_NODELAY itself
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        args = [self.exe, "--host", "127.0.0.1", "--port", str(port), "--called", called,
                "--calling", "DIRGW", "--connect-timeout-ms", "3000", "--acse-timeout-ms", "10000",
                "--dimse-timeout-ms", "20000"] + list(extra) + list(files)
        p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        self.runs += 1
        self.outputs[name or f"run{self.runs}"] = p.stdout + p.stderr
        lines = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        instances = [x for x in lines if "sop_instance_uid" in x]
        batch = [x for x in lines if "outcome" in x]
        harness.log(f"driver ({name}): rc={p.returncode} {batch[-1]['message'] if batch else p.stderr[-2000:]}")
        return p.returncode, {x["sop_instance_uid"]: x for x in instances}, (batch[-1] if batch else {}), p.stderr


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-dimse-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    drv = Driver(args.build_dir, work)

    # --- Test objects: native explicit and implicit CTs, a deflated MR, a JPEG-LS and an RLE CT.
    small = ["--rows", "128", "--cols", "128"]
    _, explicit = harness.synth(args.build_dir, os.path.join(work, "explicit"), "CT", 3, seed=11,
                                patient_index=1, manifest=manifest, extra=small)
    _, implicit = harness.synth(args.build_dir, os.path.join(work, "implicit"), "CT", 2, seed=12,
                                patient_index=2, manifest=manifest,
                                extra=small + ["--transfer-syntax", "implicit"])
    _, deflated = harness.synth(args.build_dir, os.path.join(work, "deflated"), "MR", 1, seed=13,
                                patient_index=3, manifest=manifest,
                                extra=small + ["--transfer-syntax", "deflated"])
    _, base = harness.synth(args.build_dir, os.path.join(work, "base"), "CT", 2, seed=14,
                            patient_index=4, manifest=manifest, extra=small)
    jpegls = os.path.join(work, "jpegls.dcm")
    rle = os.path.join(work, "rle.dcm")
    subprocess.run(["dcmcjpls", base[0], jpegls], check=True, capture_output=True)
    subprocess.run(["dcmcrle", base[1], rle], check=True, capture_output=True)
    deflated_as_explicit = os.path.join(work, "deflated-as-explicit.dcm")
    subprocess.run(["dcmconv", "+te", deflated[0], deflated_as_explicit], check=True, capture_output=True)
    originals = {}
    for f in explicit + implicit + deflated + [jpegls, rle]:
        with open(f, "rb") as fh:
            originals[f] = fh.read()
    check(syntax_of(originals[jpegls]) == JPEG_LS, "dcmcjpls made a JPEG-LS object")
    check(syntax_of(originals[rle]) == RLE, "dcmcrle made an RLE object")
    check(syntax_of(originals[deflated[0]]) == DEFLATED, "synth made a deflated object")
    check(syntax_of(originals[implicit[0]]) == IMPLICIT, "synth made implicit VR objects")

    def uid(path):
        return split_part10(originals[path])[0][0x0003].rstrip(b"\0 ").decode()

    repo = DicomOrthanc(work).start()
    harness.log(f"Orthanc DICOM server {repo.aet} on 127.0.0.1:{repo.dicom_port}")

    # --- 1. One batch, one association, every case of syntax handling.
    batch = explicit + implicit + deflated + [jpegls, rle]
    rc, res, summary, err = drv.send(repo.dicom_port, repo.aet, batch, name="orthanc mixed batch")
    check(rc == 0, f"driver exits 0 (no sanitizer report): {rc} {err[-3000:]}")
    check(err.count("dimse association established") == 1, "one association for the batch")
    check("tcp_nodelay=on" in err, "TCP_NODELAY on although the environment says TCP_NODELAY=0")
    for f in explicit + implicit + [jpegls]:
        r = res.get(uid(f), {})
        check(r.get("status") == "accepted" and r.get("reason") == "", f"{os.path.basename(f)} accepted: {r}")
        oid = repo.instance_id(uid(f))
        stored = repo.instance_file(oid) if oid else None
        if not check(stored is not None, f"{os.path.basename(f)} is in Orthanc"):
            continue
        check(syntax_of(stored) == syntax_of(originals[f]),
              f"{os.path.basename(f)} stored in its own syntax {syntax_of(originals[f])}: {syntax_of(stored)}")
        check(split_part10(stored)[1] == split_part10(originals[f])[1],
              f"{os.path.basename(f)}: data set byte for byte as in the spool file")
    r = res.get(uid(deflated[0]), {})
    check(r.get("status") == "accepted" and "sent as Explicit VR Little Endian" in r.get("reason", ""),
          f"deflated object accepted, re-encoded as Explicit VR LE: {r}")
    oid = repo.instance_id(uid(deflated[0]))
    if check(oid is not None, "deflated object is in Orthanc"):
        stored = repo.instance_file(oid)
        check(syntax_of(stored) == EXPLICIT, f"deflated object stored as Explicit VR LE: {syntax_of(stored)}")
        with open(deflated_as_explicit, "rb") as fh:
            diffs = harness.compare_datasets(fh.read(), stored)
        check(not diffs, f"deflated object: every attribute equal after re-encoding: {diffs[:5]}")
    # This Orthanc does not take RLE: the RLE object goes decompressed (decompress: always, the
    # default), its pixel data exactly what DCMTK's own dcmdrle makes of it.
    r = res.get(uid(rle), {})
    check(r.get("status") == "accepted" and "stored as RLE Lossless" in r.get("reason", "") and
          "(decompressed)" in r.get("reason", ""), f"RLE object sent decompressed: {r}")
    oid = repo.instance_id(uid(rle))
    if check(oid is not None, "the decompressed RLE object is in Orthanc"):
        stored = repo.instance_file(oid)
        check(syntax_of(stored) in (EXPLICIT, IMPLICIT), f"stored uncompressed: {syntax_of(stored)}")
        rle_plain = os.path.join(work, "rle-plain.dcm")
        subprocess.run(["dcmdrle", "+te", rle, rle_plain], check=True, capture_output=True)
        with open(rle_plain, "rb") as fh:
            diffs = harness.compare_datasets(fh.read(), stored)
        check(not diffs, f"decompressed RLE object: every attribute equal to dcmdrle's: {diffs[:5]}")
    check(summary.get("outcome") == "ok", f"batch outcome ok: {summary}")
    check(repo.count_instances() == 8, f"8 instances in Orthanc: {repo.count_instances()}")
    repo.delete_instance(oid) if oid else None
    # decompress: never: refused permanently, naming the syntax and why.
    rc, res, summary, _ = drv.send(repo.dicom_port, repo.aet, [rle], extra=["--decompress", "never"],
                                   name="rle, decompress never")
    r = res.get(uid(rle), {})
    check(r.get("status") == "permanent" and
          f"proposed: RLE Lossless ({RLE})" in r.get("reason", "") and
          "not decompressed: the destination's decompress is never" in r.get("reason", ""),
          f"RLE object refused permanently with decompress never, naming the syntax: {r}")
    check(repo.instance_id(uid(rle)) is None, "the RLE object is not in Orthanc")
    check(summary.get("outcome") == "permanent", f"batch outcome permanent (one refusal, no retry): {summary}")
    check(repo.count_instances() == 7, f"7 instances in Orthanc: {repo.count_instances()}")

    # Sending the same batch again: Orthanc answers success for what it already has.
    rc, res, summary, _ = drv.send(repo.dicom_port, repo.aet, explicit, name="orthanc again")
    check(all(r["status"] == "accepted" for r in res.values()) and len(res) == 3, f"re-send accepted: {res}")

    # A missing spool file fails on its own; the rest of the batch goes.
    missing = os.path.join(work, "missing.dcm")
    rc, res, summary, _ = drv.send(repo.dicom_port, repo.aet, [explicit[0], missing], name="missing file")
    check(res.get(uid(explicit[0]), {}).get("status") == "accepted", f"present file accepted: {res}")
    r = res.get("missing.dcm", {})
    check(r.get("status") == "permanent" and "not found" in r.get("reason", ""), f"missing file permanent: {r}")

    # --- 2. Wrong called AE title: the association is rejected, permanently, for every instance.
    rc, res, summary, _ = drv.send(repo.dicom_port, "NOTREPO", explicit, name="wrong called AE")
    check(len(res) == 3 and all(r["status"] == "permanent" for r in res.values()),
          f"wrong called AE: permanent for every instance: {res}")
    reason = next(iter(res.values()), {}).get("reason", "")
    check("called AE title not recognised" in reason and "'NOTREPO'" in reason and "nothing was sent" in reason,
          f"the reason says what to fix: {reason}")
    check(summary.get("outcome") == "permanent", f"batch permanent: {summary}")

    # --- 3. The connection is cut in the middle of the second C-STORE.
    size0 = len(originals[implicit[0]])
    proxy = CuttingProxy(repo.dicom_port, cut_after=size0 + size0 // 2)
    three = [implicit[0], implicit[1], explicit[0]]
    rc, res, summary, err = drv.send(proxy.port, repo.aet, three, name="cut mid-batch")
    proxy.close()
    check(rc == 0, f"driver exits 0 after a cut: {rc} {err[-2000:]}")
    s = [res.get(uid(f), {}) for f in three]
    check(s[0].get("status") == "accepted", f"first instance answered before the cut stays accepted: {s[0]}")
    check(s[1].get("status") == "retry" and "no C-STORE response" in s[1].get("reason", ""),
          f"second instance (cut mid-send) to be retried: {s[1]}")
    check(s[2].get("status") == "retry" and "association lost after 1 of 3" in s[2].get("reason", ""),
          f"third instance (never sent) to be retried: {s[2]}")
    check(summary.get("outcome") == "retry", f"batch outcome retry: {summary}")

    # --- 4. Orthanc stopped: nothing listens, every instance to be retried.
    repo.stop()
    rc, res, summary, _ = drv.send(repo.dicom_port, repo.aet, explicit, name="orthanc stopped")
    check(len(res) == 3 and all(r["status"] == "retry" and "cannot connect" in r["reason"] for r in res.values()),
          f"stopped Orthanc: retry for every instance: {res}")
    check(summary.get("outcome") == "retry", f"batch retry: {summary}")

    # --- 5. TLS: storescp with a test CA, client certificate required, bit-preserving.
    pki = make_pki(work)
    tls_out = os.path.join(work, "storescp-tls")
    os.makedirs(tls_out)
    scp_port = harness.free_port()
    scp = harness.Process("storescp", [
        "storescp", "--aetitle", "TLSSCP", "+tls", pki["server.key"], pki["server.crt"],
        "+cf", pki["ca.crt"], "--require-peer-cert", "--profile-bcp195-nd",
        "--bit-preserving", "--output-directory", tls_out, str(scp_port)],
        os.path.join(work, "storescp-tls.log"))
    harness.wait_for("storescp to listen", lambda: _connects(scp_port) or not scp.alive(), 30)
    check(scp.alive(), "storescp with TLS is running")
    study = explicit + implicit
    tls = ["--tls", "--ca", pki["ca.crt"], "--cert", pki["client.crt"], "--key", pki["client.key"]]
    rc, res, summary, err = drv.send(scp_port, "TLSSCP", study, extra=tls, name="tls")
    check(rc == 0, f"driver exits 0 over TLS: {rc} {err[-3000:]}")
    check(len(res) == 5 and all(r["status"] == "accepted" for r in res.values()), f"TLS: study accepted: {res}")
    check("tls=on" in err and "tcp_nodelay=on" in err, "TLS association with TCP_NODELAY")
    received = {}
    for name in os.listdir(tls_out):
        with open(os.path.join(tls_out, name), "rb") as fh:
            data = fh.read()
        received[split_part10(data)[0][0x0003].rstrip(b"\0 ").decode()] = data
    for f in study:
        got = received.get(uid(f))
        check(got is not None and split_part10(got)[1] == split_part10(originals[f])[1],
              f"TLS: {os.path.basename(f)} received byte for byte")

    before = len(os.listdir(tls_out))
    wrong_ca = ["--tls", "--ca", pki["otherca.crt"], "--cert", pki["client.crt"], "--key", pki["client.key"]]
    rc, res, summary, err = drv.send(scp_port, "TLSSCP", explicit, extra=wrong_ca, name="tls wrong CA")
    check(len(res) == 3 and all(r["status"] == "retry" and "TLS" in r["reason"] for r in res.values()),
          f"TLS with a CA that did not sign the server: handshake fails, retry: {res}")
    intruder = ["--tls", "--ca", pki["ca.crt"], "--cert", pki["intruder.crt"], "--key", pki["intruder.key"]]
    rc, res, summary, err = drv.send(scp_port, "TLSSCP", explicit, extra=intruder, name="tls untrusted client")
    check(len(res) == 3 and all(r["status"] == "retry" for r in res.values()),
          f"TLS with a client certificate the server does not trust: retry: {res}")
    rc, res, summary, err = drv.send(scp_port, "TLSSCP", explicit, name="plain to a TLS port")
    check(len(res) == 3 and all(r["status"] == "retry" for r in res.values()),
          f"plain TCP to a TLS port: retry: {res}")
    check(len(os.listdir(tls_out)) == before, "nothing stored by the failed TLS attempts")
    check(scp.alive(), "storescp survived the failed handshakes")
    scp.stop()

    # --- No patient value in anything the sender printed.
    hits = harness.scan_for_phi(drv.outputs, manifest)
    check(not hits, f"no patient values in the sender's output: {hits}")

    if check.failures:
        print(f"{len(check.failures)} check(s) failed", flush=True)
        for f in check.failures:
            print("  -", f)
        return 1
    print("dimse sender: all checks passed", flush=True)
    return 0


def _connects(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())

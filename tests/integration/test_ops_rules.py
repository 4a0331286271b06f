#!/usr/bin/env python3
"""The operations files shipped in packaging/ (issue 15): Prometheus alerting rules and the
Grafana dashboard only use metrics that dirgwd really exports.

  1. A real dirgwd runs with its metrics endpoint on, DICOM TLS on the receiver (a test
     certificate) and audit forwarding to a collector that is not there, so the
     certificate-expiry and audit-forwarding gauges have samples.
  2. Every metric name in every rule expression and every dashboard panel expression is one the
     endpoint lists (histograms with their _bucket/_sum/_count series); the only other name
     allowed is Prometheus' own `up`.
  3. dirgw_certificate_expiry_timestamp_seconds equals the test certificate's notAfter;
     dirgw_audit_forwarding_up is 0; dirgw_spool_floor_bytes is the configured floor.
  4. `promtool check rules` (promtool from Debian's prometheus package, fetched with
     `apt-get download` and unpacked into the build directory, never installed: installing the
     package would start a Prometheus server). Where it cannot be fetched, the parser checks
     above stand alone and the test says so."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import door  # noqa: E402
import harness  # noqa: E402
from harness import log  # noqa: E402

RULES = os.path.join(harness.SOURCE_DIR, "packaging/prometheus/dirgw-alerts.yml")
DASHBOARD = os.path.join(harness.SOURCE_DIR, "packaging/grafana/dirgw-dashboard.json")
PROMETHEUS_OWN = {"up"}
NAME = re.compile(r"(?<![A-Za-z0-9_:$])(dirgw_[A-Za-z0-9_]+|up)(?![A-Za-z0-9_(])")


def exported(text):
    """Metric names (with each histogram's series names) from the exposition's TYPE lines."""
    names, samples = set(), {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return names, samples


def names_in(expr):
    # Label values and strings ("spool_floor", "$instance") are not metric names.
    return set(NAME.findall(re.sub(r'"[^"]*"', '""', expr)))


def promtool(build_dir):
    """promtool unpacked from Debian's prometheus package into the build directory, or None."""
    found = shutil.which("promtool")
    if found:
        return found
    root = os.path.join(os.path.abspath(build_dir), "tools", "prometheus-deb")
    exe = os.path.join(root, "usr", "bin", "promtool")
    if os.path.exists(exe):
        return exe
    os.makedirs(root, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", "prometheus"], cwd=root, check=True,
                       capture_output=True, timeout=300)
        debs = [f for f in os.listdir(root) if f.endswith(".deb")]
        subprocess.run(["dpkg-deb", "-x", os.path.join(root, debs[0]), root], check=True,
                       capture_output=True, timeout=300)
        os.remove(os.path.join(root, debs[0]))
    except (OSError, IndexError, subprocess.SubprocessError) as e:
        log(f"note: promtool not available ({e}); rules checked by the parser only")
        return None
    return exe if os.path.exists(exe) else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    # Fetched before the private network namespace (which has no route to the archive); inside,
    # the unpacked copy is found.
    tool = promtool(args.build_dir)
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    check = harness.Checks()
    work = harness.tempdir("dirgw-ops-")
    pki = door.TestPki(work)
    metrics_port = harness.free_port()
    ingest = (f"    tls:\n      certificate: {pki.server[0]}\n      private_key: {pki.server[1]}\n"
              f"      ca: {pki.ca[0]}\n")
    extra = (f"metrics: {{ enabled: true, bind: 127.0.0.1, port: {metrics_port} }}\n"
             f"audit:\n  syslog: {{ enabled: true, host: 127.0.0.1, port: {harness.free_port()},"
             f" ca: {pki.ca[0]} }}\n")
    gw = harness.Gateway(args.build_dir, work, "http://127.0.0.1:9/dicom-web", ingest_yaml=ingest,
                         extra_yaml=extra, spool_floor="64MiB").start()

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            return exported(r.read().decode())

    # The audit forwarder's first attempt fails (nobody listens): wait until it says so.
    names, samples = harness.wait_for(
        "audit forwarding to be reported down",
        lambda: (lambda n_s: n_s if n_s[1].get("dirgw_audit_forwarding_up") == 0 else None)(
            scrape()), 30)
    log(f"{len(names)} metric names exported")

    with open(RULES) as f:
        rules = yaml.safe_load(f)
    count = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            count += 1
            used = names_in(rule["expr"])
            check(bool(used), f"rule {rule.get('alert')}: no metric in {rule['expr']!r}")
            for n in sorted(used - names - PROMETHEUS_OWN):
                check(False, f"rule {rule.get('alert')}: {n} is not exported by dirgwd")
            check(rule.get("labels", {}).get("severity") in ("info", "warning", "critical"),
                  f"rule {rule.get('alert')}: severity label")
            check(bool(rule.get("annotations", {}).get("summary")),
                  f"rule {rule.get('alert')}: summary annotation")
    alerts = {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    for wanted in ("DirgwBacklogOld", "DirgwCircuitOpen", "DirgwVerificationFailing",
                   "DirgwSpoolNearFloor", "DirgwAuditForwardingDown",
                   "DirgwCertificateExpiresSoon"):
        check(wanted in alerts, f"no {wanted} alert")

    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [("variable " + v["name"], v["query"]) for v in dash["templating"]["list"]
              if v.get("type") == "query"]
    for title, expr in exprs:
        used = names_in(expr)
        check(bool(used), f"dashboard {title!r}: no metric in {expr!r}")
        for n in sorted(used - names - PROMETHEUS_OWN):
            check(False, f"dashboard {title!r}: {n} is not exported by dirgwd")
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "dashboard panel ids are unique")

    # The new gauges' values.
    not_after = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", pki.server[0]],
                               capture_output=True, text=True, check=True).stdout.strip()
    expected = int(subprocess.run(["date", "-u", "-d", not_after.split("=", 1)[1], "+%s"],
                                  capture_output=True, text=True, check=True).stdout)
    key = 'dirgw_certificate_expiry_timestamp_seconds{use="dicom_receiver",destination=""}'
    check(samples.get(key) == expected,
          f"{key} = {samples.get(key)}, the certificate's notAfter is {expected}")
    check(samples.get("dirgw_spool_floor_bytes") == 64 * 1024 * 1024,
          f"dirgw_spool_floor_bytes = {samples.get('dirgw_spool_floor_bytes')}")
    gw.stop()

    checked = "parser only"
    if tool:
        p = subprocess.run([tool, "check", "rules", RULES], capture_output=True, text=True)
        check(p.returncode == 0, f"promtool check rules: {p.stdout}{p.stderr}")
        checked = "promtool " + ("ok" if p.returncode == 0 else "FAILED")
    print(f"ops rules: {count} alert rules, {len(exprs)} dashboard expressions, {checked}, "
          f"{len(check.failures)} failures", flush=True)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())

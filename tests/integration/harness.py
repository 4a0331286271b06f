"""Test harness for dirgw's integration tests and demo: real parts only.

- The regional repository is a real Orthanc with its DICOMweb plugin, started on a free port
  with a temporary configuration and storage (never the packaged service or its ports).
- The local PACS is DCMTK's own tools (storescu, ...).
- dirgwd and the dirgw CLI are the ones just built.

Orthanc 1.10 cannot be told which address to bind, so the tests run inside a private network
namespace whose only interface is loopback (enter_private_network()): whatever binds there is
reachable from this test alone. Everything started is stopped at exit.
"""

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def _default_stow_lanes():
    """kDefaultStowRsConcurrency, read from gateway/config/config.h so that the tests and the
    bench cannot drift from the gateway's default."""
    with open(os.path.join(SOURCE_DIR, "gateway/config/config.h")) as f:
        m = re.search(r"kDefaultStowRsConcurrency = (\d+);", f.read())
    if not m:
        raise RuntimeError("kDefaultStowRsConcurrency not found in gateway/config/config.h")
    return int(m.group(1))


# Requests in flight to a STOW-RS destination whose configuration does not set `concurrency`.
DEFAULT_STOW_LANES = _default_stow_lanes()

_started = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def clear_of_midnight(margin=300):
    """For a test that counts what arrives on "today" (UTC): when fewer than `margin` seconds of
    the day are left, waits until the next day has begun, so that the day it computed at the
    start is still the day its instances arrive on (a clean clone once ran one across midnight
    and counted nothing received)."""
    now = time.time()
    left = 86400 - now % 86400  # the epoch's days are UTC days
    if left < margin:
        log(f"{left:.0f} s left of the day (UTC): waiting for the next one, so that the day's "
            "counts hold")
        time.sleep(left + 1)


def enter_private_network(argv):
    """Re-executes this script in a new network namespace with only loopback, when we can."""
    if os.environ.get("DIRGW_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    if os.environ.get("DIRGW_NO_NETNS") == "1" or os.geteuid() != 0 or not shutil.which("unshare"):
        log("note: not in a private network namespace; Orthanc binds every interface "
            "(RemoteAccessAllowed=false still refuses other hosts)")
        return
    env = dict(os.environ, DIRGW_NETNS="1")
    rc = subprocess.call(["unshare", "--net", sys.executable] + argv, env=env)
    sys.exit(rc)


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_all():
    for p in reversed(_started):
        with contextlib.suppress(Exception):
            p.stop()


atexit.register(_stop_all)


class Process:
    def __init__(self, name, args, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True)
        _started.append(self)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        if self in _started:
            _started.remove(self)
        return self.proc.returncode

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def wait_for(what, predicate, timeout, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Orthanc:
    """A real Orthanc + DICOMweb plugin acting as the regional repository."""

    def __init__(self, workdir, name="repository", extra_config=None):
        """extra_config: keys merged into Orthanc's configuration (its DICOM server, say)."""
        self.dir = os.path.join(workdir, f"orthanc-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = self.url + "/dicom-web"
        cfg = {
            "Name": f"dirgw-test-{name}",
            "StorageDirectory": os.path.join(self.dir, "storage"),
            "IndexDirectory": os.path.join(self.dir, "index"),
            "HttpPort": self.http_port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpThreadsCount": 8,
            "StableAge": 1,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        }
        cfg.update(extra_config or {})
        self.config_path = os.path.join(self.dir, "orthanc.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.process = None

    def start(self):
        self.process = Process("Orthanc", ["Orthanc", self.config_path],
                               os.path.join(self.dir, "orthanc.log"))
        wait_for("Orthanc to answer", lambda: self._alive_or_raise() and self.get("/system"), 60)
        plugins = self.get("/plugins") or []
        if "dicom-web" not in plugins:
            raise RuntimeError(f"Orthanc started without the DICOMweb plugin: {plugins}")
        log(f"Orthanc with DICOMweb on {self.url}")
        return self

    def _alive_or_raise(self):
        if not self.process.alive():
            raise RuntimeError("Orthanc exited:\n" + self.process.log_text()[-3000:])
        return True

    def stop(self):
        if self.process:
            self.process.stop()
            self.process = None

    def get(self, path, raw=False):
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                data = r.read()
                return data if raw else json.loads(data)
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=body.encode() if isinstance(body, str) else body,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def count_instances(self):
        s = self.get("/statistics")
        return s["CountInstances"] if s else -1

    def instance_id(self, sop_instance_uid):
        found = self.post("/tools/lookup", sop_instance_uid)
        ids = [x["ID"] for x in found if x.get("Type") == "Instance"]
        return ids[0] if ids else None

    def instance_file(self, orthanc_id):
        return self.get(f"/instances/{orthanc_id}/file", raw=True)

    def delete_instance(self, orthanc_id):
        """Removes an instance behind dirgw's back (a repository that loses what it took)."""
        req = urllib.request.Request(f"{self.url}/instances/{orthanc_id}", method="DELETE")
        urllib.request.urlopen(req, timeout=30).read()


class ControlClient:
    """The CLI side of a running dirgwd (self.cli, self.socket): shared by the integration
    tests' Gateway and the benchmarks' BenchGateway."""
    cli_timeout = 60

    def run_cli(self, *args):
        p = subprocess.run([self.cli, "--socket", self.socket] + list(args), capture_output=True,
                           text=True, timeout=self.cli_timeout)
        return p.returncode, p.stdout, p.stderr

    def status_ok(self):
        rc, out, _ = self.run_cli("status", "--json")
        return rc == 0 and json.loads(out).get("ok")

    def study(self, uid):
        """`dirgw study UID --json`."""
        rc, out, err = self.run_cli("study", uid, "--json")
        if rc != 0:
            raise RuntimeError(f"dirgw study failed ({rc}): {err}")
        return json.loads(out)

    def study_state(self, uid):
        """The study's state for its first destination."""
        return self.study(uid)["destinations"][0]["state"]

    def status(self):
        rc, out, err = self.run_cli("status", "--json")
        if rc != 0:
            raise RuntimeError(f"dirgw status failed ({rc}): {err}")
        return json.loads(out)


class Gateway(ControlClient):
    """dirgwd with a temporary configuration and state directory."""

    def __init__(self, build_dir, workdir, repository_url, allowed_callers=("PACS1",),
                 stable_age="2s", extra_yaml="", name="dirgw", batch_max=25, request_timeout="60s",
                 spool_floor="64MiB", retry="{ initial: 500ms, max: 5s }", circuit="",
                 ingest_yaml="", consent="opt-out", policy_yaml="", dest_yaml="", verify="none",
                 retention_yaml=""):
        # verify: the destination's verify: block. "none" by default: the forwarding tests'
        # assertions are about SENT; test_verification turns verification on
        # (docs/verification.md).
        self.build_dir = os.path.abspath(build_dir)
        self.dirgwd = os.path.join(self.build_dir, "gateway/daemon/dirgwd")
        self.cli = os.path.join(self.build_dir, "tools/dirgw/dirgw")
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state_dir = os.path.join(self.dir, "state")
        self.socket = os.path.join(self.dir, "control.sock")
        self.port = free_port()
        self.ae_title = "DIRGW"
        callers = ", ".join(allowed_callers)
        self.config_path = os.path.join(self.dir, "dirgw.yaml")
        self._params = dict(build_dir=build_dir, workdir=workdir, repository_url=repository_url,
                            allowed_callers=allowed_callers, stable_age=stable_age,
                            extra_yaml=extra_yaml, name=name, batch_max=batch_max,
                            request_timeout=request_timeout, spool_floor=spool_floor,
                            retry=retry, circuit=circuit, ingest_yaml=ingest_yaml,
                            consent=consent, policy_yaml=policy_yaml, dest_yaml=dest_yaml,
                            verify=verify, retention_yaml=retention_yaml)
        with open(self.config_path, "w") as f:
            f.write(f"""facility: {{ name: "Integration test facility", id: TEST }}
state_dir: {self.state_dir}
control_socket: {self.socket}
log: {{ level: debug }}
ingest:
  dicom:
    ae_title: {self.ae_title}
    bind: 127.0.0.1
    port: {self.port}
    allowed_callers: [{callers}]
    max_associations: 8
    acse_timeout: 10s
    dimse_timeout: 30s
{ingest_yaml}policy:
  stable_age: {stable_age}
{policy_yaml}
retention: {{ spool_floor: {spool_floor}{retention_yaml} }}
destinations:
  - name: repository
    type: stow-rs
    url: {repository_url}
    consent: {consent}
    verify: {verify}
{dest_yaml}    batch: {{ max_instances: {batch_max}, max_bytes: 32MiB }}
    timeouts: {{ connect: 2s, request: {request_timeout} }}
    retry: {retry}
{("    circuit: " + circuit) if circuit else ""}
{extra_yaml}""")
        self.process = None
        self.log_path = os.path.join(self.dir, "dirgwd.log")

    def start(self):
        env = dict(os.environ)
        # A hostile environment must not turn Nagle back on: dirgw sets TCP_NODELAY itself.
        env["TCP_NODELAY"] = "0"
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.process = Process("dirgwd", [self.dirgwd, "--config", self.config_path], self.log_path,
                               env=env)
        wait_for("dirgwd to answer on its control socket",
                 lambda: self._alive_or_raise() and self.status_ok(), 60)
        log(f"dirgwd listening as {self.ae_title} on 127.0.0.1:{self.port}")
        return self

    def _alive_or_raise(self):
        if not self.process.alive():
            raise RuntimeError("dirgwd exited:\n" + self.process.log_text()[-5000:])
        return True

    def stop(self, sig=signal.SIGTERM):
        rc = None
        if self.process:
            rc = self.process.stop(sig)
            self.process = None
        return rc

    def kill9(self):
        """kill -9: no chance to clean up, as in a power cut of the process."""
        if self.process:
            self.process.proc.kill()
            self.process.proc.wait()
            self.process.stop()
            self.process = None

    def use_dimse(self, ae_title, port, calling_ae=None):
        """Before start(): the one destination becomes `type: dimse`, C-STORE to ae_title at
        127.0.0.1:port (as calling_ae when given)."""
        with open(self.config_path) as f:
            text = f.read()
        calling = f"calling_ae: {calling_ae}, " if calling_ae else ""
        text = text.replace(f"    type: stow-rs\n    url: {self._params['repository_url']}\n",
                            f"    type: dimse\n    dimse: {{ ae_title: {ae_title}, {calling}"
                            f"host: 127.0.0.1, port: {port} }}\n")
        with open(self.config_path, "w") as f:
            f.write(text)
        return self

    def reconfigure(self, **changes):
        """Rewrites the configuration (same ports and state) with some parameters changed."""
        params = dict(self._params, **changes)
        port = self.port
        self.__init__(**params)
        self.port = port
        with open(self.config_path) as f:
            text = f.read()
        import re
        text = re.sub(r"port: \d+", f"port: {port}", text, count=1)
        with open(self.config_path, "w") as f:
            f.write(text)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def synth(build_dir, out_dir, modality, instances=None, seed=1, patient_index=0, manifest=None,
          extra=()):
    exe = os.path.join(os.path.abspath(build_dir), "tools/synth/dirgw-synth")
    args = [exe, "--out", out_dir, "--modality", modality, "--seed", str(seed),
            "--patient-index", str(patient_index)]
    if instances is not None:
        args += ["--instances", str(instances)]
    if manifest:
        args += ["--manifest", manifest]
    args += list(extra)
    p = subprocess.run(args, capture_output=True, text=True, check=True)
    files = sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.endswith(".dcm"))
    return p.stdout.strip(), files


def storescu(port, files_or_dirs, calling="PACS1", called="DIRGW", extra=()):
    """DCMTK's storescu, as a PACS would send. Returns (returncode, output)."""
    env = dict(os.environ, TCP_NODELAY="1")
    args = ["storescu", "-aet", calling, "-aec", called, "--scan-directories", "-nh"]
    args += list(extra) + ["127.0.0.1", str(port)] + list(files_or_dirs)
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout + p.stderr


# --- A minimal DICOM reader, to compare what arrived with what was sent, attribute by attribute.

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def dataset_elements(data):
    """Top-level elements of a Part-10 file as {(group, element): (vr, raw value)}, skipping the
    meta group and group lengths. Explicit VR little endian or implicit VR little endian."""
    if data[128:132] != b"DICM":
        raise ValueError("no DICM prefix")
    pos = 132
    explicit = True
    ts = None
    out = {}
    while pos < len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002 and ts is not None:
            explicit = ts != "1.2.840.10008.1.2"
        vr = None
        if explicit or group == 0x0002:
            vr = data[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                length = struct.unpack_from("<I", data, pos + 8)[0]
                pos += 12
            else:
                length = struct.unpack_from("<H", data, pos + 6)[0]
                pos += 8
        else:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            pos += 8
        if length == 0xFFFFFFFF:
            # Undefined length (sequence or encapsulated pixel data): keep the rest as one value.
            value = data[pos:]
            out[(group, elem)] = (vr, value)
            break
        value = data[pos:pos + length]
        pos += length
        if group == 0x0002:
            if elem == 0x0010:
                ts = value.rstrip(b"\0 ").decode()
            continue
        if elem == 0x0000:
            continue
        out[(group, elem)] = (vr, value)
    return out


def compare_datasets(sent, received):
    """Returns a list of differences (empty when every attribute and the pixel data are equal)."""
    a, b = dataset_elements(sent), dataset_elements(received)
    diffs = []
    for tag in sorted(set(a) | set(b)):
        if tag not in a:
            diffs.append(f"({tag[0]:04X},{tag[1]:04X}) added")
        elif tag not in b:
            diffs.append(f"({tag[0]:04X},{tag[1]:04X}) missing")
        elif a[tag][1] != b[tag][1]:
            diffs.append(f"({tag[0]:04X},{tag[1]:04X}) differs")
    return diffs


def json_value(ds, tag):
    """The first value of a tag in DICOM JSON (a PN's alphabetic group), or ""."""
    v = ds.get(tag, {}).get("Value", [""])[0]
    return v.get("Alphabetic", "") if isinstance(v, dict) else v


def sr_text(ds):
    """The text of a Basic Text SR's content items, in DICOM JSON, one item a line."""
    items = ds.get("0040A730", {}).get("Value", [])
    return "\n".join(v for v in (json_value(i, "0040A160") for i in items) if v)


def sop_instance_uid(path):
    with open(path, "rb") as f:
        els = dataset_elements(f.read())
    return els[(0x0008, 0x0018)][1].rstrip(b"\0 ").decode()


def scan_for_phi(texts, manifest_path):
    """Every patient value of the synthetic studies, searched in every text. Returns the hits."""
    values = set()
    with open(manifest_path) as f:
        for line in f:
            m = json.loads(line)
            for key in ("patient_name", "patient_id", "health_number", "birth_date", "accession"):
                v = m.get(key)
                if v and len(str(v)) >= 4:
                    values.add(str(v))
                    if key == "patient_name":
                        values.update(p for p in str(v).split("^") if len(p) >= 4)
    hits = []
    for name, text in texts.items():
        for v in values:
            if v in text:
                hits.append(f"{name}: contains a patient value ({len(v)} characters)")
    return hits


class Checks:
    """Collects failed expectations, printing each as it happens: check(cond, what)."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what):
        if not cond:
            self.failures.append(what)
            print("FAIL:", what, flush=True)
        return cond

    def finish(self, passed):
        """The test's exit status: 1 after saying how many checks failed, else 0 after `passed`."""
        if self.failures:
            print(f"FAILED: {len(self.failures)} check(s)", flush=True)
            return 1
        print(passed, flush=True)
        return 0


def test_args(script, extra=None):
    """An integration test's command line: --build-dir, and what `extra(parser)` adds. The test
    runs in a private network namespace: this re-executes `script` there first (tests stop what
    they start, and nothing they start listens outside)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    if extra:
        extra(ap)
    args = ap.parse_args()
    enter_private_network([os.path.abspath(script)] + sys.argv[1:])
    return args


def spool_temporaries(spool):
    """(name, size) of what spool/tmp holds besides the SCP's free slots: `slot-*` files that are
    empty, created in advance and reused (docs/design.md, durability). A slot that received an
    object holds its bytes until the shard directory is synced, then goes: it counts."""
    tmp = os.path.join(spool, "tmp")
    out = []
    for name in os.listdir(tmp):
        try:
            size = os.path.getsize(os.path.join(tmp, name))
        except FileNotFoundError:
            continue
        if name.startswith("slot-") and size == 0:
            continue
        out.append((name, size))
    return out


def tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    if os.environ.get("DIRGW_KEEP_TMP") != "1":
        # atexit runs last-registered first: stop what runs before its files go.
        atexit.register(lambda: (_stop_all(), shutil.rmtree(d, True)))
    return d

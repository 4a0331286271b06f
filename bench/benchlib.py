"""Parts for `make bench` (bench/run.py): the servers we measure against, the dirgwd we measure,
and small tools (log watching, multipart bodies, catalog pre-fill).

Built on tests/integration/harness.py (Process, Orthanc, free ports, the private network
namespace); nothing here edits it. Every process is started through harness.Process, so that
harness stops whatever is still running at exit.
"""

import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
import harness  # noqa: E402
from harness import log  # noqa: E402

CALLING_AES = ("PACS1", "PACS2", "PACS3", "PACS4")


# --- small tools -------------------------------------------------------------------------------

class LogWatch:
    """Follows a log file; every complete line gets the monotonic time at which we saw it.
    Polled every few milliseconds, so a time read from here is late by at most the interval."""

    def __init__(self, path, interval=0.005):
        self.path = path
        self.interval = interval
        self.offset = 0
        self.partial = b""
        self.lines = []  # (monotonic time, text)

    def skip_existing(self):
        self.poll()
        self.lines = []

    def poll(self):
        now = time.monotonic()
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        new = [(now, line.decode("utf-8", "replace")) for line in complete]
        self.lines.extend(new)
        return new

    def wait(self, what, predicate, timeout, alive=None):
        """Waits until predicate(time, line) is true for a new line; returns (time, line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in self.poll():
                if predicate(line):
                    return t, line
            if alive is not None:
                alive()
            time.sleep(self.interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def field(line, key):
    """Value of key=value in one of dirgwd's logfmt lines (unquoted values only)."""
    for part in line.split(" "):
        if part.startswith(key + "="):
            return part[len(key) + 1:]
    return None


def dicom_uids(path):
    """(SOP Class UID, SOP Instance UID) of a Part-10 file, read from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(65536)
    try:
        els = harness.dataset_elements(head)
    except Exception:  # an element cut by the 64 KiB window: read all of it
        with open(path, "rb") as f:
            els = harness.dataset_elements(f.read())
    clean = lambda v: v[1].rstrip(b"\0 ").decode()  # noqa: E731
    return clean(els[(0x0008, 0x0016)]), clean(els[(0x0008, 0x0018)])


def stow_answer(files):
    """A DICOM JSON Store Instances Response that acknowledges every instance of a data set:
    what the null sink answers to every request (dirgwd needs per-instance evidence)."""
    items = []
    for p in files:
        cls, uid = dicom_uids(p)
        items.append({"00081150": {"vr": "UI", "Value": [cls]},
                      "00081155": {"vr": "UI", "Value": [uid]}})
    return json.dumps({"00081199": {"vr": "SQ", "Value": items}}, separators=(",", ":"))


def build_multipart_bodies(files, batch, out_dir):
    """STOW-RS request bodies of `batch` instances each, exactly as dirgwd frames them."""
    os.makedirs(out_dir, exist_ok=True)
    boundary = "bench-" + secrets.token_hex(16)
    bodies = []
    for start in range(0, len(files), batch):
        path = os.path.join(out_dir, f"body-{start // batch:04d}.mpr")
        with open(path, "wb") as out:
            for i, f in enumerate(files[start:start + batch]):
                out.write((b"--" if i == 0 else b"\r\n--") + boundary.encode() +
                          b"\r\nContent-Type: application/dicom\r\n\r\n")
                with open(f, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            out.write(b"\r\n--" + boundary.encode() + b"--\r\n")
        bodies.append(path)
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return bodies, content_type


def curl_stow(url, bodies, content_type):
    """One curl process posting every body in turn on one kept connection (--next), streaming
    each file (-T) rather than loading it (--data-binary @ would read it into memory first).
    Returns (seconds, [(http status, bytes uploaded)]), where seconds is the sum of curl's own
    time_total per request: curl's process start is left out, in curl's favour."""
    args = ["curl", "-sS"]
    for i, b in enumerate(bodies):
        if i > 0:
            args.append("--next")
        args += ["-X", "POST", "-T", b, "-H", f"Content-Type: {content_type}",
                 "-H", "Accept: application/dicom+json", "-H", "Expect:",
                 "-o", "/dev/null", "-w", "%{http_code} %{size_upload} %{time_total}\\n", url]
    p = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"curl failed ({p.returncode}): {p.stderr[-500:]}")
    results = [line.split() for line in p.stdout.split("\n") if line.strip()]
    results = [(int(a), int(b), float(c)) for a, b, c in results]
    bad = [r for r in results if r[0] != 200]
    if bad or len(results) != len(bodies):
        raise RuntimeError(f"curl: unexpected answers {results[:5]}")
    return sum(r[2] for r in results), [(r[0], r[1]) for r in results]


def storescu_parallel(port, file_groups, called, timeout=3600):
    """One storescu per group, all started at once (PACS1..PACS4). Returns seconds until the last
    exits; raises if one fails. TCP_NODELAY=1 as for every DCMTK tool here."""
    env = dict(os.environ, TCP_NODELAY="1")
    procs = []
    t0 = time.monotonic()
    for i, group in enumerate(file_groups):
        args = ["storescu", "-aet", CALLING_AES[i], "-aec", called, "127.0.0.1", str(port)] + group
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env))
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outputs.append((p.returncode, out.decode("utf-8", "replace")))
    elapsed = time.monotonic() - t0
    for rc, out in outputs:
        if rc != 0:
            raise RuntimeError(f"storescu failed ({rc}): {out[-1500:]}")
    return elapsed


def split(files, n):
    """n contiguous quarters (a PACS sends a study's instances in order)."""
    k, r = divmod(len(files), n)
    out, start = [], 0
    for i in range(n):
        end = start + k + (1 if i < r else 0)
        out.append(files[start:end])
        start = end
    return out


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


# --- the gateway we measure --------------------------------------------------------------------

class BenchGateway(harness.ControlClient):
    """dirgwd with a bench configuration: log level info (debug logs every instance), batches of
    `batch` instances, a spool on the bench's disk. Talks to the daemon like the tests do."""
    cli_timeout = 120

    def __init__(self, build_dir, workdir, url, stable_age="1h", batch=50, name="dirgw",
                 state_dir=None, concurrency=1, dest_extra=""):
        self.build_dir = os.path.abspath(build_dir)
        self.dirgwd = os.path.join(self.build_dir, "gateway/daemon/dirgwd")
        self.cli = os.path.join(self.build_dir, "tools/dirgw/dirgw")
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        self.socket = os.path.join(self.dir, "control.sock")
        self.port = harness.free_port()
        self.ae_title = "DIRGW"
        self.stable_age = stable_age
        self.batch = batch
        self.concurrency = concurrency
        self.dest_extra = dest_extra  # more keys of the destination, e.g. send_while_receiving
        self.config_path = os.path.join(self.dir, "dirgw.yaml")
        self.log_path = os.path.join(self.dir, "dirgwd.log")
        self.write_config(url)
        self.process = None

    def write_config(self, url):
        with open(self.config_path, "w") as f:
            f.write(f"""facility: {{ name: "dirgw bench", id: BENCH }}
state_dir: {self.state_dir}
control_socket: {self.socket}
log: {{ level: info }}
ingest:
  dicom:
    ae_title: {self.ae_title}
    bind: 127.0.0.1
    port: {self.port}
    allowed_callers: [{", ".join(CALLING_AES)}]
    max_associations: 8
policy: {{ stable_age: {self.stable_age} }}
retention: {{ spool_floor: 256MiB }}
destinations:
  - name: repository
    type: stow-rs
    url: {url}
    batch: {{ max_instances: {self.batch}, max_bytes: 64MiB }}
    timeouts: {{ connect: 2s, request: 10m }}
    retry: {{ initial: 1s, max: 5s }}
    concurrency: {self.concurrency}
{self.dest_extra}""")

    def start(self, wrapper=()):
        """wrapper: a command to run dirgwd under (strace ..., for bench/profile_ingest.py)."""
        env = dict(os.environ)
        env["TCP_NODELAY"] = "0"  # dirgwd sets TCP_NODELAY itself, whatever the environment says
        self.process = harness.Process(
            "dirgwd", list(wrapper) + [self.dirgwd, "--config", self.config_path], self.log_path,
            env=env)
        harness.wait_for("dirgwd to answer on its control socket",
                         lambda: self.alive_or_raise() and self.status_ok(), 600, 0.05)
        return self

    @property
    def pid(self):
        return self.process.proc.pid

    def alive_or_raise(self):
        if not self.process.alive():
            raise RuntimeError("dirgwd exited:\n" + self.process.log_text()[-3000:])
        return True

    def stop(self):
        rc = None
        if self.process:
            rc = self.process.stop(signal.SIGTERM, timeout=60)
            self.process = None
        return rc


# --- the baselines -----------------------------------------------------------------------------

class Storescp:
    """DCMTK's storescp writing what it receives as received (--bit-preserving), one process per
    association (--fork) so that four associations are served in parallel as dirgwd serves them."""

    def __init__(self, workdir, name="storescp"):
        self.dir = os.path.join(workdir, name)
        self.out = os.path.join(self.dir, "out")
        os.makedirs(self.out, exist_ok=True)
        self.port = harness.free_port()
        self.process = None

    def start(self):
        env = dict(os.environ, TCP_NODELAY="1")
        self.process = harness.Process(
            "storescp", ["storescp", "--fork", "--bit-preserving", "-od", self.out, "-aet", "STORESCP",
                         str(self.port)], os.path.join(self.dir, "storescp.log"), env=env)
        harness.wait_for("storescp to listen", lambda: _port_open(self.port, self.process), 30, 0.05)
        return self

    def count(self):
        return len(os.listdir(self.out))

    def stop(self):
        if self.process:
            self.process.stop()
            self.process = None


def _port_open(port, process):
    import socket
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n" + process.log_text()[-2000:])
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def orthanc(workdir, name, dicom=False, lua=None, servers=None, stable_age=1):
    """A real Orthanc + DICOMweb (harness.Orthanc) with the bench's changes: optionally a DICOM
    port (as a router), a Lua script, DICOMweb client servers. Started with TCP_NODELAY=1 in the
    environment (DCMTK inside Orthanc reads it). Not started yet."""
    o = harness.Orthanc(workdir, name)
    with open(o.config_path) as f:
        cfg = json.load(f)
    cfg["StableAge"] = stable_age
    cfg["SaveJobs"] = False
    cfg["HttpThreadsCount"] = 8
    # A slow machine must not turn into a failure: a request served (30 s by default) or sent
    # (60 s) may take as long as it takes.
    cfg["HttpRequestTimeout"] = 3600
    cfg["HttpTimeout"] = 3600
    if dicom:
        o.dicom_port = harness.free_port()
        cfg.update({"DicomServerEnabled": True, "DicomPort": o.dicom_port, "DicomAet": "ROUTER",
                    "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True})
    if lua:
        lua_path = os.path.join(o.dir, "route.lua")
        with open(lua_path, "w") as f:
            f.write(lua)
        cfg["LuaScripts"] = [lua_path]
    if servers:
        cfg["DicomWeb"]["Servers"] = servers
    with open(o.config_path, "w") as f:
        json.dump(cfg, f, indent=2)
    return o


# Orthanc as a router: when a study is stable, its DICOMweb client sends it to "dest" with
# STOW-RS, synchronously (the Lua callback returns when the job is done).
ROUTER_LUA = """
function OnStableStudy(studyId, tags, metadata)
  RestApiPost('/dicom-web/servers/dest/stow',
              '{"Resources": ["' .. studyId .. '"], "Synchronous": true}', false)
end
"""


class NullSink:
    """Debian's nginx as a STOW-RS repository that stores nothing: it reads every request body in
    full (mirror_request_body makes nginx read the whole body before the content phase; the
    mirror subrequest itself goes to an internal location that does nothing), then answers 200
    with a fixed DICOM JSON Store Instances Response. The access log records each request's
    length, so run.py can check that every byte was read."""

    def __init__(self, workdir, answer_json, name="sink"):
        self.dir = os.path.join(workdir, name)
        self.www = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(self.www, "dicom-web"), exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, "tmp", sub), exist_ok=True)
        with open(os.path.join(self.www, "answer.json"), "w") as f:
            f.write(answer_json)
        self.port = harness.free_port()
        self.url = f"http://127.0.0.1:{self.port}/dicom-web"
        self.access_log = os.path.join(self.dir, "access.log")
        self.conf = os.path.join(self.dir, "nginx.conf")
        t = os.path.join(self.dir, "tmp")
        with open(self.conf, "w") as f:
            # As root, the worker runs as root too: the bench's temporary directories are 0700.
            user = "user root;\n" if os.geteuid() == 0 else ""
            f.write(f"""daemon off;
{user}worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
  log_format sink '$request_method $uri $status $request_length $request_time';
  access_log {self.access_log} sink;
  client_body_temp_path {t}/body;
  proxy_temp_path {t}/proxy;
  fastcgi_temp_path {t}/fastcgi;
  uwsgi_temp_path {t}/uwsgi;
  scgi_temp_path {t}/scgi;
  client_max_body_size 0;
  client_body_buffer_size 512m;
  keepalive_requests 100000;
  keepalive_timeout 600s;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.www};
    location /dicom-web/ {{
      mirror /_null;
      mirror_request_body on;
      error_page 404 405 =200 /answer.json;
    }}
    location = /_null {{ internal; return 204; }}
    location = /answer.json {{ internal; default_type application/dicom+json; }}
  }}
}}
""")
        self.process = None

    @staticmethod
    def available():
        return shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")

    def start(self):
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = harness.Process("nginx", [exe, "-c", self.conf, "-p", self.dir],
                                       os.path.join(self.dir, "nginx.log"))
        harness.wait_for("nginx to listen", lambda: _port_open(self.port, self.process), 30, 0.05)
        return self

    def requests(self):
        """[(method, uri, status, request length)] from the access log."""
        out = []
        if os.path.exists(self.access_log):
            with open(self.access_log) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 4:
                        out.append((p[0], p[1], int(p[2]), int(p[3])))
        return out

    def reset_log(self):
        open(self.access_log, "w").close()

    def stop(self):
        if self.process:
            self.process.stop(signal.SIGQUIT)
            self.process = None


# --- catalog pre-fill --------------------------------------------------------------------------

def prefill_catalog(state_dir, instances, per_study=100, destination="repository"):
    """Adds `instances` already-delivered instances (studies of `per_study`, all SENT) to the
    catalog that dirgwd created in state_dir, with plain INSERTs matching
    gateway/catalog/migrations/*.sql, and writes their spool files (a few bytes each, named by
    their real SHA-256), because dirgwd's start-up reconciliation flags catalogued objects whose
    file is missing. Run while dirgwd is stopped."""
    rng = random.Random(instances)
    root = "1.2.826.0.1.3680043.10.1011.99"
    now = int(time.time() * 1000) - 86400000
    objects_dir = os.path.join(state_dir, "spool", "objects")
    db = sqlite3.connect(os.path.join(state_dir, "catalog.db"))
    db.execute("PRAGMA journal_mode=WAL")
    cur = db.cursor()
    cur.execute("BEGIN")
    n_studies = (instances + per_study - 1) // per_study
    inst_id = cur.execute("SELECT coalesce(max(id), 0) FROM instances").fetchone()[0]
    study_id0 = cur.execute("SELECT coalesce(max(id), 0) FROM studies").fetchone()[0]
    objects, insts, deliveries, studies, sds = [], [], [], [], []
    left = instances
    for s in range(n_studies):
        sid = study_id0 + s + 1
        count = min(per_study, left)
        left -= count
        study_uid = f"{root}.1.{sid}.{rng.randrange(10**8)}"
        series_uid = f"{root}.2.{sid}.{rng.randrange(10**8)}"
        t = now + s * 1000
        for k in range(count):
            inst_id += 1
            content = f"dirgw bench pre-filled object {inst_id} {rng.getrandbits(64)}\n".encode()
            sha = hashlib.sha256(content).hexdigest()
            shard = os.path.join(objects_dir, sha[:2])
            os.makedirs(shard, exist_ok=True)
            with open(os.path.join(shard, sha), "wb") as f:
                f.write(content)
            size = len(content)
            objects.append((sha, size, t))
            insts.append((inst_id, sid, f"{series_uid}.{k + 1}", "1.2.840.10008.5.1.4.1.1.2",
                          series_uid, "1.2.840.10008.1.2.1", "CT", sha, size, t, "PACS1",
                          "127.0.0.1:40000"))
            deliveries.append((inst_id, destination, "sent", 1, t + 2000))
        studies.append((sid, study_uid, "STABLE", t, t + 500, count, count * size))
        sds.append((sid, destination, "SENT", t + 2000, t + 2000))
    cur.executemany("INSERT INTO objects(sha256, size, created_at) VALUES (?,?,?)", objects)
    cur.executemany("INSERT INTO studies(id, study_uid, state, first_received_at, last_received_at, "
                    "instance_count, byte_count) VALUES (?,?,?,?,?,?,?)", studies)
    cur.executemany("INSERT INTO study_destinations(study_id, destination, state, updated_at, "
                    "sent_at) VALUES (?,?,?,?,?)", sds)
    cur.executemany("INSERT INTO instances(id, study_id, sop_instance_uid, sop_class_uid, "
                    "series_uid, transfer_syntax, modality, object_sha256, size, received_at, "
                    "calling_ae, peer) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", insts)
    cur.executemany("INSERT INTO deliveries(instance_id, destination, state, attempts, sent_at) "
                    "VALUES (?,?,?,?,?)", deliveries)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def durable_writer(directory, parts):
    """The disk's own floor for durable ingest: one thread per part writes each object into a new
    file and fdatasyncs it (no directory fsync, no catalog), all threads at once. `parts` are
    lists of bytes objects, already in memory. Returns the wall time in seconds."""
    import threading

    errors = []

    def run(k, blobs):
        try:
            for i, data in enumerate(blobs):
                fd = os.open(os.path.join(directory, f"w{k}-{i}.dcm"),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k, part)) for k, part in enumerate(parts)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"durable writer: {errors[0]}")
    return secs

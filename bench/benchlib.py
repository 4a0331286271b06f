"""Parts for `make bench` (bench/run.py): the servers we measure against, the dirgwd we measure,
and small tools (log watching, multipart bodies, catalog pre-fill).

Built on tests/integration/harness.py (Process, Orthanc, free ports, the private network
namespace); nothing here edits it. Every process is started through harness.Process, so that
harness stops whatever is still running at exit.
"""

import glob
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
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

    def request(self, obj, timeout=120):
        """One request over the control socket, as the CLI sends it (a JSON line), without the
        CLI process: the daemon's side of `dirgw status`."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket)
            s.sendall((json.dumps(obj) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def timed_request(self, obj):
        t0 = time.monotonic()
        if not self.request(obj).get("ok"):
            raise RuntimeError(f"dirgwd refused {obj}")
        return time.monotonic() - t0

    def start_timed(self):
        """Starts dirgwd; returns the seconds until its control socket first answers status
        (polled every 5 ms, without the CLI), reconciliation of spool and catalog included."""
        env = dict(os.environ)
        env["TCP_NODELAY"] = "0"
        t0 = time.monotonic()
        self.process = harness.Process("dirgwd", [self.dirgwd, "--config", self.config_path],
                                       self.log_path, env=env)
        while True:
            self.alive_or_raise()
            try:
                if self.request({"cmd": "status"}).get("ok"):
                    return time.monotonic() - t0
            except (OSError, ValueError):
                pass
            if time.monotonic() - t0 > 600:
                raise RuntimeError("dirgwd did not answer on its control socket in 600 s")
            time.sleep(0.005)

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

# Shares of a pre-filled catalog, oldest studies first (docs/performance.md, 5): most instances
# verified by the repository and their spool files purged after retention; some verified and
# still kept; the newest waiting for a destination that is down (RETRY_WAIT, spool files present).
PREFILL_PURGED, PREFILL_KEPT = 0.94, 0.04
INSTANCES_PER_DAY = 500_000  # a large hospital: received_at spreads the rows over n / this days
TEMPLATE_BYTES = b"dirgw bench pre-filled spool object\n"


def _prefill_studies(instances, rng):
    """[(first instance index, count, category)]: studies of 200-500 instances, oldest first; the
    category by where the study starts (purged / kept / pending), the last study always pending."""
    out, i = [], 0
    while i < instances:
        count = min(rng.randrange(200, 501), instances - i)
        frac = i / instances
        out.append([i, count, "purged" if frac < PREFILL_PURGED else
                    "kept" if frac < PREFILL_PURGED + PREFILL_KEPT else "pending"])
        i += count
    out[-1][2] = "pending"
    return out


def prefill_catalog(state_dir, instances, destination="repository"):
    """Adds `instances` instances to the catalog dirgwd created in state_dir (run while dirgwd is
    stopped), as a site would have them after n / 500,000 days: studies of 200-500 instances,
    PREFILL_PURGED of them VERIFIED with their spool files purged, PREFILL_KEPT VERIFIED and
    kept, the rest RETRY_WAIT (pending deliveries, next attempt in a day). Rows are generated
    inside SQLite (recursive CTEs, one transaction per 200 studies), matching
    gateway/catalog/migrations/*.sql; the counter triggers are dropped meanwhile and the
    counters computed once at the end. Kept and pending objects get a spool file (hard links of
    one small file). Audit entries are not generated (start-up reads only the trail after its
    anchor). Returns
    {"studies", "spool_files"}."""
    rng = random.Random(instances)
    root = "1.2.826.0.1.3680043.10.1011.99"
    now = int(time.time() * 1000)
    step_ms = 86_400_000 // INSTANCES_PER_DAY
    t0 = now - instances * step_ms
    objects_dir = os.path.join(state_dir, "spool", "objects")
    db = sqlite3.connect(os.path.join(state_dir, "catalog.db"), isolation_level=None)
    db.execute("PRAGMA cache_size=-262144")  # 256 MiB: this process only, not dirgwd
    db.execute("PRAGMA synchronous=OFF")
    # The counter triggers (schemas 9 and 25) cost more than the rows: dropped while filling,
    # the counters computed once at the end as the migrations compute them, then put back.
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND "
                          "name != 'deliveries_need_study' AND tbl_name IN ('deliveries', "
                          "'studies', 'study_destinations', 'objects')").fetchall()
    for name, _ in triggers:
        db.execute(f"DROP TRIGGER {name}")
    # Spool files: hard links of one small file (creating a file per object cost 1.5 ms on this
    # disk; a link needs no new inode). Their content does not hash to their name: in the bench
    # nothing reads them (the destination is down, start-up checks that they exist).
    os.makedirs(os.path.join(state_dir, "spool", "tmp"), exist_ok=True)

    def new_template():
        path = os.path.join(state_dir, "spool", "tmp", f"bench-prefill-{secrets.token_hex(8)}")
        with open(path, "wb") as f:
            f.write(TEMPLATE_BYTES)
        return path
    template, links = new_template(), 0
    for i in range(256):
        os.makedirs(os.path.join(objects_dir, f"{i:02x}"), exist_ok=True)
    db.execute("PRAGMA journal_mode=OFF")  # no rollback journal or WAL copy while filling
    inst0 = db.execute("SELECT coalesce(max(id), 0) FROM instances").fetchone()[0]
    sid0 = db.execute("SELECT coalesce(max(id), 0) FROM studies").fetchone()[0]
    studies = _prefill_studies(instances, rng)
    files = 0
    for chunk in range(0, len(studies), 200):
        db.execute("BEGIN")
        for s, (first, count, cat) in enumerate(studies[chunk:chunk + 200], start=chunk):
            sid, i0 = sid0 + s + 1, inst0 + first  # instance ids i0+1 .. i0+count
            t = t0 + first * step_ms
            t_end = t + count * step_ms
            pending = cat == "pending"
            sent = None if pending else t_end + 600_000
            verified = None if pending else t_end + 3_600_000
            db.execute("INSERT INTO studies(id, study_uid, state, first_received_at, "
                       "last_received_at, instance_count, byte_count) VALUES (?,?,?,?,?,?,?)",
                       (sid, f"{root}.1.{1_000_000 + sid}", "STABLE", t, t_end, count, count * 530_000))
            db.execute("INSERT INTO study_destinations(study_id, destination, state, updated_at, "
                       "sent_at, verified_at) VALUES (?,?,?,?,?,?)",
                       (sid, destination, "RETRY_WAIT" if pending else "VERIFIED",
                        t_end + 600_000, sent, verified))
            if cat == "purged":
                db.execute(
                    "WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < ?1) "
                    "INSERT INTO objects(sha256, size, created_at, purged_at, verified_at) "
                    "SELECT printf('%016x%048x', ?2 + k, 0), 530000, ?3 + k * ?4, ?5, ?6 FROM c",
                    (count, i0, t, step_ms, verified + 86_400_000, verified))
                sha_sql = "printf('%016x%048x', ?2 + k, 0)"
            else:
                rows = []
                for k in range(1, count + 1):
                    sha = hashlib.sha256(f"dirgw bench object {i0 + k}".encode()).hexdigest()
                    if links == 60_000:  # ext4 allows 65,000 links to one inode
                        template, links = new_template(), 0
                    os.link(template, os.path.join(objects_dir, sha[:2], sha))
                    links += 1
                    rows.append((sha, len(TEMPLATE_BYTES), t + k * step_ms, verified, i0 + k))
                files += count
                db.execute("CREATE TEMP TABLE IF NOT EXISTS prefill_sha(id INTEGER PRIMARY KEY, "
                           "sha TEXT)")
                db.execute("DELETE FROM prefill_sha")
                db.executemany("INSERT INTO prefill_sha(id, sha) VALUES (?5, ?1)", rows)
                db.executemany("INSERT INTO objects(sha256, size, created_at, verified_at) "
                               "VALUES (?1, ?2, ?3, ?4)", [r[:4] for r in rows])
                sha_sql = "(SELECT sha FROM prefill_sha WHERE id = ?2 + k)"
            db.execute(
                "WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < ?1) "
                "INSERT INTO instances(id, study_id, sop_instance_uid, sop_class_uid, series_uid, "
                "transfer_syntax, modality, object_sha256, size, received_at, calling_ae, peer, "
                "source, patient_identity) "
                f"SELECT ?2 + k, ?5, ?6 || '.' || k, '1.2.840.10008.5.1.4.1.1.2', ?7, "
                f"'1.2.840.10008.1.2.1', 'CT', {sha_sql}, 530000, ?3 + k * ?4, 'PACS1', "
                "'127.0.0.1:40000', 'dicom:PACS1', 'P' || ?5 || '|BENCH' FROM c",
                (count, i0, t, step_ms, sid, f"{root}.3.{1_000_000 + sid}",
                 f"{root}.2.{1_000_000 + sid}"))
            db.execute(
                "WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < ?1) "
                "INSERT INTO deliveries(instance_id, destination, state, attempts, sent_at, "
                "verified_at, next_attempt_at, study_id) "
                "SELECT ?2 + k, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM c",
                (count, i0, destination, "pending" if pending else "verified",
                 3 if pending else 1, sent, verified, now + 86_400_000 if pending else 0, sid))
        db.execute("COMMIT")
    db.execute("BEGIN")
    for sql in PREFILL_COUNTERS:
        db.execute(sql)
    for _, sql in triggers:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    for path in glob.glob(os.path.join(state_dir, "spool", "tmp", "bench-prefill-*")):
        os.unlink(path)  # the links in objects/ stay
    return {"studies": len(studies), "spool_files": files}


# The per-study and per-state counters of schemas 9 and 25, computed from the rows (as the
# migrations' own UPDATEs do) after a pre-fill without triggers.
PREFILL_COUNTERS = [
    "UPDATE study_destinations SET "
    "open_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = study_destinations.study_id"
    " AND d.destination = study_destinations.destination AND d.state IN ('pending', 'sending')), "
    "sending_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = "
    "study_destinations.study_id AND d.destination = study_destinations.destination "
    "AND d.state = 'sending'), "
    "failed_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = "
    "study_destinations.study_id AND d.destination = study_destinations.destination "
    "AND d.state = 'failed'), "
    "live_count = (SELECT count(*) FROM deliveries d WHERE d.study_id = study_destinations.study_id"
    " AND d.destination = study_destinations.destination AND d.state != 'superseded'), "
    "open_bytes = (SELECT coalesce(sum(i.size), 0) FROM deliveries d JOIN instances i "
    "ON i.id = d.instance_id WHERE d.study_id = study_destinations.study_id "
    "AND d.destination = study_destinations.destination AND d.state IN ('pending', 'sending'))",
    "DELETE FROM delivery_counts",
    "INSERT INTO delivery_counts(destination, state, deliveries) "
    "SELECT destination, state, count(*) FROM deliveries GROUP BY destination, state",
    "DELETE FROM study_destination_counts",
    "INSERT INTO study_destination_counts(destination, state, studies, deliveries, open, "
    "open_bytes) SELECT destination, state, count(*), sum(live_count), sum(open_count), "
    "sum(open_bytes) FROM study_destinations GROUP BY destination, state",
    "DELETE FROM study_counts",
    "INSERT INTO study_counts(state, studies, instances, bytes) "
    "SELECT state, count(*), sum(instance_count), sum(byte_count) FROM studies GROUP BY state",
    "DELETE FROM object_counts",
    "INSERT INTO object_counts(kind, objects, bytes) SELECT CASE WHEN purged_at IS NOT NULL "
    "THEN 'purged' WHEN verified_at IS NOT NULL THEN 'verified' ELSE 'held' END AS k, count(*), "
    "sum(size) FROM objects GROUP BY k",
]


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

#!/usr/bin/env python3
"""The packages, installed for real on this machine (docs/packaging.md).

Debian package: dpkg -i; every file where it belongs with its owner and mode, the dirgw
system user, the state directory, the conffile, the enabled unit, man pages that describe
every command and option of --help; the shipped configuration passes `dirgw config check`;
the packaged dirgwd, run by hand as user dirgw (no systemd here), stores studies from
storescu in /var/lib/dirgw. Then an upgrade to a higher version with a locally modified
conffile: no prompt, the modification kept, the catalog's data still there, and the upgraded
daemon migrates a catalog of the previous schema. Then dpkg --remove keeps the data and the
configuration, and dpkg --purge removes them, the user and the unit's enablement.
RPM: rpm -qlp lists exactly the expected files, the scriptlets and the %config(noreplace)
conffile are there. lintian (.deb) and rpmlint (.rpm, packaging/rpm/rpmlint.toml) report no error.

Packages: from $DIRGW_PACKAGE_DIR when set (a .deb, and an .rpm if there is one, built from
this tree), else built by packaging/build-packages.sh into build-pkg-test/ under the source
tree, a release build kept between runs so that a rerun only rebuilds what changed (the
--build-dir that ctest passes is the sanitizer build: it must not be packaged). The upgrade
package is the same .deb repacked with a higher version.

Needs root (dpkg -i on this machine): skipped, with a message, when not root or when dirgw
is already on the machine (package, user, /etc/dirgw or /var/lib/dirgw), which this test
would otherwise destroy. Whatever happens, the package is purged at the end."""

import argparse
import glob
import grp
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

SOURCE_DIR = harness.SOURCE_DIR
PACKAGE_BUILD_DIR = os.path.join(SOURCE_DIR, "build-pkg-test")
USER = "dirgw"
CONFFILE = "/etc/dirgw/dirgw.yaml"
STATE_DIR = "/var/lib/dirgw"
WANTS_LINK = "/etc/systemd/system/multi-user.target.wants/dirgw.service"
MASK_LINK = "/etc/systemd/system/dirgw.service"

# Every file of the .deb (directories aside): (path, mode, owner, group).
DEB_FILES = [
    ("/usr/sbin/dirgwd", 0o755, "root", "root"),
    ("/usr/bin/dirgw", 0o755, "root", "root"),
    ("/etc/dirgw/dirgw.yaml", 0o644, "root", "root"),
    ("/lib/systemd/system/dirgw.service", 0o644, "root", "root"),
    ("/usr/lib/sysusers.d/dirgw.conf", 0o644, "root", "root"),
    ("/usr/lib/tmpfiles.d/dirgw.conf", 0o644, "root", "root"),
    ("/usr/share/man/man8/dirgwd.8.gz", 0o644, "root", "root"),
    ("/usr/share/man/man1/dirgw.1.gz", 0o644, "root", "root"),
    ("/usr/share/doc/dirgw/README.md", 0o644, "root", "root"),
    ("/usr/share/doc/dirgw/packaging.md", 0o644, "root", "root"),
    ("/usr/share/doc/dirgw/changelog.Debian.gz", 0o644, "root", "root"),
    ("/usr/share/doc/dirgw/copyright", 0o644, "root", "root"),
    ("/usr/share/dirgw/prometheus/dirgw-alerts.yml", 0o644, "root", "root"),
    ("/usr/share/dirgw/grafana/dirgw-dashboard.json", 0o644, "root", "root"),
]
# What the maintainer scripts make.
DEB_MADE = [
    ("/etc/dirgw", 0o755, "root", "root"),
    (STATE_DIR, 0o750, USER, USER),
    (STATE_DIR + "/keys", 0o750, USER, USER),
    (STATE_DIR + "/keys/deid.key", 0o600, USER, USER),
]
# Every path of the .rpm, directories included.
RPM_PATHS = {
    "/usr/sbin/dirgwd", "/usr/bin/dirgw", "/etc/dirgw", "/etc/dirgw/dirgw.yaml",
    "/usr/lib/systemd/system/dirgw.service", "/usr/lib/sysusers.d/dirgw.conf",
    "/usr/lib/tmpfiles.d/dirgw.conf", "/usr/share/man/man8/dirgwd.8.gz",
    "/usr/share/man/man1/dirgw.1.gz", "/usr/share/doc/dirgw", "/usr/share/doc/dirgw/README.md",
    "/usr/share/doc/dirgw/packaging.md", STATE_DIR,
    "/usr/share/licenses/dirgw", "/usr/share/licenses/dirgw/LICENSE",
    "/usr/share/dirgw", "/usr/share/dirgw/prometheus", "/usr/share/dirgw/grafana",
    "/usr/share/dirgw/prometheus/dirgw-alerts.yml", "/usr/share/dirgw/grafana/dirgw-dashboard.json",
}


class Failures(list):
    def check(self, ok, what):
        if ok:
            log(f"ok: {what}")
        else:
            log(f"FAIL: {what}")
            self.append(what)
        return ok


def run(args, check=True, timeout=600, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def package_status():
    p = run(["dpkg-query", "-W", "-f=${Status}", "dirgw"], check=False)
    return p.stdout.strip() if p.returncode == 0 else "unknown"


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def dirgw_on_machine():
    """What of dirgw is already here (the test must not destroy an installation)."""
    found = []
    st = package_status()
    if st not in ("unknown", "unknown ok not-installed", "purge ok not-installed"):
        found.append(f"package dirgw ({st})")
    if user_exists(USER):
        found.append("user dirgw")
    if group_exists(USER):
        found.append("group dirgw")
    for p in ("/etc/dirgw", STATE_DIR):
        if os.path.lexists(p):
            found.append(p)
    return found


def newest_deb(directory):
    debs = sorted(glob.glob(os.path.join(directory, "dirgw_*.deb")))
    if not debs:
        raise RuntimeError(f"no dirgw_*.deb in {directory}")
    best = debs[0]
    for d in debs[1:]:
        if run(["dpkg", "--compare-versions", deb_field(d, "Version"), "gt",
                deb_field(best, "Version")], check=False).returncode == 0:
            best = d
    return best


def deb_field(deb, field):
    return run(["dpkg-deb", "-f", deb, field]).stdout.strip()


def get_packages():
    """(deb, rpm or None, a build tree with tools/synth or None, seconds spent building)."""
    given = os.environ.get("DIRGW_PACKAGE_DIR")
    if given:
        rpms = sorted(glob.glob(os.path.join(given, "dirgw-*.rpm")))
        return newest_deb(given), (rpms[-1] if rpms else None), None, 0.0
    t0 = time.time()
    log(f"building packages in {PACKAGE_BUILD_DIR} (packaging/build-packages.sh)")
    # Not the jobserver of the `make test` that may have started ctest: its descriptors are
    # not ours (build-packages.sh passes its own -j).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # Under ctest the build shares the machine with other tests (tests/integration/CMakeLists.txt).
    if os.environ.get("DIRGW_PACKAGE_JOBS"):
        env["JOBS"] = os.environ["DIRGW_PACKAGE_JOBS"]
    # Release rather than the default RelWithDebInfo: the packaged binaries are stripped either
    # way, and the debug information only the build tree would keep costs 30-45 % of the
    # compile, the longest part of `make test`.
    p = subprocess.run(["bash", os.path.join(SOURCE_DIR, "packaging/build-packages.sh"),
                        PACKAGE_BUILD_DIR, "--build-type", "Release"], capture_output=True,
                       text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=1800)
    spent = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"build-packages.sh failed ({p.returncode}):\n{p.stdout[-6000:]}\n"
                           f"{p.stderr[-6000:]}")
    log(f"packages built in {spent:.0f}s")
    out = os.path.join(PACKAGE_BUILD_DIR, "packages")
    rpms = sorted(glob.glob(os.path.join(out, "dirgw-*.rpm")))
    return newest_deb(out), (rpms[-1] if rpms else None), PACKAGE_BUILD_DIR, spent


def repack_with_higher_version(deb, work):
    """The same package with a higher version: what an upgrade to the next release does to
    the conffile (unchanged by the package, changed locally), the scripts and the data."""
    root = os.path.join(work, "repack")
    run(["dpkg-deb", "-R", deb, root])
    control = os.path.join(root, "DEBIAN", "control")
    with open(control) as f:
        text = f.read()
    old = re.search(r"^Version: (.+)$", text, re.M).group(1)
    new = old + "+pkgtest1"
    with open(control, "w") as f:
        f.write(re.sub(r"^Version: .+$", f"Version: {new}", text, flags=re.M))
    out = os.path.join(work, f"dirgw_{new}_upgrade.deb")
    run(["dpkg-deb", "--root-owner-group", "-b", root, out])
    return out, old, new


def man_text(path):
    """A man page's source, with the roff escapes that matter here undone."""
    src = run(["zcat", path]).stdout
    return re.sub(r"\\f[BIRP]", "", src.replace("\\-", "-"))


def help_commands(help_text):
    """The commands of a --help text's 'Commands:' section ('status', 'config check', ...)."""
    names, inside = [], False
    for line in help_text.splitlines():
        if line.strip() == "Commands:":
            inside = True
            continue
        if inside:
            if not line.strip():
                continue
            if not line.startswith(" "):
                break
            m = re.match(r"^  ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)\b", line)
            if m:
                names.append(m.group(1))
    return names


def check_man_pages(failures):
    for exe, page in (("/usr/sbin/dirgwd", "/usr/share/man/man8/dirgwd.8.gz"),
                      ("/usr/bin/dirgw", "/usr/share/man/man1/dirgw.1.gz")):
        h = run([exe, "--help"], check=False)
        failures.check(h.returncode == 0 and "Usage:" in h.stdout, f"{exe} --help works")
        text = man_text(page)
        options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", h.stdout)))
        missing = [o for o in options if o not in text]
        failures.check(not missing, f"{page} describes every option of --help {options} "
                                    f"(missing: {missing})")
        commands = help_commands(h.stdout)
        missing = [c for c in commands if c not in text]
        failures.check(not missing, f"{page} describes every command of --help {commands} "
                                    f"(missing: {missing})")
        w = run(["man", "--warnings", "-l", page], check=False,
                env=dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat"))
        failures.check(w.returncode == 0 and not w.stderr.strip(),
                       f"{page} renders without warnings {w.stderr.strip()[:300]!r}")


def check_owner_mode(failures, path, mode, owner, group):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        failures.check(False, f"{path} exists")
        return
    got = (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
           grp.getgrgid(st.st_gid).gr_name)
    failures.check(got == (mode, owner, group),
                   f"{path} is {oct(mode)} {owner}:{group} (got {oct(got[0])} {got[1]}:{got[2]})")


class Daemon:
    """The packaged /usr/sbin/dirgwd, started by hand as user dirgw (as the unit would)."""

    def __init__(self, work, name, state_dir, repository_port):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.socket = os.path.join(self.dir, "control.sock")
        self.port = harness.free_port()
        self.config = os.path.join(self.dir, "dirgw.yaml")
        with open(self.config, "w") as f:
            f.write(f"""facility: {{ name: "Package test", id: PKGTEST }}
state_dir: {state_dir}
control_socket: {self.socket}
log: {{ level: info }}
ingest:
  dicom:
    ae_title: DIRGW
    bind: 127.0.0.1
    port: {self.port}
    allowed_callers: [PACS1]
policy: {{ stable_age: 1s }}
retention: {{ spool_floor: 64MiB }}
destinations:
  - name: repository
    type: stow-rs
    url: http://127.0.0.1:{repository_port}/dicom-web
    timeouts: {{ connect: 1s, request: 10s }}
    retry: {{ initial: 1s, max: 5s }}
""")
        uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
        for p in (self.dir, self.config):
            os.chown(p, uid, gid)
        self.log_path = os.path.join(self.dir, "dirgwd.log")
        self.process = None

    def start(self):
        self.process = harness.Process(
            "dirgwd", ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
                       "/usr/sbin/dirgwd", "--config", self.config], self.log_path)

        def up():
            if not self.process.alive():
                raise RuntimeError("dirgwd exited:\n" + self.process.log_text()[-4000:])
            return self.status(check=False)

        harness.wait_for("the packaged dirgwd to answer", up, 60)
        return self

    def cli(self, *args):
        return run(["/usr/bin/dirgw", "--socket", self.socket] + list(args), check=False)

    def status(self, check=True):
        p = self.cli("status", "--json")
        if p.returncode != 0:
            if check:
                raise RuntimeError(f"dirgw status failed ({p.returncode}): {p.stderr}")
            return None
        return json.loads(p.stdout)

    def stop(self):
        rc = self.process.stop(signal.SIGTERM) if self.process else None
        self.process = None
        return rc


def migrations():
    """[(version, sql)] of the catalog's migrations in this source tree."""
    out = []
    for path in glob.glob(os.path.join(SOURCE_DIR, "gateway/catalog/migrations/*.sql")):
        m = re.match(r"^(\d+)_", os.path.basename(path))
        if m:
            with open(path) as f:
                out.append((int(m.group(1)), f.read()))
    return sorted(out)


def old_schema_catalog(state_dir):
    """A catalog as the previous schema left it (every migration but the last), owned by
    dirgw. Returns (its version, the latest version)."""
    all_migrations = migrations()
    latest = all_migrations[-1][0]
    os.makedirs(state_dir)
    db = sqlite3.connect(os.path.join(state_dir, "catalog.db"))
    version = 0
    for v, sql in all_migrations[:-1]:
        db.executescript(sql)
        db.execute(f"PRAGMA user_version = {v}")
        version = v
    db.commit()
    db.close()
    uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
    for root, dirs, files in os.walk(state_dir):
        for n in [root] + [os.path.join(root, x) for x in files]:
            os.chown(n, uid, gid)
    return version, latest


def check_rpm(rpm, failures):
    if not shutil.which("rpm"):
        failures.check(False, "rpm is installed to inspect the .rpm (build-packages.sh installs it)")
        return
    log(f"--- RPM {os.path.basename(rpm)}")
    q = run(["rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}", rpm]).stdout
    log(f"rpm: {q}")
    paths = set(run(["rpm", "-qlp", rpm]).stdout.split())
    failures.check(paths == RPM_PATHS, f"rpm -qlp lists exactly the expected paths "
                                       f"(extra: {sorted(paths - RPM_PATHS)}, "
                                       f"missing: {sorted(RPM_PATHS - paths)})")
    flags = run(["rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm]).stdout
    conf = {line.split()[0]: line.split()[1] for line in flags.splitlines()
            if len(line.split()) == 2 and "c" in line.split()[1]}
    failures.check(set(conf) == {CONFFILE} and "n" in conf.get(CONFFILE, ""),
                   f"the RPM's only config file is {CONFFILE}, %config(noreplace) (got {conf})")
    listing = run(["rpm", "-qlvp", rpm]).stdout
    state = [ln for ln in listing.splitlines() if ln.endswith(" " + STATE_DIR)]
    failures.check(bool(state) and state[0].split()[0] == "drwxr-x---"
                   and state[0].split()[2:4] == [USER, USER],
                   f"the RPM owns {STATE_DIR} as 0750 dirgw:dirgw ({state})")
    requires = run(["rpm", "-qp", "--requires", rpm]).stdout
    failures.check("libpugixml.so.1()(64bit)" in requires,
                   "the RPM requires pugixml, the STOW-RS answers' XML reader, by its soname")
    scripts = run(["rpm", "-qp", "--scripts", rpm]).stdout
    for needle in ("systemd-sysusers", "useradd", "systemd-tmpfiles --create", "preset",
                   "disable --now", "try-restart"):
        failures.check(needle in scripts, f"the RPM's scriptlets use '{needle}'")
    # rpmlint with the project's settings (intended findings filtered, each with its reason):
    # no error. DEB_PACKAGES installs it; where it is missing the check fails, not skips.
    lint = run(["rpmlint", "-c", os.path.join(SOURCE_DIR, "packaging/rpm/rpmlint.toml"), rpm],
               check=False)
    findings = [ln for ln in lint.stdout.splitlines() if ln.startswith("dirgw")]
    log("rpmlint:\n" + "\n".join(findings + lint.stdout.splitlines()[-1:]))
    failures.check(lint.returncode == 0 and not any(": E: " in ln for ln in findings),
                   f"rpmlint reports no error (exit {lint.returncode})")


def test_deb(deb, synth_build_dir, work, failures):
    log(f"--- Debian package {os.path.basename(deb)}")
    depends = deb_field(deb, "Depends")
    failures.check("adduser" in depends and "libc6" in depends and "libdcmtk" in depends,
                   f"Depends: computed shared-library dependencies and adduser ({depends})")
    failures.check("libpugixml1v5" in depends,
                   f"Depends: pugixml, the STOW-RS answers' XML reader ({depends})")
    failures.check("libasan" not in depends and "libubsan" not in depends,
                   "the packaged programs are not sanitizer builds")
    # lintian, Debian's package checker: no error (warnings are printed).
    lint = run(["lintian", "--fail-on", "error", "--tag-display-limit", "0", deb], check=False)
    log("lintian:\n" + lint.stdout.strip())
    failures.check(lint.returncode == 0 and not any(ln.startswith("E: ")
                                                    for ln in lint.stdout.splitlines()),
                   f"lintian reports no error (exit {lint.returncode})")
    listed = set()
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        if not line.startswith("d"):
            listed.add(line.split()[-1].lstrip("."))
    expected = {p for p, *_ in DEB_FILES}
    failures.check(listed == expected, f"the .deb holds exactly the expected files "
                                       f"(extra: {sorted(listed - expected)}, "
                                       f"missing: {sorted(expected - listed)})")

    # --- Install.
    p = run(["dpkg", "-i", deb], check=False)
    log(p.stdout + p.stderr)
    if not failures.check(p.returncode == 0, "dpkg -i installs the package"):
        return
    failures.check(package_status() == "install ok installed", "dpkg says installed")
    for path, mode, owner, group in DEB_FILES + DEB_MADE:
        check_owner_mode(failures, path, mode, owner, group)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "dirgw"]).stdout.split()
    failures.check(CONFFILE in conffiles, f"{CONFFILE} is a conffile ({conffiles})")
    u = pwd.getpwnam(USER)
    failures.check(u.pw_uid < 1000 and u.pw_dir == STATE_DIR and u.pw_shell.endswith("nologin")
                   and grp.getgrgid(u.pw_gid).gr_name == USER,
                   f"user dirgw: system uid, home {STATE_DIR}, no login, group dirgw ({u})")
    failures.check(os.path.realpath(WANTS_LINK) ==
                   os.path.realpath("/lib/systemd/system/dirgw.service"),
                   "dirgw.service is enabled (multi-user.target.wants)")
    v = run(["/usr/sbin/dirgwd", "--version"], check=False)
    failures.check(v.returncode == 0 and v.stdout.startswith("dirgwd "),
                   f"dirgwd --version: {v.stdout.strip()}")
    check_man_pages(failures)
    c = run(["/usr/bin/dirgw", "config", "check", CONFFILE], check=False)
    failures.check(c.returncode == 0, f"dirgw config check {CONFFILE}: {c.stdout}{c.stderr}")
    c = run(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
             "/usr/sbin/dirgwd", "--check", "--config", CONFFILE], check=False)
    failures.check(c.returncode == 0, f"dirgwd --check as user dirgw (the unit's ExecStartPre): "
                                      f"{c.stdout}{c.stderr}")
    if shutil.which("systemd-analyze"):
        a = run(["systemd-analyze", "verify", "/lib/systemd/system/dirgw.service"], check=False)
        failures.check(a.returncode == 0, f"systemd-analyze verify dirgw.service {a.stderr[-500:]}")

    # --- A catalog with data in it, made by the packaged daemon as user dirgw.
    repository_port = harness.free_port()  # nothing listens: the studies stay queued
    gw = Daemon(work, "gateway", STATE_DIR, repository_port).start()
    out = os.path.join(work, "studies")
    ct_uid, ct = harness.synth(synth_build_dir, os.path.join(out, "ct"), "CT", 5, seed=51,
                               patient_index=5)
    cr_uid, cr = harness.synth(synth_build_dir, os.path.join(out, "cr"), "CR", 2, seed=52,
                               patient_index=6)
    rc, text = harness.storescu(gw.port, [os.path.join(out, "ct"), os.path.join(out, "cr")])
    failures.check(rc == 0, f"storescu sent 7 instances to the packaged daemon ({text[-300:]})")
    st = harness.wait_for("7 instances in the catalog",
                          lambda: (s := gw.status()) and s["catalog"]["instances"] >= 7 and s,
                          60, 0.3)
    schema_before = st["catalog"]["schema"]
    sock = os.stat(gw.socket)
    failures.check(stat.S_IMODE(sock.st_mode) == 0o660 and
                   grp.getgrgid(sock.st_gid).gr_name == USER,
                   "the control socket is 0660, group dirgw (the CLI's way in for the group)")
    failures.check(gw.stop() == 0, "dirgwd stops cleanly on SIGTERM")
    catalog = os.path.join(STATE_DIR, "catalog.db")
    check_owner_mode(failures, catalog, stat.S_IMODE(os.stat(catalog).st_mode), USER, USER)
    failures.check(os.path.isdir(os.path.join(STATE_DIR, "spool")), "the spool is in the state dir")

    # --- Upgrade to a higher version, with the conffile changed locally.
    with open(CONFFILE, "a") as f:
        f.write("# changed locally by test_package.py\n")
    with open(CONFFILE) as f:
        local = f.read()
    upgrade, old_version, new_version = repack_with_higher_version(deb, work)
    uid_before = pwd.getpwnam(USER).pw_uid
    with open(STATE_DIR + "/keys/deid.key", "rb") as f:
        deid_key_before = f.read()
    failures.check(len(deid_key_before) == 32, "the de-identification key made at install: 32 bytes")
    p = run(["dpkg", "-i", upgrade], check=False, timeout=300)
    log(p.stdout + p.stderr)
    failures.check(p.returncode == 0, f"dpkg -i upgrades {old_version} to {new_version}, "
                                      f"without a prompt (stdin closed)")
    installed = run(["dpkg-query", "-W", "-f=${Version}", "dirgw"], check=False).stdout
    failures.check(installed == new_version, f"version {new_version} installed ({installed})")
    with open(CONFFILE) as f:
        failures.check(f.read() == local, "the locally changed conffile is kept as it was")
    leftovers = [p for p in glob.glob(CONFFILE + ".*")]
    failures.check(not leftovers, f"no .dpkg-dist/.dpkg-old beside it ({leftovers})")
    failures.check("Configuration file" not in p.stdout + p.stderr, "dpkg asked nothing")
    failures.check(pwd.getpwnam(USER).pw_uid == uid_before, "the dirgw user is the same")
    with open(STATE_DIR + "/keys/deid.key", "rb") as f:
        failures.check(f.read() == deid_key_before, "an upgrade keeps the de-identification key")
    check_owner_mode(failures, STATE_DIR, 0o750, USER, USER)

    gw = Daemon(work, "gateway-upgraded", STATE_DIR, repository_port).start()
    st = gw.status()
    failures.check(st["catalog"]["instances"] == 7 and st["catalog"]["studies"] == 2,
                   f"after the upgrade the catalog still holds 2 studies, 7 instances "
                   f"({st['catalog']})")
    failures.check(st["catalog"]["schema"] >= schema_before,
                   f"catalog schema {st['catalog']['schema']} (was {schema_before})")
    listed = gw.cli("studies", "--json")
    uids = {s["study_uid"] for s in json.loads(listed.stdout)["studies"]} if listed.returncode == 0 else set()
    failures.check(uids == {ct_uid, cr_uid}, "dirgw studies lists the two studies sent before")
    failures.check(gw.stop() == 0, "the upgraded dirgwd stops cleanly")

    old_state = os.path.join(work, "old-schema-state")
    old, latest = old_schema_catalog(old_state)
    gw = Daemon(work, "gateway-migrate", old_state, repository_port).start()
    schema = gw.status()["catalog"]["schema"]
    failures.check(schema == latest, f"the upgraded dirgwd migrates a schema-{old} catalog to "
                                     f"{latest} when it opens it (got {schema})")
    gw.stop()
    shutil.rmtree(old_state, ignore_errors=True)

    # --- Remove: data and configuration stay.
    p = run(["dpkg", "--remove", "dirgw"], check=False)
    log(p.stdout + p.stderr)
    failures.check(p.returncode == 0, "dpkg --remove")
    failures.check(package_status() == "deinstall ok config-files",
                   f"dpkg keeps the configuration ({package_status()})")
    failures.check(not os.path.exists("/usr/sbin/dirgwd") and not os.path.exists("/usr/bin/dirgw"),
                   "the programs are gone")
    failures.check(os.path.isfile(catalog), "remove keeps the catalog")
    with open(CONFFILE) as f:
        failures.check(f.read() == local, "remove keeps the configuration")
    failures.check(user_exists(USER), "remove keeps the user")
    failures.check(os.path.realpath(MASK_LINK) == "/dev/null",
                   "the removed unit is masked until the package comes back")

    # --- Purge: everything goes.
    p = run(["dpkg", "--purge", "dirgw"], check=False)
    log(p.stdout + p.stderr)
    failures.check(p.returncode == 0, "dpkg --purge")
    failures.check(package_status() in ("unknown", "unknown ok not-installed",
                                        "purge ok not-installed"), "dpkg forgets the package")
    for path in (STATE_DIR, "/etc/dirgw", WANTS_LINK, MASK_LINK):
        failures.check(not os.path.lexists(path), f"purge removes {path}")
    failures.check(not user_exists(USER) and not group_exists(USER),
                   "purge removes the user and group dirgw")
    left = [p for p, *_ in DEB_FILES if os.path.lexists(p)]
    failures.check(not left, f"no file of the package is left ({left})")
    dsh = glob.glob("/var/lib/systemd/deb-systemd-helper-*/**/dirgw*", recursive=True)
    failures.check(not dsh, f"no deb-systemd-helper state is left ({dsh})")


def cleanup():
    """Leaves the machine as it was, whatever happened above."""
    if package_status() not in ("unknown", "unknown ok not-installed", "purge ok not-installed"):
        log("cleanup: purging dirgw")
        run(["dpkg", "--purge", "dirgw"], check=False)
    if user_exists(USER):
        run(["userdel", USER], check=False)
    if group_exists(USER):
        run(["groupdel", USER], check=False)
    for path in (STATE_DIR, "/etc/dirgw"):
        shutil.rmtree(path, ignore_errors=True)
    for link in (WANTS_LINK, MASK_LINK):
        if os.path.islink(link):
            os.unlink(link)
    for f in glob.glob("/var/lib/systemd/deb-systemd-helper-*/**/dirgw*", recursive=True):
        os.unlink(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True, help="a build tree with tools/synth")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIPPED: test_package installs the package on this machine (dpkg -i) and needs "
              "root; run it as root on a machine you can throw away (CI does).")
        return 0
    if not shutil.which("dpkg"):
        print("SKIPPED: no dpkg on this machine")
        return 0
    present = dirgw_on_machine()
    if present:
        print(f"SKIPPED: dirgw is already on this machine ({', '.join(present)}); this test "
              "installs and purges the package and would destroy it.")
        return 0

    started = time.time()
    deb, rpm, pkg_build, build_seconds = get_packages()
    synth_dir = pkg_build if pkg_build and os.path.exists(
        os.path.join(pkg_build, "tools/synth/dirgw-synth")) else args.build_dir
    work = harness.tempdir("dirgw-pkgtest-")
    os.chmod(work, 0o755)  # the daemon runs as dirgw and reads its configuration below
    failures = Failures()
    try:
        if rpm:
            check_rpm(rpm, failures)
        else:
            log("no .rpm next to the .deb: RPM checks skipped")
        test_deb(deb, synth_dir, work, failures)
    except Exception as e:  # a step that could not run at all
        failures.append(f"{type(e).__name__}: {e}")
        log(f"FAIL: {type(e).__name__}: {e}")
    finally:
        harness._stop_all()
        cleanup()
    present = dirgw_on_machine()
    failures.check(not present, f"the machine is left as it was ({present})")

    print(f"package test: {len(failures)} failures; packages built in {build_seconds:.0f}s, "
          f"whole test {time.time() - started:.0f}s")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

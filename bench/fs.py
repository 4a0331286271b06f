"""The ingest cases on a journalled ext4 (bench/run.py --cases ingest_ext4).

The bench's own disk (/var/tmp) is an ext4 without a journal, which flatters every flush;
production disks have one. So the bench makes a file system that has: a sparse image file beside
its other files, `mkfs.ext4 -O has_journal` (inode tables and journal written at once, so that
no lazy initialisation runs in the background during the measurements), loop-mounted with the
default data=ordered, and runs the same ingest cases (storescp, the disk floor writer, dirgwd)
with their work directories there. The image is unmounted and removed at the end, also when a
case fails or the run is interrupted (atexit). Needs root (mount).
"""

import atexit
import os
import shutil
import subprocess
import tempfile

from benchlib import log

IMAGE_GB = 32  # sparse: only what the cases write takes space


class Ext4Image:
    def __init__(self, parent, size_gb=IMAGE_GB):
        self.dir = tempfile.mkdtemp(prefix="ext4-", dir=parent)
        self.image = os.path.join(self.dir, "ext4.img")
        self.mount_point = os.path.join(self.dir, "mnt")
        self.size_gb = size_gb
        self.mounted = False

    @staticmethod
    def missing():
        if os.geteuid() != 0:
            return "root"
        return ", ".join(t for t in ("mkfs.ext4", "mount", "umount") if not shutil.which(t))

    def __enter__(self):
        atexit.register(self.remove)
        try:
            with open(self.image, "wb") as f:
                f.truncate(self.size_gb << 30)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "has_journal", "-i", "262144",
                            "-E", "lazy_itable_init=0,lazy_journal_init=0", self.image],
                           check=True, capture_output=True)
            os.makedirs(self.mount_point)
            subprocess.run(["mount", "-o", "loop,data=ordered", self.image, self.mount_point],
                           check=True, capture_output=True)
            self.mounted = True
            os.sync()
        except subprocess.CalledProcessError as e:
            self.remove()
            raise RuntimeError(f"{e.cmd[0]}: {e.stderr.decode(errors='replace').strip()}") from e
        except Exception:
            self.remove()
            raise
        log(f"ext4 with journal: {self.size_gb} GB image loop-mounted on {self.mount_point} "
            f"({self.options()})")
        return self.mount_point

    def options(self):
        p = subprocess.run(["findmnt", "-n", "-o", "SOURCE,OPTIONS", self.mount_point],
                           capture_output=True, text=True)
        return p.stdout.strip()

    def __exit__(self, *exc):
        self.remove()
        return False

    def remove(self):
        if self.mounted:
            for args in (["umount", self.mount_point], ["umount", "-l", self.mount_point]):
                if subprocess.run(args, capture_output=True).returncode == 0:
                    break
            self.mounted = False
        shutil.rmtree(self.dir, ignore_errors=True)


def case_ingest_ext4(bench):
    """bench.case_ingest() again, with every work directory on a journalled ext4; the groups of
    the table say which file system."""
    missing = Ext4Image.missing()
    if missing:
        bench.res.note(f"the journalled ext4 ingest case needs {missing}: skipped")
        return
    saved = (bench.work, bench.fs_label, bench.min_free_gb)
    with Ext4Image(bench.work) as mnt:
        bench.work, bench.fs_label, bench.min_free_gb = mnt, ", ext4 with journal (loop)", 6
        try:
            bench.case_ingest()
        finally:
            bench.empty_trash()
            bench.work, bench.fs_label, bench.min_free_gb = saved

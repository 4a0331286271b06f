#!/usr/bin/env python3
"""A FUSE file system that models the page cache, for the power-cut test (docs/durability.md).

Everything lives in memory in two versions: what a program sees now, and what would be on the
disk after a power cut. A change becomes durable only the way POSIX promises, modelled on ext4
without a journal (or ext2), the worst legal case:

- a file's data and size are durable when the file is fsync'd or fdatasync'd;
- a directory's names (creates, renames, hard links, unlinks, mkdir, rmdir) are durable when
  that directory is fsync'd; a renamed file whose data was synced but whose directory was
  not goes back to its old name (or vanishes, if the old name was never durable either);
- a new file or directory whose parent directory was not synced vanishes, whatever was synced
  inside it.

Reads see the current (pending) state. Shared mmap works (no direct_io), so SQLite's -shm file
works; it is never fsync'd, so it does not survive a cut, and SQLite rebuilds it.

A cut is driven over a Unix control socket, one command per connection:
  freeze <dir> [torn <seed>]  -> blocks every file operation from now on and writes what would
                                 survive into <dir> (a real directory tree); "ok" when written.
                                 With "torn", every pending page write and every pending name
                                 change in a directory survives or not at random (also legal:
                                 the kernel may have written back any of it before the cut).
  release                     -> the blocked and all later operations fail with EIO, so that
                                 the killed program's threads and the unmount can finish.
  stats                       -> counters and the mount's generation (1, 2, ...) as JSON.
  quit                        -> as release, and no new mount after the next unmount.
The test unmounts (umount) after release; the same process then mounts a fresh file system
loaded from <dir> on the same mountpoint (a new mount: the kernel keeps no cached page of the
old one).

Usage: pagecache_fs.py IMAGE_DIR MOUNTPOINT CONTROL_SOCKET
  IMAGE_DIR: the durable state to start from (loaded into memory; never written to).
"""

import errno
import json
import os
import random
import socket
import stat
import sys
import threading
import time

try:
    import fusepy
except ImportError:  # a pyenv or venv interpreter: use Debian's python3-fusepy
    sys.path.append("/usr/lib/python3/dist-packages")
    import fusepy

PAGE = 4096


class Node:
    __slots__ = ("is_dir", "mode", "uid", "gid", "atime", "mtime", "ctime", "data", "durable",
                 "entries", "durable_entries", "nlink")

    def __init__(self, is_dir, mode, data=b"", entries=None):
        now = time.time()
        self.is_dir = is_dir
        self.mode = mode & 0o7777
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.atime = self.mtime = self.ctime = now
        self.nlink = 1  # names of a file now (hard links); directories count their own
        if is_dir:
            self.entries = dict(entries or {})
            self.durable_entries = dict(self.entries)
            self.data = self.durable = None
        else:
            self.data = bytearray(data)
            self.durable = bytes(data)
            self.entries = self.durable_entries = None


def load_image(path, inodes=None):
    """A real directory tree -> a Node tree, all of it durable; hard links stay one Node."""
    inodes = {} if inodes is None else inodes
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        entries = {name: load_image(os.path.join(path, name), inodes) for name in os.listdir(path)}
        return Node(True, st.st_mode, entries=entries)
    node = inodes.get(st.st_ino)
    if node is not None:
        node.nlink += 1
        return node
    with open(path, "rb") as f:
        node = inodes[st.st_ino] = Node(False, st.st_mode, data=f.read())
    return node


def surviving_data(node, rng):
    """What of a file's data a cut leaves: the synced data, or with rng (torn), each page that
    differs from it taken from the pending data or not, and either size."""
    if rng is None or node.durable == node.data:
        return node.durable
    size = rng.choice((len(node.durable), len(node.data)))
    out = bytearray(node.durable[:size].ljust(size, b"\0"))
    for start in range(0, size, PAGE):
        pending = node.data[start:start + PAGE]
        if pending != out[start:start + PAGE] and rng.random() < 0.5:
            out[start:start + len(pending)] = pending[:size - start]
    return bytes(out)


def surviving_entries(node, rng):
    if rng is None:
        return node.durable_entries
    out = dict(node.durable_entries)
    for name in set(node.entries) | set(node.durable_entries):
        now, then = node.entries.get(name), node.durable_entries.get(name)
        if now is not then and rng.random() < 0.5:
            if now is None:
                out.pop(name, None)
            else:
                out[name] = now
    return out


def write_image(node, path, rng, written=None):
    """Writes what survives a cut of the tree under node into the real directory path. A file
    with several surviving names (hard links, both names of a torn rename) is written once and
    linked."""
    written = {} if written is None else written
    if node.is_dir:
        os.mkdir(path, node.mode | 0o700)
        for name, child in sorted(surviving_entries(node, rng).items()):
            write_image(child, os.path.join(path, name), rng, written)
    elif id(node) in written:
        os.link(written[id(node)], path)
    else:
        written[id(node)] = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, node.mode | 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(surviving_data(node, rng))


class PageCacheFs(fusepy.Operations):
    # Not implemented on purpose: without a lock operation the kernel keeps POSIX locks itself
    # (SQLite's locking works across the processes on this mount).
    lock = None
    bmap = None
    ioctl = None
    getxattr = None
    listxattr = None
    setxattr = None
    removexattr = None
    symlink = None
    readlink = None
    mknod = None

    def __init__(self, root):
        self.root = root
        self.mutex = threading.Lock()
        self.handles = {}
        self.next_fh = 1
        self.frozen = False
        self.dead = False
        self.stats = {"fsync": 0, "fsyncdir": 0, "writes": 0, "renames": 0, "links": 0}

    # --- helpers (called with the mutex held)
    def _enter(self):
        self.mutex.acquire()
        if self.frozen:
            self.mutex.release()
            while not self.dead:
                time.sleep(0.01)
            raise fusepy.FuseOSError(errno.EIO)

    def _lookup(self, path):
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if not node.is_dir or part not in node.entries:
                raise fusepy.FuseOSError(errno.ENOENT)
            node = node.entries[part]
        return node

    def _parent(self, path):
        head, name = os.path.split(path.rstrip("/"))
        parent = self._lookup(head or "/")
        if not parent.is_dir:
            raise fusepy.FuseOSError(errno.ENOTDIR)
        return parent, name

    def _existing(self, path):
        """(parent directory, name, node) of a path that must exist."""
        parent, name = self._parent(path)
        n = parent.entries.get(name)
        if n is None:
            raise fusepy.FuseOSError(errno.ENOENT)
        return parent, name, n

    def _node(self, path, fh):
        if fh and fh in self.handles:
            return self.handles[fh]
        if path is None:
            raise fusepy.FuseOSError(errno.EBADF)
        return self._lookup(path)

    def _handle(self, node):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node
        return fh

    def _locked(fn):
        def wrapper(self, *args):
            self._enter()
            try:
                return fn(self, *args)
            finally:
                self.mutex.release()
        wrapper.__name__ = fn.__name__
        return wrapper

    # --- the cut
    def freeze(self, image_dir, rng):
        self.mutex.acquire()  # waits for the operation in progress, blocks all later ones
        self.frozen = True
        self.mutex.release()
        write_image(self.root, image_dir, rng)

    # --- operations
    @_locked
    def getattr(self, path, fh=None):
        n = self._node(path, fh)
        if n.is_dir:
            mode, size, nlink = stat.S_IFDIR | n.mode, 4096, 2 + sum(c.is_dir for c in n.entries.values())
        else:
            mode, size, nlink = stat.S_IFREG | n.mode, len(n.data), n.nlink
        return {"st_mode": mode, "st_size": size, "st_nlink": nlink, "st_uid": n.uid,
                "st_gid": n.gid, "st_atime": n.atime, "st_mtime": n.mtime, "st_ctime": n.ctime,
                "st_blocks": (size + 511) // 512, "st_blksize": PAGE}

    @_locked
    def access(self, path, amode):
        self._lookup(path)
        return 0

    @_locked
    def readdir(self, path, fh):
        n = self._node(path, fh)
        return [".", ".."] + list(n.entries)

    @_locked
    def opendir(self, path):
        n = self._lookup(path)
        if not n.is_dir:
            raise fusepy.FuseOSError(errno.ENOTDIR)
        return self._handle(n)

    @_locked
    def releasedir(self, path, fh):
        self.handles.pop(fh, None)
        return 0

    @_locked
    def fsyncdir(self, path, datasync, fh):
        n = self._node(path, fh)
        n.durable_entries = dict(n.entries)
        self.stats["fsyncdir"] += 1
        return 0

    @_locked
    def mkdir(self, path, mode):
        parent, name = self._parent(path)
        if name in parent.entries:
            raise fusepy.FuseOSError(errno.EEXIST)
        parent.entries[name] = Node(True, mode)
        parent.mtime = time.time()
        return 0

    @_locked
    def rmdir(self, path):
        parent, name, n = self._existing(path)
        if not n.is_dir:
            raise fusepy.FuseOSError(errno.ENOTDIR)
        if n.entries:
            raise fusepy.FuseOSError(errno.ENOTEMPTY)
        del parent.entries[name]
        return 0

    @_locked
    def create(self, path, mode, fi=None):
        parent, name = self._parent(path)
        n = parent.entries.get(name)
        if n is None:
            n = Node(False, mode)
            parent.entries[name] = n
            parent.mtime = time.time()
        elif n.is_dir:
            raise fusepy.FuseOSError(errno.EISDIR)
        return self._handle(n)

    @_locked
    def open(self, path, flags):
        n = self._lookup(path)
        if flags & os.O_TRUNC and not n.is_dir:
            del n.data[:]
        return self._handle(n)

    @_locked
    def release(self, path, fh):
        self.handles.pop(fh, None)
        return 0

    def flush(self, path, fh):
        return 0

    @_locked
    def read(self, path, size, offset, fh):
        n = self._node(path, fh)
        return bytes(n.data[offset:offset + size])

    @_locked
    def write(self, path, data, offset, fh):
        n = self._node(path, fh)
        if offset > len(n.data):
            n.data.extend(b"\0" * (offset - len(n.data)))
        n.data[offset:offset + len(data)] = data
        n.mtime = time.time()
        self.stats["writes"] += 1
        return len(data)

    @_locked
    def truncate(self, path, length, fh=None):
        n = self._node(path, fh)
        if length < len(n.data):
            del n.data[length:]
        else:
            n.data.extend(b"\0" * (length - len(n.data)))
        n.mtime = time.time()
        return 0

    @_locked
    def fsync(self, path, datasync, fh):
        n = self._node(path, fh)
        if n.is_dir:
            n.durable_entries = dict(n.entries)
        else:
            n.durable = bytes(n.data)
        self.stats["fsync"] += 1
        return 0

    @_locked
    def unlink(self, path):
        parent, name, n = self._existing(path)
        if n.is_dir:
            raise fusepy.FuseOSError(errno.EISDIR)
        del parent.entries[name]
        n.nlink -= 1
        return 0

    @_locked
    def link(self, target, source):
        """A new name target for the file source: durable when target's directory is synced."""
        n = self._lookup(source)
        if n.is_dir:
            raise fusepy.FuseOSError(errno.EPERM)
        parent, name = self._parent(target)
        if name in parent.entries:
            raise fusepy.FuseOSError(errno.EEXIST)
        parent.entries[name] = n
        n.nlink += 1
        parent.mtime = n.ctime = time.time()
        self.stats["links"] += 1
        return 0

    @_locked
    def rename(self, old, new):
        op, oname, n = self._existing(old)
        np_, nname = self._parent(new)
        target = np_.entries.get(nname)
        if target is n:
            return 0
        if target is not None:
            if target.is_dir != n.is_dir:
                raise fusepy.FuseOSError(errno.EISDIR if target.is_dir else errno.ENOTDIR)
            if target.is_dir and target.entries:
                raise fusepy.FuseOSError(errno.ENOTEMPTY)
        if target is not None and not target.is_dir:
            target.nlink -= 1
        del op.entries[oname]
        np_.entries[nname] = n
        self.stats["renames"] += 1
        return 0

    @_locked
    def chmod(self, path, mode):
        self._lookup(path).mode = mode & 0o7777
        return 0

    @_locked
    def chown(self, path, uid, gid):
        n = self._lookup(path)
        if uid != -1 and uid != 0xFFFFFFFF:
            n.uid = uid
        if gid != -1 and gid != 0xFFFFFFFF:
            n.gid = gid
        return 0

    @_locked
    def utimens(self, path, times=None):
        n = self._lookup(path)
        n.atime, n.mtime = times if times else (time.time(), time.time())
        return 0

    def statfs(self, path):
        # Plenty of room: the spool floor is tested elsewhere.
        return {"f_bsize": PAGE, "f_frsize": PAGE, "f_blocks": 4 << 20, "f_bfree": 3 << 20,
                "f_bavail": 3 << 20, "f_files": 1 << 20, "f_ffree": 1 << 20, "f_namemax": 255}


class Server:
    """The control socket, and one mount after another on the same mountpoint: each cut ends
    with an unmount, and the next mount starts from the image the cut wrote."""

    def __init__(self, image, mountpoint, control):
        self.mountpoint = mountpoint
        self.next_image = image
        self.generation = 0
        self.fs = None
        self.quit = False
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(control)
        self.srv.listen(4)

    def serve_control(self):
        while True:
            conn, _ = self.srv.accept()
            with conn:
                try:
                    conn.sendall(self.command(conn.recv(4096).decode().split()).encode())
                except OSError:
                    pass

    def command(self, words):
        fs = self.fs
        try:
            if words[0] == "freeze":
                rng = random.Random(int(words[3])) if len(words) > 3 and words[2] == "torn" else None
                fs.freeze(words[1], rng)
                self.next_image = words[1]
                return "ok"
            if words[0] == "release":
                fs.dead = True
                return "ok"
            if words[0] == "quit":
                self.quit = True
                fs.dead = True
                return "ok"
            if words[0] == "stats":
                return json.dumps(dict(fs.stats, generation=self.generation))
            return "error: unknown command"
        except Exception as e:  # the test reads the reason
            return f"error: {e!r}"

    def run(self):
        threading.Thread(target=self.serve_control, daemon=True).start()
        while not self.quit:
            t0 = time.time()
            self.fs = PageCacheFs(load_image(self.next_image))
            self.generation += 1
            print(f"generation {self.generation}: image loaded in {time.time() - t0:.2f} s",
                  flush=True)
            # Foreground, threaded; hard_remove: an unlinked open file stays reachable by its
            # handle (no .fuse_hidden renames). fuse_main returns when the test unmounts.
            fusepy.FUSE(self.fs, self.mountpoint, foreground=True, nothreads=False,
                        hard_remove=True, big_writes=True, max_write=131072, fsname="pagecache",
                        subtype="pagecache")
            print(f"generation {self.generation}: unmounted", flush=True)
            if not self.fs.frozen:
                break  # unmounted from outside without a cut: stop


def main():
    Server(*sys.argv[1:4]).run()


if __name__ == "__main__":
    main()

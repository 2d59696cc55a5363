"""write_atomic(path, data): replace a file so that it holds its old contents
or all of the new ones, whatever happens (a crash, a full disk, kill -9).

The temporary file is ".<name>.<12 hex digits>.tmp" next to the target. Its
writer holds an exclusive flock on it until the rename; the kernel drops the
lock when the process dies (kill -9 too), so a temporary whose lock can be
taken is left by a dead save, and the next save of the same name removes it.
"""
import errno
import os
import re
import stat
import warnings

try:
    import fcntl
except ImportError:         # not POSIX: no locks, stale temporaries are left alone
    fcntl = None

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _locked(fd, path):
    """Lock fd (exclusive, no waiting) and check that it is still the file at
    path: True, or False with fd closed."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
            return True
    except OSError:
        pass
    os.close(fd)
    return False


def _remove_stale_temps(directory, base):
    """Remove the temporary files that killed saves of `base` left behind."""
    if fcntl is None:
        return
    name = re.compile(re.escape(f".{base[:200]}.") + r"[0-9a-f]{12}\.tmp")
    try:
        candidates = [e.name for e in os.scandir(directory) if name.fullmatch(e.name)]
    except OSError:
        return
    for entry in candidates:
        path = os.path.join(directory, entry)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            continue
        if _locked(fd, path):           # no live save holds it
            _unlink(path)
            os.close(fd)


def _create_temp(directory, base):
    """A new temporary file next to the target, open for writing and locked: (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base[:200]}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)     # 0o666 & ~umask, like open()
        except FileExistsError:
            continue
        if _locked(fd, tmp):
            return fd, tmp
        _unlink(tmp)                    # a cleaner took it between create and lock
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _fsync_dir(directory, target):
    """Make the rename durable; a failure is a warning, since the file is in place."""
    if os.name != "posix":
        return                          # Windows cannot open a directory
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):    # not supported there: nothing to do
            warnings.warn(f"saved {target}, but could not fsync its directory ({e}): "
                          "after a power failure the old file may come back",
                          RuntimeWarning, stacklevel=5)


def write_atomic(path, data):
    """Write bytes data to path so that path holds either its old contents or all
    of data, whatever happens: write a temporary file in the same directory,
    fsync it, rename it onto path, fsync the directory. On any exception the
    temporary file is removed and path is untouched; once the new file is in
    place, a failed directory fsync is only a RuntimeWarning. path must be a
    regular file or new: IsADirectoryError for a directory, ValueError for a
    FIFO, a device or a socket (a rename would replace it by a file). A symlink
    is followed (its target is replaced); an existing file keeps its mode bits.
    Temporary files of killed saves of the same name are removed."""
    name = os.fsdecode(os.fspath(path))
    target = os.path.realpath(name)
    directory, base = os.path.split(target)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        msg = f"it is {kind}; a model is saved to a regular file or a new path"
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, msg, name)
        raise ValueError(f"cannot save to {name!r}: {msg}")
    _remove_stale_temps(directory, base)
    fd, tmp = _create_temp(directory, base)
    lock = os.dup(fd)                   # keeps the flock after fd is closed, up to the rename
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)                # before the rename: a failed close keeps the old file
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise
    finally:
        try:
            os.close(lock)
        except OSError:
            pass
    _fsync_dir(directory, target)

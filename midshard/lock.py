"""One writer per data root: a command that writes to a root holds the root's lock for its whole run.

Two runs writing one root at once interleave what they decide: each deduplicates against the
other's half-written decisions (every kept image then becomes a `duplicate_of` itself) and both
move the same cursors. So `scrape`, `refresh`, `rebuild`, `import-export` and `collect` take the
lock of the root they write; a second run on a root in use waits up to `Settings.lock_wait`
seconds, then stops with an error naming the holder (pid, host, command, since when). `holder(root)`
says who holds a root without taking it.

How, by kind of root:

- A local directory: `fcntl.flock` on `<root>/state/lock`, a file whose content names the holder.
  The kernel releases the lock when the holding process ends in any way, kill -9 included, so a
  killed run leaves no stale lock: the next run takes the root at once and logs whose lock it took
  over (the file outlives a killed holder; a run that ends normally removes it). On NFS, Linux
  implements flock with NFS byte-range locks, so this holds across hosts.
- Any other fsspec root (s3://, gs://, memory://, ...): object stores have no locks, so the holder
  keeps a lease, the object `<root>/state/lock` naming it with an expiry time, renewed by a
  background thread every third of `LEASE_SECONDS`. A killed run's lease lapses after
  `LEASE_SECONDS`; until then a new run sees the root as in use. Object stores have no atomic
  create either: a run writes its lease, reads it back `SETTLE_SECONDS` later and backs off if
  another run's lease replaced it. That is best effort: two runs starting within the same moment
  on an eventually consistent store could both go on.
- Within one process the lock is re-entrant for the thread that holds it (the import flow takes it,
  then builds the dataset under it); another thread of the process waits like another process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from midshard.errors import MidshardError
from midshard.store import Store

LOCK = "state/lock"
POLL_SECONDS = 0.2
# Even with no wait asked for, an attempt lasts this long: a reader's momentary look at a local lock
# (see `holder`) must not make a writer give up.
MIN_ATTEMPT_SECONDS = 1.0
LEASE_SECONDS = 60.0
SETTLE_SECONDS = 1.0

log = logging.getLogger("midshard.lock")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a data root."""

    pid: int
    host: str
    command: str
    since: str  # ISO-8601 UTC

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.command})"

    @classmethod
    def me(cls, command: str) -> Holder:
        argv = " ".join(sys.argv)
        line = f"{command}: {argv}" if argv else command
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(os.getpid(), socket.gethostname(), line[:300], since)

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder a lock's content names; None for empty or unreadable content."""
        try:
            fields = json.loads(data)
            return cls(int(fields["pid"]), str(fields["host"]), str(fields["command"]), str(fields["since"]))
        except (ValueError, KeyError, TypeError):
            return None


# A lock held by a run that has not written its name yet (it is just starting).
STARTING = Holder(0, "unknown host", "a run that is starting", "just now")


class RootBusyError(MidshardError):
    """Another run holds the data root."""

    def __init__(self, root: str, holder: Holder | None) -> None:
        super().__init__(
            f"data root {root} is in use by {holder or 'another run'}; wait for it to finish, or "
            "let this run wait for it with lock_wait = <seconds> (--set lock_wait=600)"
        )
        self.holder = holder


class RootUnusableError(MidshardError):
    """The data root cannot be written: a file, a read-only or full disk, no permission."""


class _Backend(Protocol):
    def try_acquire(self, me: Holder) -> bool: ...
    def release(self) -> None: ...
    def holder(self) -> Holder | None: ...


# -- local directories: flock -------------------------------------------------------------------
class _FileLock:
    """`fcntl.flock` on a local file that names its holder (the kernel drops it when the holder dies)."""

    def __init__(self, root: str, path: Path) -> None:
        self.root = root
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, me: Holder) -> bool:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if not self._still_linked(fd):  # its holder removed it while we opened it: try again
            os.close(fd)
            return False
        try:
            previous = Holder.parse(_read_all(fd))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            os.fsync(fd)
        except OSError as error:
            os.close(fd)
            raise _unusable(self.root, error) from None
        if previous is not None:
            log.warning("data root %s: took over from %s, which ended without unlocking", self.root, previous)
        self._fd = fd
        return True

    def _open(self) -> int:
        root = self.path.parent.parent
        if root.exists() and not root.is_dir():
            raise RootUnusableError(f"data root {self.root} is a file, not a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise _unusable(self.root, error) from None

    def _still_linked(self, fd: int) -> bool:
        try:
            on_disk = self.path.stat()
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self) -> None:
        """Remove the lock file, then unlock: a root left alone holds no lock file, and one still
        there names a run that ended without this (a waiting opener of the removed file notices,
        see `_still_linked`)."""
        assert self._fd is not None
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def holder(self) -> Holder | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no lock file (never used), or not readable: nobody we can name
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return Holder.parse(_read_all(fd)) or STARTING
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read_all(fd: int) -> bytes:
    return os.pread(fd, 1 << 16, 0)


def _unusable(root: str, error: OSError) -> RootUnusableError:
    return RootUnusableError(f"cannot write to data root {root}: {error.strerror or error}")


# -- other fsspec roots: a lease ------------------------------------------------------------------
class _Lease:
    """A renewed, expiring lease object (object stores have no locks)."""

    def __init__(self, root: str, store: Store) -> None:
        self.root = root
        self.store = store
        self._nonce = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _read(self) -> tuple[Holder, float, str] | None:
        try:
            data = self.store.read_bytes(LOCK)
            fields = json.loads(data)
            return Holder.parse(data) or STARTING, float(fields["expires"]), str(fields["nonce"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _write(self, me: Holder) -> None:
        lease = {**asdict(me), "expires": time.time() + LEASE_SECONDS, "nonce": self._nonce}
        try:
            self.store.write_text(LOCK, json.dumps(lease))
        except OSError as error:
            raise _unusable(self.root, error) from None

    def try_acquire(self, me: Holder) -> bool:
        current = self._read()
        if current is not None and current[1] > time.time():
            return False
        self._nonce = uuid.uuid4().hex
        self._write(me)
        time.sleep(SETTLE_SECONDS)
        back = self._read()
        if back is None or back[2] != self._nonce:
            return False
        if current is not None:
            log.warning("data root %s: took over from %s, whose lease had lapsed", self.root, current[0])
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, args=(me,), name="midshard-lease", daemon=True)
        self._renewer.start()
        return True

    def _renew(self, me: Holder) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            current = self._read()
            if current is not None and current[2] != self._nonce:
                log.error("data root %s: the lease was taken by %s", self.root, current[0])
                return
            with contextlib.suppress(MidshardError):  # a failed renewal is retried at the next beat
                self._write(me)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        current = self._read()
        if current is not None and current[2] == self._nonce:
            self.store.remove(LOCK)

    def holder(self) -> Holder | None:
        current = self._read()
        return current[0] if current is not None and current[1] > time.time() else None


# -- one process: re-entrant per thread ------------------------------------------------------------
@dataclass
class _Held:
    thread: int
    depth: int  # 0 while the thread is still acquiring


_held: dict[str, _Held] = {}
_registry = threading.Lock()


def _backend(root: str) -> tuple[str, _Backend]:
    store = Store(root)
    if store.local:
        path = Path(store.root) / LOCK
        return os.path.realpath(path), _FileLock(root, path)
    return store.fs.unstrip_protocol(store.path(LOCK)), _Lease(root, store)


def holder(root: str) -> Holder | None:
    """Who holds `root` now (None: nobody); takes nothing, writes nothing."""
    return _backend(root)[1].holder()


@contextlib.contextmanager
def root_lock(root: str, command: str, wait: float = 0.0) -> Iterator[None]:
    """Hold `root` for the block; `RootBusyError` if another run keeps it for more than `wait` s,
    `RootUnusableError` if the root cannot be written at all."""
    key, backend = _backend(root)
    thread = threading.get_ident()
    with _registry:
        entry = _held.get(key)
        if entry is not None and entry.thread == thread:
            entry.depth += 1
        else:
            entry = None
    if entry is None:
        _acquire(key, backend, root, Holder.me(command), wait)
    try:
        yield
    finally:
        with _registry:
            held = _held[key]
            held.depth -= 1
            last = held.depth == 0
            if last:
                del _held[key]
        if last:
            backend.release()


def check_free(root: str, command: str, wait: float = 0.0) -> None:
    """Fail now, naming the holder, if another run holds `root`: take the lock and give it back
    (the CLI does this before starting Prefect, so a busy root fails in a second)."""
    with root_lock(root, command, wait):
        return


def _acquire(key: str, backend: _Backend, root: str, me: Holder, wait: float) -> None:
    thread = threading.get_ident()
    deadline = time.monotonic() + max(wait, MIN_ATTEMPT_SECONDS)
    told = False
    while True:
        with _registry:
            mine = key not in _held
            if mine:
                _held[key] = _Held(thread, 0)
        if mine:
            acquired = False
            try:
                acquired = backend.try_acquire(me)
            finally:
                with _registry:
                    if acquired:
                        _held[key].depth = 1
                    else:
                        del _held[key]
            if acquired:
                return
        if time.monotonic() >= deadline:
            raise RootBusyError(root, backend.holder())
        if not told and wait > MIN_ATTEMPT_SECONDS:
            log.warning("data root %s is in use by %s; waiting up to %.0f s", root, backend.holder(), wait)
            told = True
        time.sleep(POLL_SECONDS)

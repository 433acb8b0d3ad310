"""Atomic, versioned artifact folders under ``$RECSYS_DATA_DIR/artifacts/<asset_key>/``.

Each asset writes into a fresh private folder; only when the writer finishes without error is the
folder published: a manifest of its files is written, it is renamed into
``.versions/<asset_key>/<version>`` and the ``<asset_key>`` symlink is swapped to it (``os.replace``
of a symlink is atomic on POSIX). A reader therefore sees either the previous complete artifact
or the new complete one, never a half-written folder, whatever kills the writer. A per-key file
lock makes a second writer of the same key wait for the first.

Readers pin the version they read (:meth:`ArtifactStore.pinned`) for as long as they read it. A
pin is a file held under an exclusive ``flock`` by the reading process: the kernel drops the
lock when that process dies, so a crashed reader never keeps a version alive forever, and no
registry has to be cleaned up. Pruning keeps the published version, the one before it (the
version Dagster's latest materialization still names between a publish and the event that
records it) and every version a live reader has pinned; it never removes one by count alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

VERSIONS_DIR = ".versions"
LOCKS_DIR = ".locks"
PINS_DIR = ".pins"
MANIFEST = ".manifest.json"  # relative path -> size of every file the writer left
TMP_PREFIX = ".tmp-"


class ArtifactError(RuntimeError):
    """An artifact is missing, unreadable, damaged or could not be written."""


class ArtifactStore:
    def __init__(self, root: Path, lock_timeout_s: float = 3600.0) -> None:
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s
        self.published: dict[str, Path] = {}  # key -> version folder this store object published

    def path(self, key: str) -> Path:
        """Folder of the published artifact ``key``; a clear error when it was never built."""
        link = self.root / key
        if not link.exists():
            raise ArtifactError(
                f"artifact '{key}' not found at {link}: materialize the '{key}' asset first"
            )
        return link.resolve()

    def version(self, key: str, name: str) -> Path:
        """The version folder ``name`` of ``key``, checked against its manifest: a deleted or
        truncated file is an error naming the version, never a silent switch to another one."""
        folder = self.root / VERSIONS_DIR / key / name
        if not folder.is_dir():
            raise ArtifactError(
                f"artifact '{key}' version {name} is gone ({folder}): it was pruned or deleted; "
                f"re-materialize '{key}'"
            )
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"artifact '{key}' version {name} has no readable manifest ({exc}); "
                f"re-materialize '{key}'"
            ) from exc
        damaged = [
            rel
            for rel, size in manifest.items()
            if not (folder / rel).is_file() or (folder / rel).stat().st_size != size
        ]
        if damaged:
            raise ArtifactError(
                f"artifact '{key}' version {name} is damaged: {len(damaged)} file(s) missing or "
                f"changed, first {damaged[0]} ({folder}); re-materialize '{key}'"
            )
        return folder

    @contextlib.contextmanager
    def pinned(self, key: str, name: str) -> Iterator[Path]:
        """The checked version folder ``name`` of ``key``, kept from pruning inside the block."""
        pins = self.root / PINS_DIR / key / name
        with self._lock(key, "publish"):  # no prune between the pin and the check
            pins.mkdir(parents=True, exist_ok=True)
            pin = pins / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            fd = os.open(pin, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                folder = self.version(key, name)
            except BaseException:
                _unpin(fd, pin)
                raise
        try:
            yield folder
        finally:
            _unpin(fd, pin)

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """Yield an empty folder to fill; publish it atomically if the block succeeds. A second
        writer of ``key`` waits; readers do not (they wait only for the short publish step)."""
        versions = self.root / VERSIONS_DIR / key
        with _clear_write_errors(key, self.root):
            versions.mkdir(parents=True, exist_ok=True)
        with self._lock(key, "write"):
            # sortable by publication time, to the nanosecond
            stamp = f"{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() % 10**9:09d}"
            name = f"{stamp}-{uuid.uuid4().hex[:8]}"
            staging = versions / f"{TMP_PREFIX}{name}"
            try:
                with _clear_write_errors(key, self.root):
                    staging.mkdir()
                    yield staging
                    _write_manifest(staging)
                    _fsync_tree(staging)
                    final = versions / name
                    staging.rename(final)
                    with self._lock(key, "publish"):
                        self._publish(key, final)
                        self._prune(key)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
            self.published[key] = final

    @contextlib.contextmanager
    def _lock(self, key: str, purpose: str) -> Iterator[None]:
        with _clear_write_errors(key, self.root):
            (self.root / LOCKS_DIR).mkdir(parents=True, exist_ok=True)
        path = self.root / LOCKS_DIR / f"{key}.{purpose}.lock"
        lock = FileLock(path, timeout=self.lock_timeout_s)
        try:
            with _clear_write_errors(key, self.root):
                lock.acquire()
        except Timeout as exc:
            raise ArtifactError(
                f"artifact '{key}' is being written by another run (lock {lock.lock_file}); "
                f"gave up after {self.lock_timeout_s:.0f} s"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def _publish(self, key: str, target: Path) -> None:
        link = self.root / key
        tmp_link = self.root / f".{key}.{uuid.uuid4().hex[:8]}.link"
        tmp_link.symlink_to(os.path.relpath(target, self.root))
        os.replace(tmp_link, link)
        _fsync_dir(self.root)

    def pinned_versions(self, key: str) -> set[str]:
        """Versions of ``key`` that a live process holds a pin on (dead pinners' pins removed)."""
        held = set()
        pins = self.root / PINS_DIR / key
        for version in pins.iterdir() if pins.is_dir() else []:
            for pin in version.iterdir():
                if _held_by_a_live_process(pin):
                    held.add(version.name)
                else:
                    pin.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                version.rmdir()  # only when empty
        return held

    def _prune(self, key: str) -> None:
        """Remove what no reader can need: staging folders of killed writers, and published
        versions other than the newest two and the pinned ones (under the publish lock, after
        the publish; the writer's own staging folder is never seen: the write lock is held)."""
        versions = self.root / VERSIONS_DIR / key
        published = sorted(p.name for p in versions.iterdir() if not p.name.startswith(TMP_PREFIX))
        kept = {*published[-2:], *self.pinned_versions(key)}
        for folder in versions.iterdir():
            if folder.name not in kept:
                shutil.rmtree(folder, ignore_errors=True)


def _unpin(fd: int, pin: Path) -> None:
    pin.unlink(missing_ok=True)
    os.close(fd)


def _held_by_a_live_process(pin: Path) -> bool:
    try:
        fd = os.open(pin, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _write_manifest(folder: Path) -> None:
    files = {
        str(path.relative_to(folder)): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    (folder / MANIFEST).write_text(json.dumps(files, indent=1))


_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the artifact folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EDQUOT: "disk quota exceeded",
}


@contextlib.contextmanager
def _clear_write_errors(key: str, root: Path) -> Iterator[None]:
    """A full disk, a read-only or forbidden folder: one clear ArtifactError."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise ArtifactError(
            f"could not write artifact '{key}' under {root}: {_WRITE_ERRNOS[exc.errno]} "
            f"({exc.filename or root}); the previously published artifact, if any, is unchanged"
        ) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush file contents before the rename makes them visible (a crash must not publish zeros)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))

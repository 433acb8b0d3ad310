"""Atomic, versioned artifact folders under ``$RECSYS_DATA_DIR/artifacts/<asset_key>/``.

Each asset writes into a fresh private folder; only when the writer finishes without error is the
folder published by swapping the ``<asset_key>`` symlink to it (``os.replace`` of a symlink is
atomic on POSIX). A reader therefore sees either the previous complete artifact or the new complete
one, never a half-written folder, whatever kills the writer. A per-key file lock makes a second
writer of the same key wait for the first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

VERSIONS_DIR = ".versions"
LOCKS_DIR = ".locks"
KEEP_VERSIONS = 2  # the published one and its predecessor, for a manual rollback


class ArtifactError(RuntimeError):
    """An artifact is missing, unreadable or could not be written."""


class ArtifactStore:
    def __init__(self, root: Path, lock_timeout_s: float = 3600.0) -> None:
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s

    def path(self, key: str) -> Path:
        """Folder of the published artifact ``key``; a clear error when it was never built."""
        link = self.root / key
        if not link.exists():
            raise ArtifactError(
                f"artifact '{key}' not found at {link}: materialize the '{key}' asset first"
            )
        return link.resolve()

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """Yield an empty folder to fill; publish it atomically if the block succeeds."""
        versions = self.root / VERSIONS_DIR / key
        with _clear_write_errors(key, self.root):
            versions.mkdir(parents=True, exist_ok=True)
            (self.root / LOCKS_DIR).mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.root / LOCKS_DIR / f"{key}.lock", timeout=self.lock_timeout_s)
            try:
                lock.acquire()
            except Timeout as exc:
                raise ArtifactError(
                    f"artifact '{key}' is being written by another run (lock {lock.lock_file}); "
                    f"gave up after {self.lock_timeout_s:.0f} s"
                ) from exc
        try:
            stamp = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
            staging = versions / f".tmp-{stamp}"
            try:
                with _clear_write_errors(key, self.root):
                    staging.mkdir()
                    yield staging
                    _fsync_tree(staging)
                    final = versions / stamp
                    staging.rename(final)
                    self._publish(key, final)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
            self._prune(key)
        finally:
            lock.release()

    def _publish(self, key: str, target: Path) -> None:
        link = self.root / key
        tmp_link = self.root / f".{key}.{uuid.uuid4().hex[:8]}.link"
        tmp_link.symlink_to(os.path.relpath(target, self.root))
        os.replace(tmp_link, link)
        _fsync_dir(self.root)

    def _prune(self, key: str) -> None:
        versions = self.root / VERSIONS_DIR / key
        current = self.path(key)
        others = [p for p in versions.iterdir() if p != current]
        # Staging folders left behind by killed writers are never read: always remove them.
        staging = [p for p in others if p.name.startswith(".tmp-")]
        published = sorted(
            (p for p in others if not p.name.startswith(".tmp-")), key=lambda p: p.stat().st_mtime
        )
        for stale in staging + published[: len(published) - (KEEP_VERSIONS - 1)]:
            shutil.rmtree(stale, ignore_errors=True)


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

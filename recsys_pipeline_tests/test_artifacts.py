from __future__ import annotations

import errno
import threading
import time

import pytest

from recsys_pipeline.data.artifacts import ArtifactError, ArtifactStore


def test_publish_replaces_atomically_and_keeps_one_previous_version(tmp_path):
    store = ArtifactStore(tmp_path)
    for version in range(4):
        with store.writing("thing") as folder:
            (folder / "value.txt").write_text(str(version))
    assert (store.path("thing") / "value.txt").read_text() == "3"
    assert len(list((tmp_path / ".versions" / "thing").iterdir())) == 2


def test_a_failed_write_leaves_the_previous_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.writing("thing") as folder:
        (folder / "value.txt").write_text("good")
    with pytest.raises(RuntimeError), store.writing("thing") as folder:
        (folder / "value.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (store.path("thing") / "value.txt").read_text() == "good"
    assert not [
        p for p in (tmp_path / ".versions" / "thing").iterdir() if p.name.startswith(".tmp")
    ]


def test_missing_artifact_says_what_to_materialize(tmp_path):
    with pytest.raises(ArtifactError, match="materialize the 'sequences' asset first"):
        ArtifactStore(tmp_path).path("sequences")


def test_disk_full_is_a_clear_error_and_publishes_nothing(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.writing("thing") as folder:
        (folder / "value.txt").write_text("good")
    with (
        pytest.raises(ArtifactError, match="no space left on the device"),
        store.writing("thing") as folder,
    ):
        (folder / "value.txt").write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "value.txt"))
    assert (store.path("thing") / "value.txt").read_text() == "good"


def test_read_only_folder_is_a_clear_error(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    tmp_path.chmod(0o500)
    try:
        with (
            pytest.raises(ArtifactError, match="permission denied"),
            ArtifactStore(tmp_path / "artifacts").writing("x"),
        ):
            pass
    finally:
        tmp_path.chmod(0o700)


def test_a_second_writer_waits_for_the_first(tmp_path):
    store = ArtifactStore(tmp_path)
    order = []

    def slow_writer():
        with store.writing("thing") as folder:
            order.append("first starts")
            time.sleep(0.5)
            (folder / "value.txt").write_text("first")
            order.append("first ends")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    time.sleep(0.1)
    with store.writing("thing") as folder:
        order.append("second starts")
        (folder / "value.txt").write_text("second")
    thread.join()
    assert order == ["first starts", "first ends", "second starts"]
    assert (store.path("thing") / "value.txt").read_text() == "second"


def test_lock_timeout_fails_cleanly(tmp_path):
    store = ArtifactStore(tmp_path, lock_timeout_s=0.2)
    impatient = ArtifactStore(tmp_path, lock_timeout_s=0.2)
    with (
        store.writing("thing"),
        pytest.raises(ArtifactError, match="being written by another run"),
        impatient.writing("thing"),
    ):
        pass

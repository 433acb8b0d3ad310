from __future__ import annotations

import errno
import re
import shutil
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


def publish(store: ArtifactStore, text: str) -> str:
    with store.writing("thing") as folder:
        (folder / "value.txt").write_text(text)
    return store.published["thing"].name


def test_a_pinned_version_survives_any_number_of_publishes(tmp_path):
    store = ArtifactStore(tmp_path)
    first = publish(store, "first")
    with store.pinned("thing", first) as folder:
        for n in range(4):
            publish(store, str(n))
        assert (folder / "value.txt").read_text() == "first"
    names = {p.name for p in (tmp_path / ".versions" / "thing").iterdir()}
    assert first in names and len(names) == 3  # the pin and the newest two
    publish(store, "after")  # unpinned now: pruned at the next publish
    assert first not in {p.name for p in (tmp_path / ".versions" / "thing").iterdir()}


def test_the_pin_of_a_dead_reader_does_not_keep_a_version(tmp_path):
    import subprocess
    import sys

    from recsys_pipeline_tests.conftest import REPO

    store = ArtifactStore(tmp_path)
    first = publish(store, "first")
    code = (
        "import sys; from pathlib import Path; from recsys_pipeline.data.artifacts import "
        f"ArtifactStore; s = ArtifactStore(Path({str(tmp_path)!r}));"
        f"pin = s.pinned('thing', {first!r}); pin.__enter__(); print('pinned', flush=True);"
        "sys.stdin.read()"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert reader.stdout.readline().strip() == b"pinned"
    assert store.pinned_versions("thing") == {first}
    reader.kill()  # no clean-up runs: the kernel drops its lock
    reader.communicate()
    assert store.pinned_versions("thing") == set()
    publish(store, "a")
    publish(store, "b")
    assert first not in {p.name for p in (tmp_path / ".versions" / "thing").iterdir()}


@pytest.mark.parametrize("damage", ["deleted", "truncated", "version gone"])
def test_a_damaged_version_is_an_error_naming_it(tmp_path, damage):
    store = ArtifactStore(tmp_path)
    name = publish(store, "complete")
    folder = tmp_path / ".versions" / "thing" / name
    if damage == "deleted":
        (folder / "value.txt").unlink()
        expected = f"version {name} is damaged: 1 file(s) missing or changed, first value.txt"
    elif damage == "truncated":
        (folder / "value.txt").write_text("comp")
        expected = f"version {name} is damaged"
    else:
        shutil.rmtree(folder)
        expected = f"version {name} is gone"
    with pytest.raises(ArtifactError, match=re.escape(expected)), store.pinned("thing", name):
        pass
    assert store.pinned_versions("thing") == set()  # a failed pin leaves no pin behind

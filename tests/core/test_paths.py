"""Files the runner keeps (sync_runner/core/paths.py `write_whole`): whole or not at all, nothing left behind."""

from __future__ import annotations

import threading

from sync_runner.core.paths import write_whole


def test_a_file_is_written_whole_and_its_folder_made_when_asked(tmp_path):
    path = tmp_path / "a" / "b" / "kept.bin"
    assert not write_whole(path, b"x") and not (tmp_path / "a").exists()  # no folder, none made
    assert write_whole(path, b"first", make_folder=True) and path.read_bytes() == b"first"
    assert write_whole(path, b"second") and path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["kept.bin"]


def test_a_folder_that_cannot_be_written_writes_nothing_and_leaves_nothing(tmp_path):
    (tmp_path / "a_file").write_text("")
    assert not write_whole(tmp_path / "a_file" / "kept.bin", b"x", make_folder=True)  # (not even as root)
    taken = tmp_path / "taken"
    (taken / "kept.bin").mkdir(parents=True)  # the name is a folder: the rename fails after the write
    assert not write_whole(taken / "kept.bin", b"x")
    assert [p.name for p in taken.iterdir()] == ["kept.bin"] and (taken / "kept.bin").is_dir()


def test_threads_writing_at_once_leave_one_whole_file(tmp_path):
    path = tmp_path / "kept.bin"
    blobs = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=write_whole, args=(path, blob)) for blob in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert path.read_bytes() in blobs and [p.name for p in tmp_path.iterdir()] == ["kept.bin"]

"""core/durable_batch.py: a batch of files replaced atomically and made durable together (start-all's
claims and records). What a test can see: every target holds its new content, private, no temp
file is left, a planted symlink is replaced (never written through), and a batch that fails
before its commit changes nothing."""
from __future__ import annotations

import os

import pytest

from core.durable_batch import SMALL, DurableBatch


@pytest.mark.parametrize("count", [1, SMALL, SMALL + 6], ids=["one", "small", "filesystem-flush"])
def test_a_committed_batch_replaces_every_file(tmp_path, count):
    targets = [tmp_path / f"d{i}" / "instance.json" for i in range(count)]
    targets[0].parent.mkdir()
    targets[0].write_text("old")
    batch = DurableBatch()
    for i, path in enumerate(targets):
        batch.stage(path, f"new {i}")
    assert targets[0].read_text() == "old"  # staged only: nothing replaced before the commit
    batch.commit()
    for i, path in enumerate(targets):
        assert path.read_text() == f"new {i}"
        assert path.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in path.parent.iterdir()) == ["instance.json"]  # no temp file left


def test_a_planted_symlink_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "logs" / "instance.json"
    target.parent.mkdir()
    target.symlink_to(victim)
    batch = DurableBatch()
    for name in ("instance.json", "a", "b"):
        batch.stage(target.parent / name, "mine")
    batch.commit()
    assert victim.read_text() == "keep"
    assert not target.is_symlink() and target.read_text() == "mine"


def test_a_batch_that_fails_before_its_commit_changes_nothing(tmp_path):
    first = tmp_path / "a" / "instance.json"
    first.parent.mkdir()
    first.write_text("old")
    (tmp_path / "not_a_dir").write_text("a file where a log dir should be")
    batch = DurableBatch()
    batch.stage(first, "new")
    with pytest.raises(OSError):
        batch.stage(tmp_path / "not_a_dir" / "instance.json", "new")
    batch.discard()
    assert first.read_text() == "old"
    assert os.listdir(first.parent) == ["instance.json"]

"""How a run's work is cut: whole-item batches and shards, keyed noise, the run's identity."""

from __future__ import annotations

from zbb.work import config_differences, item_batches, noise_key, noise_keys, shard_units, units


def _work(items: int, conditions: int, repetitions: int = 1):
    return [({"id": f"i{i}"}, f"c{c}", r) for i in range(items) for r in range(repetitions) for c in range(conditions)]


def _shape(batches):
    return [[(w[0]["id"], w[2]) for w in batch] for batch in batches]


def test_batches_hold_whole_items_and_grow_to_fit_one():
    work = _work(3, 3)
    assert [len(b) for b in item_batches(work, 7)] == [6, 3]  # a third item would split: next batch
    assert [len(b) for b in item_batches(work, 2)] == [3, 3, 3]  # smaller than an item: one item each
    assert [len(b) for b in item_batches(work, 100)] == [9]
    for batch in item_batches(_work(4, 3, repetitions=2), 5):
        assert len({(w[0]["id"], w[2]) for w in batch}) * 3 == len(batch)
    # resumed work (some conditions done) still keeps what is left of an item together
    assert _shape(item_batches(work[2:], 3)) == [[("i0", 0)], [("i1", 0)] * 3, [("i2", 0)] * 3]


def test_shards_take_whole_units_of_the_full_work():
    work = _work(3, 2, repetitions=2)
    assert len(units(work)) == 6
    parts = [shard_units(work, rank, 2) for rank in range(2)]
    assert sorted(map(id, parts[0] + parts[1])) == sorted(map(id, work))
    assert [(w[0]["id"], w[2]) for w in parts[1][::2]] == [("i0", 1), ("i1", 1), ("i2", 1)]


def test_noise_keys_follow_the_item_and_repetition_only():
    batch = _work(2, 3, repetitions=2)
    keys = noise_keys(7, batch)
    assert keys[0] == keys[1] == keys[2] == noise_key(7, "i0", 0)
    assert len(set(keys)) == 4
    assert noise_key(7, "i0", 0) != noise_key(8, "i0", 0)


def test_config_differences_name_options_and_ignore_the_batch_size():
    saved = {"alpha": 5.5, "batch_size": 16, "rules": {"hold": 3, "reply_frames": 75}}
    wanted = {"alpha": 1.0, "batch_size": 4, "rules": {"hold": 3, "reply_frames": 60}, "onset": "vad"}
    assert config_differences(saved, wanted) == ["alpha: 5.5 -> 1.0", "onset: None -> 'vad'",
                                                 "rules.reply_frames: 75 -> 60"]
    assert config_differences(saved, dict(saved, batch_size=1)) == []

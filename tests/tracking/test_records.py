"""Store records <-> W&B rows, W&B config <-> store config, run ids, the offline log format."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import pytest

from scalelab.errors import DataError
from scalelab.store.runs import RunStore
from scalelab.tracking._wandb import wandb_run_id
from scalelab.tracking.offline import read_log
from scalelab.tracking.pull import parse_filters
from scalelab.tracking.records import (
    RowKeys,
    merge_rows,
    records_from_row,
    rows_from_records,
    split_key,
)
from scalelab.tracking.store_io import from_wandb_config, store_run_id, wandb_config, write_run

RECORDS = [
    {"step": 0, "examples": 0, "tokens": 0, "flops": 0.0, "split": "eval", "source": "modadd", "metric": "loss",
     "value": 4.6},
    {"step": 0, "examples": 0, "tokens": 0, "flops": 0.0, "split": "eval", "source": "text/python_code",
     "metric": "loss", "value": 5.5},
    {"step": 3, "examples": 48, "tokens": 528, "flops": 6.9e7, "split": "train", "source": "all",
     "metric": "online_loss", "value": 4.1},
    {"step": 3, "examples": 48, "tokens": 528, "flops": 6.9e7, "split": "train", "source": "all",
     "metric": "tokens_per_s", "value": None},
]


def canonical(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (r["step"], r.get("split", ""), r.get("source", ""), r["metric"]))


def test_rows_round_trip_every_field() -> None:
    rows = rows_from_records(RECORDS)
    assert [step for step, _ in rows] == [0, 3]
    nan = rows[1][1].pop("train/all/tokens_per_s")
    assert math.isnan(nan)  # None is logged as NaN: a null in W&B history means "not logged"
    assert rows[1][1] == {"examples": 48, "tokens": 528, "flops": 6.9e7, "train/all/online_loss": 4.1}
    rows[1][1]["train/all/tokens_per_s"] = nan
    back = [r for step, row in rows for r in records_from_row({"_step": step, "_runtime": 1.5, **row})]
    assert canonical(back) == canonical(RECORDS)
    assert records_from_row({"_step": 0, "eval/a/loss": None, "eval/a/acc": 0.5}) == [
        {"step": 0, "split": "eval", "source": "a", "metric": "acc", "value": 0.5}]  # null: not logged


def test_other_tools_rows() -> None:
    row = {"trainer/global_step": 7, "num_tokens": 1000, "loss": 2.5, "val/loss": 2.7, "val/acc": True,
           "media": {"_type": "image-file"}, "name": "x", "lr": float("nan"), "_step": 99}
    recs = records_from_row(row, RowKeys(step="trainer/global_step", tokens="num_tokens"))
    assert canonical(recs) == canonical([
        {"step": 7, "tokens": 1000, "metric": "loss", "value": 2.5},
        {"step": 7, "tokens": 1000, "metric": "lr", "value": None},
        {"step": 7, "tokens": 1000, "split": "val", "metric": "loss", "value": 2.7},
    ])
    assert records_from_row({"loss": 1.0}) == []  # no step
    assert records_from_row({"_step": 1.5, "loss": 1.0}) == []
    assert split_key("a/b/c/d") == {"split": "a", "source": "b/c", "metric": "d"}


def test_merge_rows_later_session_wins() -> None:
    first = [{"_step": 0, "a": 1}, {"_step": 1, "a": 2}, {"_step": 2, "a": 3}]
    second = [{"_step": 2, "a": 30}, {"_step": 3, "a": 4}]
    assert merge_rows([first, second]) == [{"_step": 0, "a": 1}, {"_step": 1, "a": 2}, {"_step": 2, "a": 30},
                                           {"_step": 3, "a": 4}]


def test_wandb_config_round_trip_and_foreign_configs() -> None:
    cfg = wandb_config("t_seed-0", {"model": {"size": "tiny"}, "steps": 40}, {"host": "h"},
                       {"n_params": 30000, "n_params_nonembedding": 21720})
    back = from_wandb_config({**cfg, "_wandb": {"t": 1}})
    assert back.run_id == "t_seed-0"
    assert back.config == {"model": {"size": "tiny"}, "steps": 40}
    assert back.provenance == {"host": "h"}
    assert back.facts == {"n_params": 30000, "n_params_nonembedding": 21720}
    foreign = from_wandb_config({"lr": 0.1, "_wandb": {}, "wandb_version": 1, "scalelab": "other"})
    assert foreign.run_id is None and foreign.config == {"lr": 0.1, "scalelab": "other"}


def test_ids() -> None:
    prov = {"created_at": "2024-05-01T10:00:00+00:00", "host": "node1"}
    wid = wandb_run_id("t_size-tiny_seed-0_ab12cd34", prov)
    assert wid == wandb_run_id("t_size-tiny_seed-0_ab12cd34", dict(prov))  # stable
    assert wid != wandb_run_id("t_size-tiny_seed-0_ab12cd34", {**prov, "host": "node2"})
    assert wid.startswith("t_size-tiny_seed-0_ab12cd34-") and len(wid) <= 64
    assert len(wandb_run_id("x" * 300, prov)) <= 64
    assert wandb_run_id("a.b", prov).startswith("a-b-")  # W&B ids take no dots
    assert store_run_id("my run/1") == "my-run-1"
    with pytest.raises(DataError, match="cannot make a store run id"):
        store_run_id("///")


def test_parse_filters() -> None:
    assert parse_filters([]) == {}
    assert parse_filters(["config.model.size=tiny"]) == {"config.model.size": "tiny"}
    assert parse_filters(["config.steps=40", "state=finished"]) == {
        "$and": [{"config.steps": 40}, {"state": "finished"}]}
    with pytest.raises(DataError, match="not KEY=VALUE or a JSON object"):
        parse_filters(["size"])
    with pytest.raises(DataError, match="not valid JSON"):
        parse_filters(["{bad"])


def test_write_run_appends_only_new_steps(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s")
    kw = {"config": {"lr": 0.1}, "provenance": {"source": "test"}, "status": "finished", "info": {"n_params": 5}}
    assert write_run(store, "r", records=RECORDS[:2], **kw) == 2
    assert write_run(store, "r", records=RECORDS, **kw) == 2  # steps 0 already stored
    assert write_run(store, "r", records=RECORDS, **kw) == 0
    assert canonical(store.run("r").read_metrics()) == canonical(RECORDS)
    info = store.runs()[0]
    assert (info.status, info.last_step) == ("finished", 3)
    assert store.export().column("n_params").tolist() == [5.0] * 4
    with pytest.raises(DataError, match="different config"):
        write_run(store, "r", records=[], **{**kw, "config": {"lr": 0.2}})


def _log_file(path: Path, records: list[bytes], *, tear: bool = False) -> None:
    """Write a W&B transaction log the way wandb-core does (LevelDB log format, CRC-32)."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for rec in records:
        data, first = rec, True
        while True:
            left = 32768 - len(out) % 32768
            if left < 7:
                out += b"\0" * left
                continue
            chunk, data = data[: left - 7], data[left - 7 :]
            kind = (1 if first else 4) if not data else (2 if first else 3)
            out += struct.pack("<IHB", zlib.crc32(chunk, zlib.crc32(bytes([kind]))), len(chunk), kind) + chunk
            first = False
            if not data:
                break
    path.write_bytes(bytes(out[:-3]) if tear else bytes(out))


def test_read_log_blocks_fragments_and_torn_tail(tmp_path: Path) -> None:
    records = [b"a" * 10, bytes(range(256)) * 200, b"b" * 32760, b"c" * 5]  # spans blocks, pads
    f = tmp_path / "run-x.wandb"
    _log_file(f, records)
    assert list(read_log(f)) == records
    _log_file(f, records, tear=True)
    assert list(read_log(f)) == records[:-1]  # a torn last record is dropped quietly
    data = bytearray(f.read_bytes())
    data[20] ^= 0xFF  # inside the first record
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt at byte 7"):
        list(read_log(f))
    f.write_bytes(b"not a log")
    with pytest.raises(DataError, match="not a W&B run log"):
        list(read_log(f))


def test_redact_scrubs_the_key_from_text_and_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.tracking._wandb import redact, redact_obj

    key = "k" * 40
    monkeypatch.setenv("WANDB_API_KEY", key)
    assert redact(f"POST failed with key {key}") == "POST failed with key ***"
    cfg = {"provenance": {"argv": ["train.py", f"--key={key}"]}, key: 1, "n": 2.5}
    assert redact_obj(cfg) == {"provenance": {"argv": ["train.py", "--key=***"]}, "***": 1, "n": 2.5}
    monkeypatch.delenv("WANDB_API_KEY")
    assert redact(f"x {key}") == f"x {key}"  # nothing to scrub without a key in the environment

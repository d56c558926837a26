"""Byte-level text domains from the standard library: split, windows, eval sets, errors."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources import TextSource, make_source
from scalelab.harness.sources.text import CODE_MODULES, DOMAINS
from scalelab.harness.vocab import BOS, EOS, PAD


@pytest.fixture(scope="module", params=DOMAINS)
def source(request) -> TextSource:
    return TextSource(domain=request.param, seed=0, eval_size=16)


def _windows(batch) -> list[bytes]:
    """The document bytes of each row (BOS, EOS and PAD removed)."""
    return [bytes(row[(row < 256)].astype(np.uint8)) for row in batch.tokens]


def test_documents_are_split_by_document(source):
    train, held = source.documents("train"), source.documents("heldout")
    assert train and held and not set(train) & set(held)
    assert len(held) == max(1, round(0.2 * (len(train) + len(held))))
    other = TextSource(domain=source.domain, seed=1)
    assert set(other.documents("heldout")) != set(held)


def test_training_windows_are_real_text_from_training_documents_only(source):
    batch = source.sample(np.random.default_rng(0), 64, seq_len=48)
    train = list(source.documents("train").values())
    held = list(source.documents("heldout").values())
    assert np.all(batch.tokens[:, 0] == BOS)
    assert held
    for window in _windows(batch):
        assert len(window) == 47 and any(window in doc for doc in train)
    text = b"".join(_windows(batch)).decode("utf-8", errors="replace")
    assert sum(ch.isalpha() for ch in text) > 0.3 * len(text)


def test_eval_windows_tile_held_out_documents_and_are_fixed_by_the_seed(source):
    batch = source.eval_sets(seq_len=48)[source.name]
    held = list(source.documents("heldout").values())
    assert source.name == f"text/{source.domain}" and len(batch) == 16
    assert all(any(w in doc for doc in held) for w in _windows(batch))
    rebuilt = make_source(**source.config()).eval_sets(seq_len=48)[source.name]
    np.testing.assert_array_equal(rebuilt.tokens, batch.tokens)


@pytest.fixture()
def tiny_stdlib(tmp_path):
    """A fake Lib directory: 10 short modules, module i made of the letter chr(97 + i) only."""
    (tmp_path / "os.py").write_text("x = 1\n")
    for i, module in enumerate(CODE_MODULES[:10]):
        (tmp_path / f"{module}.py").write_text(chr(97 + i) * (5 + 7 * i))
    return str(tmp_path)


def test_held_out_documents_never_appear_in_training_rows(tiny_stdlib):
    src = TextSource(domain="python_code", root=tiny_stdlib, eval_fraction=0.3, eval_size=100)
    held_letters = {doc[:1] for doc in src.documents("heldout").values()}
    assert len(held_letters) == 3
    train_rows = _windows(src.sample(np.random.default_rng(0), 500, seq_len=16))
    assert {w[:1] for w in train_rows} == {doc[:1] for doc in src.documents("train").values()}
    eval_rows = _windows(src.eval_sets(seq_len=16)[src.name])
    assert {w[:1] for w in eval_rows} == held_letters
    assert all(len(set(w)) == 1 for w in train_rows + eval_rows)  # no window spans two documents


def test_loss_covers_every_real_token_and_never_pad(tiny_stdlib):
    src = TextSource(domain="python_code", root=tiny_stdlib, eval_fraction=0.3)
    batch = src.sample(np.random.default_rng(1), 200, seq_len=40)
    targets = batch.tokens[:, 1:]
    np.testing.assert_array_equal(batch.loss_mask, targets != PAD)
    ended = (targets == EOS).any(axis=1)
    assert ended.any() and not ended.all()  # short documents end inside the row
    for row in targets[ended]:
        eos = int(np.flatnonzero(row == EOS)[0])
        assert np.all(row[eos + 1 :] == PAD) and np.all(row[:eos] < 256)
    assert np.all(targets[~ended] < 256)  # a full window of a long document: bytes only


def test_a_missing_standard_library_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no Python standard library"):
        make_source("text", domain="python_code", root=str(tmp_path))
    (tmp_path / "os.py").write_text("x = 1\n")
    with pytest.raises(DataError, match="found 0 documents"):
        make_source("text", domain="python_code", root=str(tmp_path))
    with pytest.raises(DataError, match=r"needs .*topics\.py"):
        make_source("text", domain="python_prose", root=str(tmp_path))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"domain": "shakespeare"}, "option domain"),
        ({"domain": "python_code", "eval_fraction": 1.0}, "holds out all"),
        ({"domain": "python_code", "eval_fraction": 0}, "eval_fraction"),
        ({"domain": "python_code", "eval_size": 0}, "eval_size"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(DataError, match=message):
        make_source("text", **options)

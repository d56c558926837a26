"""The byte-level vocabulary shared by every source of the harness.

Bytes 0-255 stand for themselves; three special tokens follow: ``PAD = 256`` (right padding,
never in a loss), ``BOS = 257`` (starts every row) and ``EOS = 258`` (ends every example).
Text is encoded as its UTF-8 bytes, so every task renders its examples as plain text with
visible delimiters and every text domain needs no tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from scalelab.errors import DataError

__all__ = ["BOS", "EOS", "PAD", "VOCAB_SIZE", "decode", "encode"]

PAD = 256
BOS = 257
EOS = 258
VOCAB_SIZE = 259


def encode(text: str) -> np.ndarray:
    """Encode text as its UTF-8 bytes, one token per byte.

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    numpy.ndarray
        1-D ``int64`` array of token ids in ``0..255`` (no BOS/EOS added).

    Examples
    --------
    >>> encode("1+1=").tolist()
    [49, 43, 49, 61]
    """
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def decode(ids: Iterable[int] | np.ndarray) -> str:
    """Decode token ids back to text, dropping PAD, BOS and EOS.

    Byte sequences that are not valid UTF-8 (a chunk cut inside a multi-byte character)
    decode to U+FFFD instead of failing.

    Parameters
    ----------
    ids : iterable of int or numpy.ndarray
        Token ids in ``0..VOCAB_SIZE-1``.

    Returns
    -------
    str
        The decoded text.

    Raises
    ------
    DataError
        If an id is outside the vocabulary.

    Examples
    --------
    >>> decode([BOS, 104, 105, EOS, PAD])
    'hi'
    """
    arr = np.asarray(ids, dtype=np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= VOCAB_SIZE):
        bad = arr[(arr < 0) | (arr >= VOCAB_SIZE)][0]
        raise DataError(
            f"token id {int(bad)} is outside the byte vocabulary 0..{VOCAB_SIZE - 1}; "
            "decode only ids produced by scalelab.harness sources"
        )
    return arr[arr < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")

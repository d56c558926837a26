"""The byte-level vocabulary shared by every source of the harness.

Bytes 0-255 stand for themselves; three special tokens follow: ``PAD = 256`` (right padding,
never in a loss), ``BOS = 257`` (starts every row) and ``EOS = 258`` (ends every example).
Text is encoded as its UTF-8 bytes, so every task renders its examples as plain text with
visible delimiters and every text domain needs no tokenizer.

A source may add symbols of its own after the specials: ids ``FIRST_SYMBOL + k`` (``k >= 0``),
e.g. one token per residue of the modular task (Power et al. 2022 give each number its own
token). Such a source declares ``vocab_size = FIRST_SYMBOL + n_symbols`` and the model gets
that many embedding rows; :func:`decode` shows symbol ``k`` as ``<k>``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from scalelab.errors import DataError

__all__ = ["BOS", "EOS", "FIRST_SYMBOL", "PAD", "VOCAB_SIZE", "decode", "encode"]

PAD = 256
BOS = 257
EOS = 258
VOCAB_SIZE = 259
#: id of the first source-defined symbol (symbol ``k`` is ``FIRST_SYMBOL + k``)
FIRST_SYMBOL = VOCAB_SIZE


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
    decode to U+FFFD instead of failing. Source-defined symbols (ids ``>= FIRST_SYMBOL``)
    decode as ``<k>``.

    Parameters
    ----------
    ids : iterable of int or numpy.ndarray
        Token ids >= 0: bytes, specials, or source-defined symbols.

    Returns
    -------
    str
        The decoded text.

    Raises
    ------
    DataError
        If an id is negative.

    Examples
    --------
    >>> decode([BOS, 104, 105, EOS, PAD])
    'hi'
    >>> decode([BOS, FIRST_SYMBOL + 3, 43, FIRST_SYMBOL + 5, 61])
    '<3>+<5>='
    """
    arr = np.asarray(ids, dtype=np.int64).ravel()
    if arr.size and arr.min() < 0:
        raise DataError(
            f"token id {int(arr.min())} is negative; decode only ids produced by scalelab.harness sources"
        )
    out: list[str] = []
    run: list[int] = []
    for t in arr.tolist():
        if t < 256:
            run.append(t)
        elif t >= FIRST_SYMBOL:  # PAD, BOS and EOS are dropped without breaking a byte run
            if run:
                out.append(bytes(run).decode("utf-8", errors="replace"))
                run = []
            out.append(f"<{t - FIRST_SYMBOL}>")
    if run:
        out.append(bytes(run).decode("utf-8", errors="replace"))
    return "".join(out)

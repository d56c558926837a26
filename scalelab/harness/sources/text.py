"""Byte-level text domains built from text that ships with every CPython install.

Nothing is downloaded: the documents are read from the running interpreter's standard library
(``sysconfig.get_paths()["stdlib"]``, or ``root``), which is distributed under the Python
Software Foundation License (its ``LICENSE.txt`` sits in that directory); scalelab does not
copy it. Domains:

``python_code``
    The source of a fixed list of pure-Python stdlib modules (``argparse``, ``csv``,
    ``textwrap``, ...); one document per module.
``python_docstrings``
    The docstrings (module, class, function) of a second, disjoint list of modules, extracted
    with :mod:`ast`; one document per module: English prose about code.
``python_prose``
    The Python Language Reference as plain text, from ``pydoc_data/topics.py`` (the text
    ``help("assert")`` shows); one document per topic.

Modules missing from an install are skipped (the list is chosen from modules present in
CPython 3.10 to 3.13); the contents, and so the losses, depend on the Python version, which
:attr:`TextSource.corpus_digest` identifies.

Documents are split into training and held-out documents by the seed (``eval_fraction`` of
them held out, at least one). Each document is its bytes followed by ``EOS``. A training row is
``BOS`` followed by a random window of ``seq_len - 1`` tokens of a training document (every
window start equally likely); a document shorter than that fills one row, padded with ``PAD``.
The eval set ``text/<domain>`` is ``eval_size`` non-overlapping windows tiling the held-out
documents, fixed by the seed (and ``seq_len``). The loss covers every real token; text has no
accuracy.
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
from functools import lru_cache
from pathlib import Path

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.sources.base import (
    BaseSource,
    Batch,
    check_count,
    opt_choice,
    opt_float,
    opt_int,
    opt_name,
    opt_seed,
    rng_for,
)
from scalelab.harness.vocab import BOS, EOS, PAD

__all__ = ["CODE_MODULES", "DOCSTRING_MODULES", "DOMAINS", "TextSource", "load_documents"]

DOMAINS = ("python_code", "python_docstrings", "python_prose")

CODE_MODULES = (
    "argparse", "ast", "bisect", "calendar", "cmd", "codecs", "colorsys", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "difflib", "enum", "fileinput", "fnmatch",
    "fractions", "functools", "getopt", "gettext", "glob", "graphlib", "gzip", "heapq", "hmac",
    "ipaddress", "keyword", "linecache", "numbers", "operator", "optparse", "pprint", "queue",
    "quopri", "random", "reprlib", "sched", "secrets", "shlex", "string", "textwrap", "timeit",
    "tokenize", "traceback", "uuid", "weakref", "zipapp",
)

DOCSTRING_MODULES = (
    "base64", "code", "codeop", "datetime", "dis", "filecmp", "ftplib", "imaplib", "inspect",
    "locale", "lzma", "mailbox", "mimetypes", "netrc", "os", "pickle", "pkgutil", "platform",
    "plistlib", "poplib", "runpy", "selectors", "shutil", "smtplib", "socket", "ssl",
    "statistics", "struct", "subprocess", "tabnanny", "tarfile", "tempfile", "threading",
    "trace", "tracemalloc", "types", "typing", "warnings", "wave",
)

_MIN_DOCUMENTS = 4


def _stdlib_root(root: str | None, source: str) -> Path:
    path = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    if not (path / "os.py").is_file():
        raise DataError(
            f"source {source!r}: no Python standard library at {path} (os.py is missing); "
            "pass root=<a CPython Lib directory> or use a task source"
        )
    return path


def _docstrings(text: str) -> str:
    tree = ast.parse(text)
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    docs = [ast.get_docstring(n, clean=True) for n in nodes]
    return "\n\n".join(d for d in docs if d)


def _topics(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "topics" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
    raise DataError(f"{path} defines no topics dictionary; use domain python_code or python_docstrings")


@lru_cache(maxsize=8)
def load_documents(domain: str, root: str) -> tuple[tuple[str, bytes], ...]:
    """The documents of a domain as ``(name, UTF-8 bytes)`` pairs, in a fixed order.

    Parameters
    ----------
    domain : str
        One of :data:`DOMAINS`.
    root : str
        A CPython ``Lib`` directory (the standard library).

    Raises
    ------
    DataError
        If the files are missing or too few documents are found.
    """
    base = Path(root)
    docs: list[tuple[str, bytes]] = []
    if domain == "python_prose":
        path = base / "pydoc_data" / "topics.py"
        if not path.is_file():
            raise DataError(f"text domain python_prose needs {path}, which this Python lacks; use python_code")
        docs = [(k, v.encode("utf-8")) for k, v in sorted(_topics(path).items()) if v.strip()]
    else:
        modules = CODE_MODULES if domain == "python_code" else DOCSTRING_MODULES
        for module in modules:
            path = base / f"{module}.py"
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            if domain == "python_docstrings":
                try:
                    text = _docstrings(text)
                except SyntaxError:
                    continue
            if text.strip():
                docs.append((module, text.encode("utf-8")))
    if len(docs) < _MIN_DOCUMENTS:
        raise DataError(
            f"text domain {domain} found {len(docs)} documents under {root} (need {_MIN_DOCUMENTS}); "
            "point root at a complete CPython Lib directory"
        )
    return tuple(docs)


def _pack_windows(flat: np.ndarray, begin: np.ndarray, take: np.ndarray, seq_len: int) -> Batch:
    """Rows ``BOS + flat[begin : begin + take]``, right-padded with ``PAD`` to ``seq_len``."""
    pos = np.arange(seq_len, dtype=np.int64)[None, :]
    inside = (pos >= 1) & (pos <= take[:, None])
    gather = np.where(inside, begin[:, None] + pos - 1, 0)
    tokens = np.where(inside, flat[gather].astype(np.int64), PAD)
    tokens[:, 0] = BOS
    return Batch(tokens, tokens[:, 1:] != PAD)


class TextSource(BaseSource):
    """One byte-level text domain from the standard library, split by document.

    Parameters
    ----------
    domain : str
        ``python_code``, ``python_docstrings`` or ``python_prose``.
    seed : int
        Fixes the document split and the eval windows.
    eval_fraction : float
        Fraction of the documents held out, in ``(0, 1)`` (at least one document each side).
    eval_size : int
        Number of eval windows (fewer if the held-out documents are short).
    root : str, optional
        Directory to read the standard library from (default: the running interpreter's).
    name : str, optional
        Source and eval-set name (default ``"text/<domain>"``).

    Examples
    --------
    >>> src = TextSource(domain="python_code", eval_size=4)
    >>> src.eval_sets(seq_len=64)["text/python_code"].tokens.shape
    (4, 64)
    """

    registry_kind = "text"
    kind = "text"

    def __init__(
        self,
        *,
        domain: str,
        seed: int = 0,
        eval_fraction: float = 0.2,
        eval_size: int = 64,
        root: str | None = None,
        name: str | None = None,
    ) -> None:
        domain = opt_choice("text", "domain", domain, DOMAINS)
        self.name = opt_name(f"text/{domain}", name)
        self.domain = domain
        self.seed = opt_seed(self.name, seed)
        eval_fraction = opt_float(self.name, "eval_fraction", eval_fraction, 0.0, 1.0, open_low=True)
        self.eval_size = opt_int(self.name, "eval_size", eval_size, low=1)
        if root is not None and not isinstance(root, str):
            raise DataError(f"source {self.name!r}: option root must be a directory path, got {root!r}")
        self._set_options(
            domain=domain, seed=self.seed, eval_fraction=eval_fraction, eval_size=self.eval_size,
            root=root, name=self.name,
        )
        docs = load_documents(domain, str(_stdlib_root(root, self.name)))
        n_eval = max(1, round(eval_fraction * len(docs)))
        if n_eval >= len(docs):
            raise DataError(
                f"source {self.name!r}: eval_fraction={eval_fraction} holds out all {len(docs)} documents; lower it"
            )
        order = rng_for(self.seed, 0).permutation(len(docs))
        self._docs = docs
        self._heldout = np.sort(order[:n_eval])
        self._train = np.sort(order[n_eval:])
        self.corpus_digest = hashlib.sha256(b"\0".join(name.encode() + b"\0" + body for name, body in docs)).hexdigest()
        self._train_flat, self._train_start, self._train_len = self._concat(self._train)
        self._held_flat, self._held_start, self._held_len = self._concat(self._heldout)

    def _concat(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids of the documents at ``index``, each followed by EOS, with starts and lengths."""
        pieces = [np.append(np.frombuffer(self._docs[i][1], dtype=np.uint8).astype(np.int16), EOS) for i in index]
        length = np.array([len(p) for p in pieces], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
        return np.concatenate(pieces), start, length

    def documents(self, split: str) -> dict[str, bytes]:
        """Document name -> bytes for ``split``: ``"train"`` or ``"heldout"``."""
        split = opt_choice(self.name, "split", split, ["train", "heldout"])
        index = self._train if split == "train" else self._heldout
        return {self._docs[i][0]: self._docs[i][1] for i in index}

    def min_seq_len(self) -> int:
        """Any row width from 2 works for text."""
        return 2

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` random windows of ``seq_len - 1`` tokens from training documents."""
        seq_len = self._fit(seq_len)
        n = check_count(n, self.name)
        window = seq_len - 1
        starts_per_doc = np.maximum(self._train_len - window, 0) + 1
        cum = np.cumsum(starts_per_doc)
        u = rng.integers(0, int(cum[-1]), size=n)
        doc = np.searchsorted(cum, u, side="right")
        offset = u - (cum[doc] - starts_per_doc[doc])
        take = np.minimum(window, self._train_len[doc] - offset)
        return _pack_windows(self._train_flat, self._train_start[doc] + offset, take, window + 1)

    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """``{name: eval_size fixed windows of held-out documents}``."""
        seq_len = self._fit(seq_len)
        window = seq_len - 1
        per_doc = -(-self._held_len // window)  # ceil: windows tiling each document
        doc = np.repeat(np.arange(len(per_doc)), per_doc)
        offset = (np.arange(len(doc)) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)) * window
        pick = np.sort(rng_for(self.seed, 1, window).choice(len(doc), size=min(self.eval_size, len(doc)), replace=False))
        doc, offset = doc[pick], offset[pick]
        take = np.minimum(window, self._held_len[doc] - offset)
        return {self.name: _pack_windows(self._held_flat, self._held_start[doc] + offset, take, window + 1)}

"""The training harness: skill tasks, text domains, mixtures and curricula (numpy), and the
torch model and trainer.

Importing ``scalelab.harness`` loads only the numpy data side re-exported here (vocabulary,
sources, schedules, data stream); the torch modules (``scalelab.harness.model``, the trainer)
are imported explicitly, so the data side and the CLI start without torch. See
``docs/design/harness.md`` for the interfaces.
"""

from __future__ import annotations

from scalelab.harness.mixture import (
    Curriculum,
    DataStream,
    Mixture,
    Phase,
    Schedule,
    schedule_from_config,
)
from scalelab.harness.sources import Batch, EvalSet, Source, available_sources, make_source
from scalelab.harness.vocab import BOS, EOS, PAD, VOCAB_SIZE, decode, encode

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "VOCAB_SIZE",
    "Batch",
    "Curriculum",
    "DataStream",
    "EvalSet",
    "Mixture",
    "Phase",
    "Schedule",
    "Source",
    "available_sources",
    "decode",
    "encode",
    "make_source",
    "schedule_from_config",
]

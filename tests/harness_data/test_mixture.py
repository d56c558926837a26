"""Mixtures, curricula and the deterministic data stream: purity, weights, validation."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.mixture import Curriculum, DataStream, Mixture, Phase, schedule_from_config
from scalelab.harness.sources import make_source
from scalelab.harness.vocab import decode


@pytest.fixture(scope="module")
def sources():
    return {
        "modadd": make_source("modular", p=11, train_fraction=0.5),
        "parity": make_source("parity", n_tasks=3, n_bits=8, k=2, eval_size=8),
        "lego/1": make_source("compositional", max_depth=2, depths=[1], eval_size=8),
        "lego/2": make_source("compositional", max_depth=2, depths=[2], eval_size=8),
    }


def _origin(row: np.ndarray) -> str:
    """Which source rendered a row, recognised from its text."""
    text = decode(row)
    if "|" in text:
        return "parity"
    if "?" in text:
        body, query = text[: text.index("?")].rsplit(";", 1)
        literal = next(c for c in body.split(";") if c.endswith("1"))
        return "lego/1" if literal.startswith(query) else "lego/2"
    return "modadd"


def test_batches_are_a_pure_function_of_data_seed_and_step(sources):
    mix = Mixture({"modadd": 1, "parity": 2})
    stream = DataStream(sources, mix, data_seed=7)
    late_first, ids_first = stream.batch(step=9, batch_size=32, seq_len=20)
    for step in range(9):  # the order of calls does not matter (resume needs only the step)
        stream.batch(step, 32, 20)
    late_again, ids_again = DataStream(sources, mix, data_seed=7).batch(9, 32, 20)
    np.testing.assert_array_equal(late_first.tokens, late_again.tokens)
    np.testing.assert_array_equal(late_first.loss_mask, late_again.loss_mask)
    np.testing.assert_array_equal(late_first.answer_mask, late_again.answer_mask)
    np.testing.assert_array_equal(ids_first, ids_again)
    other_seed, _ = DataStream(sources, mix, data_seed=8).batch(9, 32, 20)
    other_step, _ = stream.batch(10, 32, 20)
    assert not np.array_equal(other_seed.tokens, late_first.tokens)
    assert not np.array_equal(other_step.tokens, late_first.tokens)


def test_source_ids_say_where_each_row_comes_from_and_follow_the_weights(sources):
    stream = DataStream(sources, Mixture({"modadd": 1, "parity": 3, "lego/2": 0}), data_seed=0)
    assert stream.names == ("lego/1", "lego/2", "modadd", "parity")
    counts = np.zeros(4)
    for step in range(40):
        batch, ids = stream.batch(step, 50, 20)
        assert [_origin(r) for r in batch.tokens] == [stream.names[i] for i in ids]
        counts += np.bincount(ids, minlength=4)
    assert counts[0] == counts[1] == 0
    assert abs(counts[3] / counts.sum() - 0.75) < 0.03
    assert stream.weights_at(0) == {"lego/1": 0.0, "lego/2": 0.0, "modadd": 0.25, "parity": 0.75}


def test_a_curriculum_switches_weights_at_its_phase_boundaries(sources):
    curriculum = Curriculum([Phase({"lego/1": 1}, steps=3), Phase({"lego/2": 1}, fraction=0.5), Phase({"lego/1": 1, "lego/2": 1})])
    assert curriculum.boundaries(10) == [3, 8, 10]
    stream = DataStream(sources, curriculum, data_seed=0, total_steps=10)
    phases = {step: {_origin(r) for r in stream.batch(step, 40, 20)[0].tokens} for step in range(10)}
    assert all(phases[s] == {"lego/1"} for s in range(3))
    assert all(phases[s] == {"lego/2"} for s in range(3, 8))
    assert phases[8] == phases[9] == {"lego/1", "lego/2"}
    with pytest.raises(DataError, match="past the curriculum's end"):
        stream.batch(10, 4, 20)


def test_eval_sets_gather_every_source_and_merge_identical_duplicates(sources):
    lego_all = make_source("compositional", max_depth=2, eval_size=8)
    stream = DataStream({**sources, "lego": lego_all}, Mixture({"modadd": 1}), data_seed=0)
    evals = stream.eval_sets(seq_len=20)
    assert set(evals) == {"modadd", "modadd/train", "parity/0", "parity/1", "parity/2", "lego/1", "lego/2"}
    assert evals["lego/2"].source == "lego" and evals["parity/1"].kind == "task"
    clash = make_source("compositional", max_depth=2, eval_size=8, seed=9, name="lego9")
    with pytest.raises(DataError, match="both define eval set 'lego/1' with different examples"):
        DataStream({**sources, "lego9": clash}, Mixture({"modadd": 1}), data_seed=0).eval_sets(20)
    assert stream.min_seq_len() == max(s.min_seq_len() for s in stream.sources.values())


def test_schedules_round_trip_through_their_config_form():
    for schedule in (
        Mixture({"a": 1.0, "b": 3.0}),
        Curriculum([Phase({"a": 1}, steps=5), Phase({"b": 1}, fraction=0.5), Phase({"a": 1, "b": 1})]),
    ):
        assert schedule_from_config(schedule.config()) == schedule
    assert schedule_from_config({"source": "a"}) == Mixture({"a": 1.0})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Mixture({}), "mixture is empty"),
        (lambda: Mixture({"modadd": -1, "parity": 2}), "negative"),
        (lambda: Mixture({"modadd": 0.0}), "sum to 0"),
        (lambda: Mixture({"modadd": float("inf")}), "finite number"),
        (lambda: Mixture({"modadd": True}), "finite number"),
        (lambda: Phase({"modadd": 0}, steps=5), "sum to 0"),
        (lambda: Phase({"modadd": 1}, steps=0), "steps=0, so no data"),
        (lambda: Phase({"modadd": 1}, steps=5, fraction=0.5), "both steps and fraction"),
        (lambda: Phase({"modadd": 1}, fraction=1.5), "fraction=1.5"),
        (lambda: Curriculum([]), "no phases"),
        (lambda: Curriculum([Phase({"a": 1}), Phase({"b": 1}, steps=3)]), "only the last phase may"),
        (lambda: Curriculum([Phase({"a": 1}, steps=5)]).boundaries(10), "cover 5 steps but the run has 10"),
        (lambda: Curriculum([Phase({"a": 1}, steps=10), Phase({"b": 1}, steps=5)]).boundaries(10), "phase 1 gets no steps"),
        (lambda: Curriculum([Phase({"a": 1}, fraction=0.001), Phase({"b": 1})]).boundaries(100), "phase 0 gets no steps"),
        (lambda: Curriculum([Phase({"a": 1}, fraction=0.5), Phase({"b": 1})]).boundaries(), "give total_steps"),
        (lambda: schedule_from_config({"mixture": {"a": 1}, "source": "a"}), "exactly one of"),
        (lambda: schedule_from_config({"curriculum": [{"weights": {"a": 1}, "step": 3}]}), "phase 0 must be a table"),
        (lambda: schedule_from_config({"uniform": ["a"]}), "unknown schedule"),
    ],
)
def test_schedule_validation_errors(build, message):
    with pytest.raises(DataError, match=message):
        build()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: DataStream({}, Mixture({"a": 1}), 0), "no sources"),
        (lambda s: DataStream(s, Mixture({"modadd": 1, "text/code": 1}), 0), "unknown source.*'text/code'"),
        (lambda s: DataStream({"modular": s["modadd"]}, Mixture({"modular": 1}), 0), "build it with name='modular'"),
        (lambda s: DataStream(s, Mixture({"modadd": 1}), -1), "data_seed"),
        (lambda s: DataStream(s, {"modadd": 1}, 0), "Mixture or Curriculum"),
        (lambda s: DataStream(s, Curriculum([Phase({"modadd": 1}, steps=5)]), 0, total_steps=6), "cover 5 steps"),
        (lambda s: DataStream(s, Curriculum([Phase({"modadd": 1}, fraction=1.0)]), 0), "give total_steps"),
        (lambda s: DataStream(s, Mixture({"modadd": 1}), 0).batch(-1, 4, 20), "step"),
        (lambda s: DataStream(s, Mixture({"modadd": 1}), 0).batch(0, 0, 20), "batch_size"),
        (lambda s: DataStream(s, Mixture({"parity": 1}), 0).batch(0, 4, 10), "seq_len >= 16"),
    ],
)
def test_data_stream_validation_errors(sources, make, message):
    with pytest.raises(DataError, match=message):
        make(sources)

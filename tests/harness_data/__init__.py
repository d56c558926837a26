"""Tests of the harness data side: vocabulary, sources, mixtures and the data stream."""

"""Recall quality in process: the protocols of docs/evaluation.md, the metrics, the baselines
and the systems that use the towers, all built from the profiles of `streams.recall`;
`tuning` chooses a recipe's settings on the valid window and `training` builds what
`nearline train` saves (towers, item-to-item table, recipe).

Imports: `streams.recall` and `towers`; never Kafka, Redis or `streams.worker`.
"""

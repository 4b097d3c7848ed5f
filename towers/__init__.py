"""towers: the two-tower model, pure PyTorch and NumPy (no Kafka, no Redis, no Faiss).

`data` (interactions, the temporal split), `datasets/` (readers and the market
simulator), `sequence` (a user's recency-weighted history), `vocab` and `features` (the
one encoding of ids, context and sequences for training and serving), `model` (user and
item towers), `loss` (in-batch InfoNCE or full softmax, logQ correction, hard negatives),
`examples` and `train` (the training loop, early stopping on `validate`), `checkpoint`
(safetensors + JSON + a sha256 manifest, never a pickle), `versions` (version names),
`errors`.
"""

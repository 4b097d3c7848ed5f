"""The recall step: channels, fusion and filters, shared by the workers and the evaluator.

`channels` (the `Channel` protocol, popularity, repeat purchase), `itemcf`,
`two_tower` (user tower + item index of one checkpoint; loads torch and faiss when
imported), `returning`, `ranked_popularity` (the board's rankings as a channel), `merge`
(fusion), `recaller` (channels + merge + filters), `history` (in-memory histories),
`profiles` (the starting recipe of each profile), `repurchase` and `repurchase_fit`
(time-aware repurchase and explore on one scale), `recipe` (the settings a checkpoint
carries), `tifu` (TIFU-KNN, a baseline).

Imports: `towers` and `index`; never faust, Redis, Kafka or the rest of `streams`.
"""

from streams.recall.channels import Candidates, Channel
from streams.recall.recaller import Filters, Recaller, RecallerSystem, RecallList

__all__ = ["Candidates", "Channel", "Filters", "RecallList", "Recaller", "RecallerSystem"]

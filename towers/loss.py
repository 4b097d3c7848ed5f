"""Retrieval losses: sampled softmax (in-batch negatives, InfoNCE, logQ) or full softmax.

In-batch negatives are sampled in proportion to item popularity, so without correction
the model learns to push popular items down. Subtracting log q(item) from each logit
(Yi et al., 2019) makes the loss an unbiased estimate of the full softmax. A small
catalogue can afford the full softmax itself: every item is a negative, no estimate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from towers.model import TwoTower

__all__ = ["RetrievalLoss"]


class RetrievalLoss(nn.Module):
    """Wraps a `TwoTower` with its training objective."""

    log_q: torch.Tensor  # (n_items,) log sampling probability, or empty: a registered buffer

    def __init__(self, model: TwoTower, *, temperature: float,
                 log_q: torch.Tensor | None) -> None:
        super().__init__()
        assert temperature > 0, "temperature must be positive"
        self.model = model
        self.temperature = temperature
        self.register_buffer("log_q", log_q if log_q is not None else torch.zeros(0))

    def forward(
        self, user_vecs: torch.Tensor, pos_vecs: torch.Tensor, pos_items: torch.Tensor, *,
        shared_neg: tuple[torch.Tensor, torch.Tensor] | None = None,
        hard_neg: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mean InfoNCE loss of B (user, positive item) pairs.

        user_vecs, pos_vecs: (B, d); pos_items: (B,) item ids. shared_neg: (R, d) vectors
        and (R,) ids of uniformly sampled negatives for every row; hard_neg: (B, d) and (B,)
        one hard negative per row (e.g. same category as the positive).
        """
        t = self.temperature
        logits = user_vecs @ pos_vecs.T / t  # (B, B)
        if self.log_q.numel():
            logits = logits - self.log_q[pos_items][None, :]
        # another row's positive that is the same item is not a negative
        same = pos_items[None, :] == pos_items[:, None]
        eye = torch.eye(len(pos_items), dtype=torch.bool)
        columns = [logits.masked_fill(same & ~eye, float("-inf"))]
        if shared_neg is not None:
            vecs, ids = shared_neg
            extra = user_vecs @ vecs.T / t  # (B, R)
            columns.append(extra.masked_fill(ids[None, :] == pos_items[:, None], float("-inf")))
        if hard_neg is not None:
            vecs, ids = hard_neg
            hard = (user_vecs * vecs).sum(-1, keepdim=True) / t  # (B, 1)
            columns.append(hard.masked_fill((ids == pos_items)[:, None], float("-inf")))
        labels = torch.arange(len(pos_items))
        return F.cross_entropy(torch.cat(columns, dim=1), labels)

    def full(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor, targets: torch.Tensor,
             *, masked: torch.Tensor | None = None) -> torch.Tensor:
        """Mean softmax loss over the whole catalogue.

        user_vecs: (B, d); item_vecs: (M, d) every catalogue item; targets: (B,) catalogue
        rows of the positives; masked: (B, M) True for items that are not candidates for
        that row (e.g. already seen where the seen filter removes them from the ranking).
        """
        logits = user_vecs @ item_vecs.T / self.temperature  # (B, M)
        if masked is not None:
            keep = torch.zeros_like(masked)
            keep[torch.arange(len(targets)), targets] = True  # never mask the positive
            logits = logits.masked_fill(masked & ~keep, float("-inf"))
        return F.cross_entropy(logits, targets)

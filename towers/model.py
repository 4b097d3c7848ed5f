"""Two-tower retrieval model: `UserTower`, `ItemTower` and the `TwoTower` holding both.

Both towers read the same item-id embedding table: the user tower pools the embeddings
of the items in the user's recency-weighted sequence, the item tower starts from the
item's own. Outputs are L2-normalised, so inner product = cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from towers.features import N_CTX_DENSE, N_ITEM_DENSE, N_USER_DENSE, ItemBatch, UserBatch

__all__ = ["ItemTower", "TowerConfig", "TowerOverrides", "TwoTower", "UserTower"]


@dataclass(frozen=True)
class TowerConfig:
    n_users: int  # user vocabulary size (padding + OOV buckets + known users)
    n_items: int  # item vocabulary size
    n_categories: int
    n_price_bands: int
    n_regions: int
    n_half_lives: int  # pooled sequence vectors per user (one per half-life)
    dim: int = 64  # output embedding size (the index dimension)
    emb_dim: int = 64  # input embedding size
    hidden: int = 256  # MLP width
    dropout: float = 0.1
    user_id_dropout: float = 0.2  # train the tower to work without the id (new users)
    use_user_id: bool = True


class TowerOverrides(TypedDict, total=False):
    """The `TowerConfig` fields a caller chooses; the sizes come from the feature spec."""

    dim: int
    emb_dim: int
    hidden: int
    dropout: float
    user_id_dropout: float
    use_user_id: bool


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out))


class ItemTower(nn.Module):
    def __init__(self, config: TowerConfig, item_emb: nn.Embedding) -> None:
        super().__init__()
        e = config.emb_dim
        self.item_emb = item_emb
        self.cat_emb = nn.Embedding(config.n_categories, e // 2, padding_idx=0)
        self.band_emb = nn.Embedding(config.n_price_bands, e // 4, padding_idx=0)
        self.dense = nn.Linear(N_ITEM_DENSE, e // 4)
        self.mlp = _mlp(e + e // 2 + e // 4 + e // 4, config.hidden, config.dim, config.dropout)
        self.skip = nn.Linear(e, config.dim, bias=False)

    def forward(self, item: torch.Tensor, category: torch.Tensor, band: torch.Tensor,
                dense: torch.Tensor) -> torch.Tensor:
        ie = self.item_emb(item)  # (M, e)
        x = torch.cat([ie, self.cat_emb(category), self.band_emb(band), self.dense(dense)], -1)
        return F.normalize(self.mlp(x) + self.skip(ie), dim=-1)  # (M, dim)


class UserTower(nn.Module):
    def __init__(self, config: TowerConfig, item_emb: nn.Embedding) -> None:
        super().__init__()
        e = config.emb_dim
        self.config = config
        self.item_emb = item_emb
        self.user_emb = nn.Embedding(config.n_users, e, padding_idx=0)
        self.region_emb = nn.Embedding(config.n_regions, e // 4, padding_idx=0)
        self.hour_emb = nn.Embedding(24, e // 8)
        self.weekday_emb = nn.Embedding(7, e // 8)
        self.dense = nn.Linear(N_USER_DENSE + N_CTX_DENSE, e // 4)
        pooled = config.n_half_lives * e
        d_in = pooled + e + e // 4 + e // 8 + e // 8 + e // 4
        self.mlp = _mlp(d_in, config.hidden, config.dim, config.dropout)
        self.skip = nn.Linear(pooled, config.dim, bias=False)

    def forward(self, user: torch.Tensor, region: torch.Tensor, seq_items: torch.Tensor,
                seq_weights: torch.Tensor, dense: torch.Tensor, hour: torch.Tensor,
                weekday: torch.Tensor, ctx_dense: torch.Tensor) -> torch.Tensor:
        seq = self.item_emb(seq_items)  # (B, N, e)
        pooled = torch.einsum("bhn,bne->bhe", seq_weights, seq).flatten(1)  # (B, H*e)
        if self.config.use_user_id:
            uid = self.user_emb(user)  # (B, e)
            if self.training and self.config.user_id_dropout > 0:
                uid = uid * (torch.rand(user.shape[0], 1) >= self.config.user_id_dropout)
        else:
            uid = pooled.new_zeros(user.shape[0], self.user_emb.embedding_dim)
        x = torch.cat([pooled, uid, self.region_emb(region), self.hour_emb(hour),
                       self.weekday_emb(weekday), self.dense(torch.cat([dense, ctx_dense], -1))],
                      -1)
        return F.normalize(self.mlp(x) + self.skip(pooled), dim=-1)  # (B, dim)


class TwoTower(nn.Module):
    def __init__(self, config: TowerConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.n_items, config.emb_dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.user_tower = UserTower(config, self.item_emb)
        self.item_tower = ItemTower(config, self.item_emb)

    def users(self, batch: UserBatch) -> torch.Tensor:
        t = torch.from_numpy
        return self.user_tower(t(batch.user), t(batch.region), t(batch.seq_items),
                               t(batch.seq_weights), t(batch.dense), t(batch.hour),
                               t(batch.weekday), t(batch.ctx_dense))

    def items(self, batch: ItemBatch, rows: np.ndarray | None = None) -> torch.Tensor:
        sel = (lambda a: a) if rows is None else (lambda a: a[rows])
        t = torch.from_numpy
        return self.item_tower(t(sel(batch.item)), t(sel(batch.category)),
                               t(sel(batch.price_band)), t(sel(batch.dense)))

    @torch.no_grad()
    def embed_users(self, batch: UserBatch) -> np.ndarray:
        self.eval()
        return self.users(batch).numpy().astype(np.float32)

    @torch.no_grad()
    def embed_items(self, batch: ItemBatch, *, batch_size: int = 8192) -> np.ndarray:
        self.eval()
        n = len(batch.item)
        out = [self.items(batch, np.arange(i, min(i + batch_size, n)))
               for i in range(0, n, batch_size)]
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros(
            (0, self.config.dim), np.float32)

"""Training loop: two-tower training (full or sampled softmax), early stopping on valid.

Nothing here is specific to a data set: it takes a `Dataset`, splits it by time as
docs/evaluation.md says, trains on the train part and stops on the valid part.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Unpack

import numpy as np
import torch
from tqdm import tqdm

from towers.data import Dataset, temporal_split
from towers.examples import Examples, build_examples, latest_histories
from towers.features import (
    FeatureSettings,
    FeatureSpec,
    ItemBatch,
    ItemTable,
    encode_histories,
    encode_items,
    fit_feature_spec,
)
from towers.loss import RetrievalLoss
from towers.model import TowerConfig, TowerOverrides, TwoTower
from towers.validate import stream_hit_rate

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "train", "valid_recall"]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 512
    lr: float = 3e-3  # peak learning rate after warmup
    weight_decay: float = 1e-5
    warmup_frac: float = 0.05  # share of steps with linear warmup
    min_lr_frac: float = 0.05  # cosine decays to lr * min_lr_frac
    temperature: float = 0.03  # softmax temperature τ over cosine similarities
    logq: bool = True  # subtract log(item frequency) from in-batch logits
    random_negatives: int = 256  # uniformly sampled negatives shared by a batch (0 = off)
    hard_negatives: bool = False  # one same-category negative per example
    # catalogues up to this size train with the full softmax (every item a negative, the
    # user's earlier items masked under the seen filter) instead of sampled negatives
    full_softmax_items: int = 5000
    patience: int = 2  # epochs without valid improvement before stopping
    eval_k: int = 50
    # early-stopping metric on the valid window: "stream" = HitRate@K of each valid event
    # ranked from the state just before it (the streaming protocol, many events, stable);
    # "offline" = Recall@K with the state frozen at the train/valid boundary (few users)
    early_stopping: str = "stream"
    refit: bool = True  # after early stopping, retrain on train+valid for the best epochs
    seed: int = 0
    threads: int = 2
    max_seconds: float | None = None  # wall-clock budget for one fit
    progress: bool = True

    def __post_init__(self) -> None:
        if self.early_stopping not in {"stream", "offline"}:
            raise ValueError(f"early_stopping must be 'stream' or 'offline', "
                             f"not {self.early_stopping!r}")


@dataclass
class TrainResult:
    model: TwoTower
    spec: FeatureSpec
    items: ItemTable  # the catalogue the item tower was fitted on
    config: TowerConfig
    metrics: dict[str, object] = field(default_factory=dict)


def _set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup_frac * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    floor = cfg.lr * cfg.min_lr_frac
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def tower_config(spec: FeatureSpec, **overrides: Unpack[TowerOverrides]) -> TowerConfig:
    return TowerConfig(
        n_users=spec.users.size, n_items=spec.items.size, n_categories=spec.categories.size,
        n_price_bands=spec.n_price_bands, n_regions=spec.regions.size,
        n_half_lives=len(spec.settings.half_lives_s), **overrides,
    )


class _Sampler:
    """Negatives for a batch: uniform over the catalogue, or same category as the target."""

    def __init__(self, spec: FeatureSpec, items: ItemBatch, rng: np.random.Generator) -> None:
        self.rng = rng
        self.n = len(items.item)
        order = np.argsort(items.category, kind="stable")
        cats = items.category[order]
        self.by_cat = order
        self.start = np.searchsorted(cats, items.category)  # per row: its category block
        self.count = np.searchsorted(cats, items.category, side="right") - self.start

    def uniform(self, r: int) -> np.ndarray:
        return self.rng.integers(0, self.n, size=r)

    def same_category(self, rows: np.ndarray) -> np.ndarray:
        pick = self.start[rows] + (self.rng.random(len(rows)) * self.count[rows]).astype(np.int64)
        return self.by_cat[pick]


def _log_q(items: ItemTable, item_batch: ItemBatch, n_items: int) -> torch.Tensor:
    counts = np.ones(n_items, dtype=np.float64)  # +1 smoothing, also for OOV rows
    counts[item_batch.item] += items.count
    return torch.from_numpy(np.log(counts / counts.sum())).float()


def valid_recall(model: TwoTower, spec: FeatureSpec, item_vecs: np.ndarray, items: ItemTable,
                 dataset: Dataset, history_rows: np.ndarray, target_rows: np.ndarray,
                 *, k: int) -> float:
    """Recall@k at the boundary: state from history rows, targets the target rows' items."""
    log = dataset.interactions
    histories = latest_histories(log, history_rows, max_len=spec.settings.seq_len)
    targets: dict[str, set[str]] = {}
    for u, i in zip(log.user[target_rows], log.item[target_rows], strict=True):
        if u in histories:
            targets.setdefault(u, set()).add(i)
    seen: dict[str, set[str]] = {}
    if dataset.seen_filter:
        for u, i in zip(log.user[history_rows], log.item[history_rows], strict=True):
            seen.setdefault(u, set()).add(i)
        targets = {u: t - seen.get(u, set()) for u, t in targets.items()}
        targets = {u: t for u, t in targets.items() if t}
    users = sorted(targets)
    if not users:
        return 0.0
    pos = {item: j for j, item in enumerate(items.ids.tolist())}
    total = 0.0
    for a in range(0, len(users), 1024):
        chunk = users[a:a + 1024]
        vecs = model.embed_users(encode_histories(spec, [histories[u] for u in chunk]))
        scores = vecs @ item_vecs.T  # (b, M)
        for r, u in enumerate(chunk):
            cols = [pos[i] for i in seen.get(u, ())]
            scores[r, cols] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        for r, u in enumerate(chunk):
            got = set(items.ids[top[r]].tolist())
            total += len(got & targets[u]) / len(targets[u])
    return total / len(users)


def _best_valid(history: list[dict[str, float]], cfg: TrainConfig) -> dict[str, float]:
    """Valid metrics of the selected epoch."""
    key = "valid_stream_hr" if cfg.early_stopping == "stream" else "valid_recall"
    scored = [h for h in history if key in h]
    if not scored:
        return {}
    best = max(scored, key=lambda h: h[key])
    return {f"valid_recall@{cfg.eval_k}": best["valid_recall"],
            f"valid_stream_hitrate@{cfg.eval_k}": best["valid_stream_hr"]}


@dataclass
class _Fit:
    model: TwoTower
    spec: FeatureSpec
    items: ItemTable
    best_epoch: int
    history: list[dict[str, float]]
    examples: int
    seconds: float


def train(dataset: Dataset, *, features: FeatureSettings | None = None,
          tower: TowerOverrides | None = None, config: TrainConfig | None = None
          ) -> TrainResult:
    """Fit towers on `dataset`: early stopping on valid Recall@K, then an optional refit."""
    config = config or TrainConfig()
    features = features or FeatureSettings()
    torch.set_num_threads(config.threads)
    split = temporal_split(dataset.interactions)
    first = _fit(dataset, split.train, split.valid, config.epochs, features, tower or {}, config)
    metrics: dict[str, object] = {
        "dataset": dataset.name, "split": split.sizes(), "best_epoch": first.best_epoch,
        "early_stopping": config.early_stopping,
        **_best_valid(first.history, config),
        "epochs": first.history, "examples": first.examples, "seconds": first.seconds,
        "examples_per_s": first.examples * len(first.history) / max(first.seconds, 1e-9),
    }
    final = first
    if config.refit and first.best_epoch > 0:
        rows = np.concatenate([split.train, split.valid])
        # the selected run's own learning-rate curve (its first best_epoch epochs of a
        # config.epochs schedule), not one squeezed into best_epoch epochs
        final = _fit(dataset, rows, None, first.best_epoch, features, tower or {}, config,
                     schedule_epochs=config.epochs)
        metrics["refit"] = {"epochs": first.best_epoch, "examples": final.examples,
                            "seconds": final.seconds}
    logger.info("trained %s: best epoch %s, %s", dataset.name, first.best_epoch,
                _best_valid(first.history, config))
    return TrainResult(model=final.model, spec=final.spec, items=final.items,
                       config=final.model.config, metrics=metrics)


def _fit(dataset: Dataset, rows: np.ndarray, valid_rows: np.ndarray | None, epochs: int,
         features: FeatureSettings, tower: TowerOverrides, cfg: TrainConfig, *,
         schedule_epochs: int | None = None) -> _Fit:
    _set_seed(cfg.seed)
    started = time.perf_counter()
    log = dataset.interactions
    history = log.take(rows)
    spec = fit_feature_spec(dataset, history, features)
    table = ItemTable.from_dataset(dataset, history)
    item_batch = encode_items(spec, table)
    examples = build_examples(spec, log, rows)
    assert len(examples) > 0, "no user has two distinct timestamps in the training rows"
    model = TwoTower(tower_config(spec, **tower))
    # unknown users share hash buckets that no training example reaches unless rare users
    # are folded into them: start those rows at zero, the "no id" the id dropout trains, so
    # a new user's embedding follows their history, not the random row of their bucket
    with torch.no_grad():
        model.user_tower.user_emb.weight[1:1 + spec.users.n_oov].zero_()
    log_q = _log_q(table, item_batch, spec.items.size) if cfg.logq else None
    objective = RetrievalLoss(model, temperature=cfg.temperature, log_q=log_q)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    sampler = _Sampler(spec, item_batch, rng)
    full = len(table) <= cfg.full_softmax_items
    steps = math.ceil(len(examples) / cfg.batch_size)
    offset = 1 + spec.items.n_oov  # item vocabulary index -> catalogue row
    history_log: list[dict[str, float]] = []
    best, best_epoch, best_state, stale = -1.0, 0, None, 0
    for epoch in range(epochs):
        perm = rng.permutation(len(examples))
        model.train()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{epochs}", disable=not cfg.progress,
                   leave=False, unit="step")
        total_loss = 0.0
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = _lr_at(epoch * steps + step, (schedule_epochs or epochs) * steps,
                                     cfg)
            rows_b = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            if full:
                loss = _full_loss(model, objective, spec, examples, rows_b, item_batch,
                                  offset, mask_seen=dataset.seen_filter)
            else:
                loss = _step_loss(model, objective, spec, examples, rows_b, item_batch,
                                  sampler, offset, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += loss.item()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        record = {"epoch": epoch + 1, "loss": total_loss / steps}
        if valid_rows is not None:
            item_vecs = model.embed_items(item_batch)
            record["valid_recall"] = valid_recall(model, spec, item_vecs, table, dataset, rows,
                                                  valid_rows, k=cfg.eval_k)
            record["valid_stream_hr"] = stream_hit_rate(model, spec, item_vecs, table, dataset,
                                                        rows, valid_rows, k=cfg.eval_k)
            score = record["valid_stream_hr" if cfg.early_stopping == "stream"
                           else "valid_recall"]
            if score > best:
                best, best_epoch, stale = score, epoch + 1, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        else:
            best_epoch = epoch + 1
        history_log.append(record)
        logger.info("epoch %s: %s", epoch + 1, record)
        if cfg.progress:
            tqdm.write(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4f}" for k, v in
                                                       record.items() if k != "epoch"))
        over_time = cfg.max_seconds and time.perf_counter() - started > cfg.max_seconds
        if stale >= cfg.patience or over_time:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return _Fit(model=model, spec=spec, items=table, best_epoch=best_epoch,
                history=history_log, examples=len(examples),
                seconds=time.perf_counter() - started)


def _step_loss(model: TwoTower, objective: RetrievalLoss, spec: FeatureSpec,
               examples: Examples, rows: np.ndarray, item_batch: ItemBatch,
               sampler: _Sampler, offset: int, cfg: TrainConfig) -> torch.Tensor:
    user_vecs = model.users(examples.user_batch(spec, rows))  # (B, d)
    target_rows = examples.target[rows] - offset  # catalogue rows of the positives
    pos_vecs = model.items(item_batch, target_rows)  # (B, d)
    pos_items = torch.from_numpy(examples.target[rows])
    shared = hard = None
    if cfg.random_negatives:
        neg_rows = sampler.uniform(cfg.random_negatives)
        shared = (model.items(item_batch, neg_rows), torch.from_numpy(item_batch.item[neg_rows]))
    if cfg.hard_negatives:
        hard_rows = sampler.same_category(target_rows)
        hard = (model.items(item_batch, hard_rows), torch.from_numpy(item_batch.item[hard_rows]))
    return objective(user_vecs, pos_vecs, pos_items, shared_neg=shared, hard_neg=hard)


def _full_loss(model: TwoTower, objective: RetrievalLoss, spec: FeatureSpec,
               examples: Examples, rows: np.ndarray, item_batch: ItemBatch, offset: int, *,
               mask_seen: bool) -> torch.Tensor:
    user_vecs = model.users(examples.user_batch(spec, rows))  # (B, d)
    item_vecs = model.items(item_batch)  # (M, d)
    targets = torch.from_numpy(examples.target[rows] - offset)
    masked = None
    if mask_seen:
        seq = examples.seq_items[rows] - offset  # (B, N) catalogue rows, < 0 = empty slot
        b, col = np.nonzero(seq >= 0)
        masked = torch.zeros(len(rows), len(item_vecs), dtype=torch.bool)
        masked[torch.from_numpy(b), torch.from_numpy(seq[b, col])] = True
    return objective.full(user_vecs, item_vecs, targets, masked=masked)

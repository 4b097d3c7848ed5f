"""CPU per recall list of the retail recipes, in process (no Kafka, no Redis).

    python -m bench.recall_cost [--items 100000] [--users 10000] [--batches 40] [--json PATH]

The same users are ranked, batch after batch, by the retail profile (repeat, popularity,
returning) and by a retail recipe (repurchase and explore fitted on the same synthetic
log), interleaved so machine noise falls on both alike. The two-tower channel is left
out: it is the same in both and would hide the difference. Prints microseconds of
process CPU time per list, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_model import retail_recipe, synthetic_dataset
from streams.recall.channels import PopularityChannel, PopularityConfig
from streams.recall.history import InMemoryHistories
from streams.recall.profiles import PROFILES, Profile, channels_of
from streams.recall.recaller import Filters, Recaller
from streams.recall.repurchase import RepurchaseModel


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--events-per-user", type=float, default=5.0)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch", type=int, default=25, help="users per batch")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    data = synthetic_dataset(n_items=a.items, n_users=a.users,
                             n_events=int(a.events_per_user * a.users))
    recipe = retail_recipe(data)
    popularity = PopularityChannel(PopularityConfig(live=True,
                                                    half_life_s=recipe.profile.popularity
                                                    .half_life_s))
    popularity.fit(data, data.interactions)
    histories = InMemoryHistories.from_interactions(data.interactions)

    def recaller(profile: Profile, model: RepurchaseModel | None) -> Recaller:
        channels = channels_of(profile, tower=None, itemcf=[], popularity=popularity,
                               repurchase=model)
        return Recaller(channels=channels, fallback=popularity, histories=histories,
                        merge=profile.merge, filters=Filters())

    systems = {"repeat": recaller(PROFILES["retail"], None),
               "repurchase": recaller(recipe.profile, recipe.repurchase)}
    spent = dict.fromkeys(systems, 0.0)
    users = histories.users()
    rng = np.random.default_rng(0)
    now = float(data.interactions.ts.max())
    for _ in range(a.batches):
        batch = [str(u) for u in rng.choice(users, a.batch, replace=False)]
        for name, system in systems.items():
            start = time.process_time()
            system.recall(batch, k=100, now=now)
            spent[name] += time.process_time() - start
    lists = a.batches * a.batch
    out: dict[str, Any] = {
        "lists": lists, "items": a.items, "users": a.users,
        "mean_history": round(float(np.mean([len(histories.get(u) or ()) for u in users])), 1),
        "cpu_us_per_list": {k: round(v / lists * 1e6, 1) for k, v in spent.items()}}
    out["ratio_repurchase_to_repeat"] = round(spent["repurchase"] / spent["repeat"], 3)
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    if a.json:
        a.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    return out


if __name__ == "__main__":
    main()

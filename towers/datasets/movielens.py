"""MovieLens ratings (GroupLens ml-100k and ml-1m folder formats)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from towers.data import Dataset, Interactions, ItemInfo
from towers.datasets.source import BadRows, OnError
from towers.errors import DataError

__all__ = ["read_movielens"]

logger = logging.getLogger(__name__)

# u.genre order: the 19 flags of u.item
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
# ml-1m age codes (lower bound of the bucket); ml-100k raw ages are bucketed the same way
AGE_BUCKETS = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49",
               50: "50-55", 56: "56+"}
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)


def read_movielens(path: str | Path, *, on_error: OnError = "raise") -> Dataset:
    """Read an ml-100k folder (u.data, u.item, u.user) or an ml-1m folder (*.dat).

    Every rating is one interaction of kind "rating" (quantity 1). Item category is the
    first genre; the user profile holds age bucket, gender, occupation and the first
    character of the zip code. The seen filter is on (docs/evaluation.md).
    """
    root = Path(path)
    root = root.parent if root.is_file() else root
    if (root / "u.data").is_file():
        name, sep, files = "ml100k", "|", ("u.data", "u.item", "u.user")
    elif (root / "ratings.dat").is_file():
        name, sep, files = "ml1m", "::", ("ratings.dat", "movies.dat", "users.dat")
    else:
        raise DataError("not a MovieLens folder: expected u.data (ml-100k) or ratings.dat "
                        "(ml-1m)", path=str(root))
    policy = BadRows(root / files[0], on_error=on_error)
    log = _ratings(root / files[0], "\t" if name == "ml100k" else "::", policy)
    skipped = policy.report()
    items = _optional(root / files[1], name, sep, on_error, skipped, _items)
    users = _optional(root / files[2], name, sep, on_error, skipped, _users)
    return Dataset(name=name, interactions=log, items=items, users=users, seen_filter=True,
                   skipped=skipped)


def _lines(path: Path, sep: str, width: int,
           policy: BadRows) -> Iterator[tuple[int, list[str]]]:
    """Line number and fields of every non-blank line that has `width` of them (latin-1 text)."""
    with open(path, encoding="latin-1") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(sep)
            if len(fields) != width:
                policy.bad(number, "wrong_columns", f"{len(fields)} fields, expected {width}")
                continue
            yield number, fields


def _ratings(path: Path, sep: str, policy: BadRows) -> Interactions:
    users: list[str] = []
    items: list[str] = []
    ts: list[float] = []
    ratings: list[float] = []
    for number, (user, item, rating, stamp) in _lines(path, sep, 4, policy):
        try:
            values = float(rating), float(stamp)
        except ValueError:
            policy.bad(number, "bad_number", f"rating {rating!r}, timestamp {stamp!r}")
            continue
        if not (user and item and math.isfinite(values[0]) and math.isfinite(values[1])):
            policy.bad(number, "bad_value", "empty id or non-finite number")
            continue
        users.append(user)
        items.append(item)
        ratings.append(values[0])
        ts.append(values[1])
    n = len(users)
    return Interactions.from_columns(user=users, item=items, ts=ts, kind=np.full(n, "rating"),
                                     rating=ratings)


def _optional(path: Path, name: str, sep: str, on_error: OnError, skipped: dict[str, int],
              read: Callable[[Path, str, str, BadRows], dict]) -> dict:
    """Read a metadata file when present; its skipped rows are counted as `file:reason`."""
    if not path.is_file():
        logger.warning("%s: not found, no %s metadata", path, name)
        return {}
    policy = BadRows(path, on_error=on_error)
    table = read(path, name, sep, policy)
    skipped.update({f"{path.name}:{k}": v for k, v in policy.report().items()})
    return table


def _items(path: Path, name: str, sep: str, policy: BadRows) -> dict[str, ItemInfo]:
    items: dict[str, ItemInfo] = {}
    if name == "ml1m":
        for _, (item, _title, genres) in _lines(path, sep, 3, policy):
            items[item] = ItemInfo(category=genres.split("|")[0])
        return items
    for number, fields in _lines(path, sep, 5 + len(GENRES_100K), policy):
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            policy.bad(number, "bad_value", "genre flags must be 0 or 1")
            continue
        first = next((g for g, f in zip(GENRES_100K, flags, strict=True) if f == "1"), "")
        items[fields[0]] = ItemInfo(category=first)
    return items


def _users(path: Path, name: str, sep: str, policy: BadRows) -> dict[str, dict[str, str]]:
    users: dict[str, dict[str, str]] = {}
    for number, fields in _lines(path, sep, 5, policy):
        if name == "ml1m":
            user, gender, age, occupation, zipcode = fields
        else:
            user, age, gender, occupation, zipcode = fields
        try:
            bucket = _age_bucket(int(age))
            if name == "ml1m":
                occupation = OCCUPATIONS_1M[int(occupation)]
        except (ValueError, IndexError):
            policy.bad(number, "bad_value", f"age {age!r}, occupation {occupation!r}")
            continue
        zone = zipcode[:1] if zipcode[:1].isdigit() else "other"
        users[user] = {"age": bucket, "gender": gender, "occupation": occupation, "zip": zone}
    return users


def _age_bucket(age: int) -> str:
    """The ml-1m bucket holding `age` (ml-1m codes are their own lower bounds)."""
    if age < 0:
        raise ValueError(age)
    return AGE_BUCKETS[max(low for low in AGE_BUCKETS if low <= max(age, 1))]

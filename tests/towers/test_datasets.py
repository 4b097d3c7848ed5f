"""Readers: MovieLens, Ta-Feng, the generic retail CSV, the project's JSON-lines events."""

from __future__ import annotations

import calendar
import gzip
import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from towers.data import Dataset
from towers.datasets import (
    ColumnMap,
    InvalidEvent,
    context_event,
    decode_event,
    interaction_event,
    item_event,
    read_events_jsonl,
    read_movielens,
    read_retail_csv,
    read_tafeng,
    validate_event,
    write_events_jsonl,
)
from towers.errors import DataError


def day(text: str) -> float:
    y, m, d = (int(x) for x in text.split("-"))
    return float(calendar.timegm((y, m, d, 0, 0, 0)))


# ---------------------------------------------------------------- MovieLens

FLAGS = "|".join(["0"] * 19)


def flags(*on: int) -> str:
    bits = ["0"] * 19
    for i in on:
        bits[i] = "1"
    return "|".join(bits)


@pytest.fixture()
def ml100k(tmp_path: Path) -> Path:
    (tmp_path / "u.data").write_text("1\t10\t4\t880000000\n2\t11\t2\t880000500\n"
                                     "1\t11\t5\t879999000\n")
    (tmp_path / "u.item").write_bytes(
        f"10|Caf\xe9 (1995)|01-Jan-1995||http://x|{flags(3, 4, 5)}\n"
        f"11|Heat (1995)|01-Jan-1995||http://y|{flags(1, 16)}\n"
        f"12|Nothing (1996)|||http://z|{FLAGS}\n".encode("latin-1"))
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|61|F|other|T8H1N\n")
    return tmp_path


def test_movielens_100k(ml100k: Path) -> None:
    ds = read_movielens(ml100k)
    log = ds.interactions
    assert ds.name == "ml100k" and ds.seen_filter
    assert log.user.tolist() == ["1", "2", "1"] and log.item.tolist() == ["10", "11", "11"]
    assert log.ts.tolist() == [880000000.0, 880000500.0, 879999000.0]  # file order kept
    assert log.rating.tolist() == [4.0, 2.0, 5.0]
    assert set(log.kind) == {"rating"} and log.quantity.tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(log.price).all() and set(log.region) == {""}
    assert {k: v.category for k, v in ds.items.items()} == {
        "10": "Animation", "11": "Action", "12": ""}
    assert ds.users["1"] == {"age": "18-24", "gender": "M", "occupation": "technician",
                             "zip": "8"}
    assert ds.users["2"] == {"age": "56+", "gender": "F", "occupation": "other", "zip": "other"}


def test_movielens_1m(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n"
                                          "2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew (1975)::Drama\n661::Pok\xe9 (1996)::Animation|Children's|Musical\n"
        .encode("latin-1"))
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = read_movielens(tmp_path)
    assert ds.name == "ml1m" and len(ds.interactions) == 3 and ds.seen_filter
    assert ds.interactions.item.tolist() == ["1193", "661", "1193"]
    assert ds.items["661"].category == "Animation" and ds.items["1193"].category == "Drama"
    assert ds.users["1"] == {"age": "under 18", "gender": "F", "occupation": "K-12 student",
                             "zip": "4"}
    assert ds.users["2"]["age"] == "56+" and ds.users["2"]["occupation"] == "self-employed"


def test_movielens_bad_rows_name_file_and_line(ml100k: Path) -> None:
    (ml100k / "u.data").write_text("1\t10\t4\t880000000\n\n2\t11\tfive\t880000500\n"
                                   "3\t12\t1\n4\t12\t3\t880000900\n")
    with pytest.raises(DataError, match=r"u\.data:3: bad_number") as err:
        read_movielens(ml100k)
    assert err.value.line == 3
    ds = read_movielens(ml100k, on_error="skip")
    assert ds.interactions.user.tolist() == ["1", "4"]
    assert ds.skipped == {"bad_number": 1, "wrong_columns": 1}


def test_movielens_metadata_errors_counted_per_file(ml100k: Path) -> None:
    (ml100k / "u.user").write_text("1|24|M|technician|85711\n2|old|F|other|1\n")
    with pytest.raises(DataError, match=r"u\.user:2: bad_value"):
        read_movielens(ml100k)
    ds = read_movielens(ml100k, on_error="skip")
    assert list(ds.users) == ["1"] and ds.skipped == {"u.user:bad_value": 1}


def test_movielens_needs_a_known_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a MovieLens folder"):
        read_movielens(tmp_path)


def test_movielens_without_metadata(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t10\t4\t880000000\n")
    ds = read_movielens(tmp_path / "u.data")
    assert len(ds.interactions) == 1 and ds.items == {} and ds.users == {}


# ---------------------------------------------------------------- Ta-Feng and retail CSV

TAFENG_HEADER = ('"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS",'
                 '"PRODUCT_ID","AMOUNT","ASSET","SALES_PRICE"')
TAFENG_ROWS = [
    ("11/1/2000", "01104905", "45-49", "115", "110411", "4710199010372", "2", "24", "30"),
    ("11/1/2000", "00418683", "45-49", "115", "120107", "4710857472535", "1", "48", "46"),
    ("11/2/2000", "01104905", "45-49", "115", "110411", "4710199010372", "1", "12", "16"),
    ("12/31/2000", "00000042", "", "Unknown", "110411", "4710199010372", "3", "36", "51"),
    ("2/28/2001", "00418683", "45-49", "115", "120107", "4710857472535", "2", "96", "92"),
]


def tafeng_bytes(rows: list[tuple[str, ...]]) -> bytes:
    lines = [TAFENG_HEADER] + [",".join(f'"{v}"' for v in row) for row in rows]
    return b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"


@pytest.fixture()
def tafeng_gz(tmp_path: Path) -> Path:
    path = tmp_path / "ta_feng_all_months_merged.csv.gz"
    path.write_bytes(gzip.compress(tafeng_bytes(TAFENG_ROWS)))
    return path


def test_tafeng(tafeng_gz: Path) -> None:
    ds = read_tafeng(tafeng_gz)
    log = ds.interactions
    assert ds.name == "tafeng" and not ds.seen_filter and ds.skipped == {}
    assert log.user.tolist() == ["01104905", "00418683", "01104905", "00000042", "00418683"]
    assert log.ts.tolist() == [day("2000-11-01"), day("2000-11-01"), day("2000-11-02"),
                               day("2000-12-31"), day("2001-02-28")]
    assert log.quantity.tolist() == [2, 1, 1, 3, 2]
    assert log.price.tolist() == [15, 46, 16, 17, 46]  # SALES_PRICE / AMOUNT
    assert set(log.kind) == {"purchase"} and log.region.tolist()[3] == "Unknown"
    first = ds.items["4710199010372"]
    assert first.category == "110411" and first.price == 16.0  # median of 15, 16, 17
    assert ds.users["00000042"] == {"age_group": "", "pin_code": "Unknown"}
    assert ds.users["01104905"] == {"age_group": "45-49", "pin_code": "115"}
    assert read_tafeng(tafeng_gz.parent).interactions.user.tolist() == log.user.tolist()


def test_tafeng_through_the_generic_reader_agrees(tafeng_gz: Path) -> None:
    plain = tafeng_gz.with_suffix("")  # the uncompressed CSV
    plain.write_bytes(gzip.decompress(tafeng_gz.read_bytes()))
    columns = ColumnMap.parse("user=CUSTOMER_ID, item=PRODUCT_ID, ts=TRANSACTION_DT, "
                              "qty=AMOUNT, total=SALES_PRICE, category=PRODUCT_SUBCLASS, "
                              "region=PIN_CODE")
    generic = read_retail_csv(plain, columns=columns, ts_format="%m/%d/%Y")
    special = read_tafeng(tafeng_gz)
    for name in ("user", "item", "ts", "quantity", "price", "kind", "region"):
        assert getattr(generic.interactions, name).tolist() == \
            getattr(special.interactions, name).tolist(), name
    assert generic.items == special.items


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


COLUMNS = ColumnMap(user="customer", item="product", ts="time", qty="qty", price="price",
                    category="cat", region="shop")


def test_retail_csv_reads_iso_and_skips_no_user_and_zero_quantity(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "sales.csv", (
        "customer,product,time,qty,price,cat,shop\n"
        "c1,p1,2024-03-01T08:30:00Z,2,1.5,dairy,s1\n"
        ",p1,2024-03-01T09:00:00Z,1,1.5,dairy,s1\n"
        "c2,p2,2024-03-02,0,3.0,,s2\n"
        "c2,p2,2024-03-02 10:00,1,,snacks,s2\n"
        "c1,p1,2024-03-03T00:00:00+01:00,-1,1.5,dairy,s1\n"
        "c2,p1,2024-03-04,4,2.5,dairy,s2\n"))
    ds = read_retail_csv(path, columns=COLUMNS)  # on_error="raise": these are not errors
    log = ds.interactions
    assert ds.skipped == {"no_user": 1, "non_positive_quantity": 2}
    assert log.user.tolist() == ["c1", "c2", "c2"] and log.item.tolist() == ["p1", "p2", "p1"]
    assert log.ts.tolist() == [day("2024-03-01") + 8.5 * 3600, day("2024-03-02") + 36000,
                               day("2024-03-04")]
    assert math.isnan(log.price[1]) and log.region.tolist() == ["s1", "s2", "s2"]
    assert ds.items["p1"].price == 2.0 and ds.items["p1"].category == "dairy"
    assert ds.items["p2"].category == "snacks" and math.isnan(ds.items["p2"].price)
    assert ds.name == "sales" and ds.users == {}


@pytest.mark.parametrize(("stamps", "fmt", "expected"), [
    (["1700000000", "1700000060.5"], None, [1700000000.0, 1700000060.5]),
    (["1700000000000", "1700000060500"], None, [1700000000.0, 1700000060.5]),
    (["2023-11-14T22:13:20Z", "2023-11-14"], None, [1700000000.0, day("2023-11-14")]),
    (["14.11.2023 22:13", "1.1.2024 00:00"], "%d.%m.%Y %H:%M", [1699999980.0,
                                                             day("2024-01-01")]),
])
def test_retail_csv_timestamps(tmp_path: Path, stamps: list[str], fmt: str | None,
                               expected: list[float]) -> None:
    body = "".join(f'u,i,"{s}",1,1\n' for s in stamps)
    path = write_csv(tmp_path / "t.csv", "user,item,ts,qty,price\n" + body)
    columns = ColumnMap.parse("user=user,item=item,ts=ts,qty=qty,price=price")
    ds = read_retail_csv(path, columns=columns, ts_format=fmt)
    assert ds.interactions.ts.tolist() == expected


BAD = ("customer,product,time,qty,price,cat,shop\n"
       "c1,p1,1700000000,1,1.0,a,s\n"
       "c1,p2,1700000000,1,1.0,a\n"  # line 3: a field short
       "c1,p3,1700000000,lots,1.0,a,s\n"  # line 4
       "c1,p4,yesterday,1,1.0,a,s\n"  # line 5
       "c1,p5,1700000000,1,-2,a,s\n"  # line 6: negative price
       "c1,,1700000000,1,1.0,a,s\n"  # line 7: no item
       '"c1","p6",1700000000,1,1.0,"multi\nline",s\n'  # lines 8-9
       "c1,p7,1700000000,1,nan,a,s\n")  # line 10


@pytest.mark.parametrize(("row", "reason"), [
    ("c1,p2,1700000000,1,1.0,a", "wrong_columns"),
    ("c1,p3,1700000000,lots,1.0,a,s", "bad_number"),
    ("c1,p4,yesterday,1,1.0,a,s", "bad_ts"),
    ("c1,p5,1700000000,1,-2,a,s", "bad_number"),
    ("c1,,1700000000,1,1.0,a,s", "no_item"),
    ("c1,p7,1700000000,1,nan,a,s", "bad_number"),
])
def test_retail_csv_bad_rows_name_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    # a quoted field spanning two lines comes first: the bad row is physical line 5
    path = write_csv(tmp_path / "bad.csv", "customer,product,time,qty,price,cat,shop\n"
                     "c1,p1,1700000000,1,1.0,a,s\n"
                     '"c1","p6",1700000000,1,1.0,"multi\nline",s\n' + row + "\n")
    with pytest.raises(DataError) as err:
        read_retail_csv(path, columns=COLUMNS)
    assert str(err.value).startswith(f"{path}:5: {reason}: ")
    assert (err.value.path, err.value.line) == (str(path), 5)


def test_retail_csv_skip_counts_every_reason(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", BAD)
    ds = read_retail_csv(path, columns=COLUMNS, on_error="skip")
    assert ds.interactions.item.tolist() == ["p1", "p6"]
    assert ds.items["p6"].category == "multi\nline"
    assert ds.skipped == {"bad_number": 3, "bad_ts": 1, "no_item": 1, "wrong_columns": 1}


def test_retail_csv_header_must_hold_the_mapped_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", "customer,product,when,qty,price\n")
    with pytest.raises(DataError, match=r"h\.csv:1: columns \['cat', 'shop', 'time'\]"):
        read_retail_csv(path, columns=COLUMNS)
    with pytest.raises(DataError, match="empty file"):
        read_retail_csv(write_csv(tmp_path / "e.csv", ""), columns=COLUMNS)
    with pytest.raises(DataError, match="no such file"):
        read_retail_csv(tmp_path / "missing.csv", columns=COLUMNS)


def test_column_map_parse() -> None:
    parsed = ColumnMap.parse("user=CUSTOMER_ID,item=PRODUCT_ID,ts=DT,qty=AMOUNT,price=P,"
                             "category=SUB,region=PIN")
    assert parsed == ColumnMap(user="CUSTOMER_ID", item="PRODUCT_ID", ts="DT", qty="AMOUNT",
                               price="P", category="SUB", region="PIN")
    assert ColumnMap.parse(" user = a , item=b,ts=c,qty=d,total=e ").total == "e"


@pytest.mark.parametrize(("text", "message"), [
    ("user=a,item=b,ts=c,qty=d,price=e,colour=f", "unknown key 'colour'"),
    ("user=a,item=b,ts=c,price=e", "missing qty"),
    ("item=b,price=e", "missing user, ts, qty"),
    ("user=a,item=b,ts=c,qty=d", "exactly one of price"),
    ("user=a,item=b,ts=c,qty=d,price=e,total=f", "exactly one of price"),
    ("user=a,user=b,item=b,ts=c,qty=d,price=e", "'user' given twice"),
    ("user,item=b,ts=c,qty=d,price=e", "needs the form user=COLUMN"),
    ("user=,item=b,ts=c,qty=d,price=e", "needs the form user=COLUMN"),
])
def test_column_map_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ColumnMap.parse(text)


# ---------------------------------------------------------------- events and JSON lines

def test_validate_event_fills_defaults_in_canonical_order() -> None:
    event = validate_event({"ts": 5, "item_id": "i", "user_id": "u", "event_id": "e",
                            "type": "view", "record": "interaction"})
    assert list(event) == ["record", "event_id", "user_id", "item_id", "type", "quantity",
                           "price", "ts", "region"]
    assert event["quantity"] == 1.0 and event["price"] is None and event["region"] == ""
    assert isinstance(event["ts"], float)
    assert validate_event({"event_id": "e", "ts": 1}, record="context") == {
        "record": "context", "event_id": "e", "ts": 1.0, "region": "", "weather": "",
        "temperature": None, "holiday": False}
    item = validate_event({"event_id": "e", "ts": 1, "item_id": "i"}, record="item")
    assert item["available"] is True and item["category"] == ""


@pytest.mark.parametrize(("obj", "reason", "detail"), [
    ([1, 2], "not_object", "JSON object"),
    ({"event_id": "e", "ts": 1}, "missing_field", "record"),
    ({"record": "user", "event_id": "e"}, "bad_value", "record must be"),
    ({"record": "item", "event_id": "e", "ts": 1}, "missing_field", "item_id"),
    ({"record": "item", "event_id": "e", "ts": 1, "item_id": "i", "colour": 1},
     "unknown_field", "colour"),
    ({"record": "interaction", "event_id": "e", "user_id": "u", "item_id": "i",
      "type": "like", "ts": 1}, "bad_value", "type must be one of"),
    ({"record": "interaction", "event_id": "e", "user_id": "u", "item_id": "i",
      "type": "cart", "ts": 1, "quantity": 0}, "bad_value", "quantity must be a number > 0"),
    ({"record": "interaction", "event_id": "e", "user_id": "", "item_id": "i",
      "type": "cart", "ts": 1}, "bad_value", "user_id must be a string of 1-256"),
    ({"record": "interaction", "event_id": "e", "user_id": "u", "item_id": "i",
      "type": "cart", "ts": True}, "bad_value", "ts must be a number"),
    ({"record": "interaction", "event_id": "e", "user_id": "u", "item_id": "i",
      "type": "cart", "ts": 1, "price": -1}, "bad_value", "price must be a number >= 0"),
    ({"record": "context", "event_id": "e", "ts": 1, "temperature": 99}, "bad_value",
     "temperature"),
    ({"record": "context", "event_id": "e", "ts": 1, "holiday": 1}, "bad_value", "holiday"),
    ({"record": "context", "event_id": "e", "ts": 1, "stock": {"i": "yes"}}, "bad_value",
     "stock"),
])
def test_validate_event_rejects_with_a_reason(obj: object, reason: str, detail: str) -> None:
    with pytest.raises(InvalidEvent, match=detail) as err:
        validate_event(obj)
    assert err.value.reason == reason and isinstance(err.value, DataError)


def test_record_kind_given_by_the_topic() -> None:
    raw = b'{"event_id": "e", "ts": 3, "item_id": "i", "available": false}'
    assert decode_event(raw, record="item")["available"] is False
    with pytest.raises(InvalidEvent, match="record must be context"):
        decode_event(b'{"record": "item", "event_id": "e", "ts": 3, "item_id": "i"}',
                     record="context")
    with pytest.raises(InvalidEvent) as err:
        decode_event(b"{not json")
    assert err.value.reason == "not_json"


def sample_events() -> list[dict]:
    return [
        item_event(event_id="e1", ts=100, item_id="a", category="dairy", price=2.0),
        context_event(event_id="e2", ts=300, region="north", weather="rain", temperature=4.5,
                      stock={"a": False}),
        interaction_event(event_id="e3", user_id="u1", item_id="a", ts=200, quantity=2,
                          price=2.0, region="north"),
        context_event(event_id="e4", ts=150, holiday=True),
        interaction_event(event_id="e5", user_id="u2", item_id="b", ts=150, type="view"),
        item_event(event_id="e6", ts=400, item_id="a", category="dairy", available=False),
        item_event(event_id="e7", ts=50, item_id="a", category="old"),  # older: loses
        {"record": "context", "event_id": "e8", "ts": 10, "user_id": "u1", "weather": "x"},
    ]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert write_events_jsonl(path, sample_events()) == 8
    ds = read_events_jsonl(path)
    assert isinstance(ds, Dataset) and ds.name == "events" and not ds.seen_filter
    log = ds.interactions
    assert log.user.tolist() == ["u1", "u2"] and log.kind.tolist() == ["purchase", "view"]
    assert log.ts.tolist() == [200.0, 150.0] and log.quantity.tolist() == [2.0, 1.0]
    assert log.price[0] == 2.0 and math.isnan(log.price[1])
    assert log.region.tolist() == ["north", ""]
    assert ds.items["a"].available is False and ds.items["a"].category == "dairy"
    assert [c.ts for c in ds.contexts] == [150.0, 300.0]
    assert ds.contexts[0].holiday and math.isnan(ds.contexts[0].temperature)
    assert ds.contexts[1].stock == {"a": False} and ds.contexts[1].weather == "rain"
    assert ds.skipped == {"user_context": 1}


def test_jsonl_bytes_are_canonical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_events_jsonl(a, sample_events())
    write_events_jsonl(b, reversed(list(reversed(sample_events()))))
    assert a.read_bytes() == b.read_bytes()
    first = gzip.decompress(a.read_bytes()).splitlines()[0]
    assert orjson.loads(first)["record"] == "item"
    assert len(read_events_jsonl(a).interactions) == 2


def test_jsonl_bad_lines(tmp_path: Path) -> None:
    good = orjson.dumps(sample_events()[2]).decode()
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([good, "", "{oops", '{"record": "interaction", "event_id": "x"}',
                               "[]", good]) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:3: not_json"):
        read_events_jsonl(path)
    ds = read_events_jsonl(path, on_error="skip")
    assert len(ds.interactions) == 2
    assert ds.skipped == {"missing_field": 1, "not_json": 1, "not_object": 1}


def test_jsonl_writer_rejects_an_invalid_event(tmp_path: Path) -> None:
    events = [*sample_events()[:2], {"record": "item", "event_id": "x", "ts": -1,
                                     "item_id": "i"}]
    with pytest.raises(DataError, match=r"w\.jsonl:3: bad_value: ts"):
        write_events_jsonl(tmp_path / "w.jsonl", events)


# ---------------------------------------------------------------- the real data sets

@pytest.mark.data
def test_real_movielens_100k(shared_data: Path) -> None:
    ds = read_movielens(shared_data / "movielens" / "ml-100k")
    log = ds.interactions
    assert (len(log), len(set(log.user)), len(set(log.item))) == (100_000, 943, 1_682)
    assert len(ds.items) == 1_682 and len(ds.users) == 943 and ds.skipped == {}
    ratings, counts = np.unique(log.rating, return_counts=True)
    assert dict(zip(ratings.tolist(), counts.tolist(), strict=True)) == {
        1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}
    assert ds.items["1"].category == "Animation"  # Toy Story: Animation|Children's|Comedy


@pytest.mark.data
def test_real_tafeng(shared_data: Path) -> None:
    ds = read_tafeng(shared_data / "retail" / "ta_feng")
    log = ds.interactions
    assert (len(log), len(set(log.user)), len(set(log.item))) == (817_741, 32_266, 23_812)
    assert ds.skipped == {} and len(ds.items) == 23_812 and len(ds.users) == 32_266
    assert float(log.quantity.sum(dtype=np.float64)) == 1_129_939
    days = np.unique(log.ts)
    assert len(days) == 120 and days[0] == day("2000-11-01") and days[-1] == day("2001-02-28")
    assert int((np.diff(log.ts) < 0).sum()) == 4_590  # file order kept, not sorted

"""Imports point one way: diskio/ below everything, towers/ and index/ below streams/, and
inside streams/ each sub-package imports only the rooms listed for it (the table in
streams/__init__.py).

Every import statement counts, also the ones inside functions: a lazy import is still an
arrow, it only moves the cost to the first call.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# streams room -> the streams rooms it may import (a room is a sub-package or a top module)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "logs": set(),
    "settings": {"errors"},
    "topics": {"errors", "settings"},
    "state": {"errors"},
    "recall": {"errors"},
    "models": {"errors", "recall", "state"},
    "evaluation": {"errors", "recall"},
    "worker": {"errors", "logs", "settings", "topics", "state", "recall", "models"},
    "services": {"errors", "settings"},
    "replay": {"errors", "logs", "settings", "topics", "state", "recall", "models",
               "evaluation", "worker", "services"},
    "cli": {"errors", "logs", "settings", "topics", "state", "recall", "models",
            "evaluation", "worker", "services", "replay"},
    "__main__": {"cli"},
    "__init__": set(),
}

# libraries a room never imports, whatever the path
KAFKA = {"faust", "aiokafka", "kafka", "mode"}
FORBIDDEN_LIBS: dict[str, set[str]] = {
    "state": KAFKA | {"torch", "faiss", "index"},
    "recall": KAFKA | {"redis"},
    "models": KAFKA,
    "evaluation": KAFKA | {"redis"},
    "services": KAFKA | {"torch", "faiss", "index", "towers"},
    "towers": KAFKA | {"redis", "faiss", "index", "streams"},
    "index": KAFKA | {"redis", "torch", "towers", "streams"},
    "diskio": KAFKA | {"redis", "torch", "faiss", "numpy", "towers", "index", "streams"},
}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return out


def _room(path: Path) -> str:
    """streams/worker/app.py -> worker; streams/topics.py -> topics; towers/x.py -> towers."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] != "streams":
        return parts[0]
    return parts[1]


def _sources() -> list[Path]:
    return sorted(p for top in ("streams", "towers", "index", "diskio")
                  for p in (ROOT / top).rglob("*.py"))


def test_every_streams_room_is_in_the_table() -> None:
    rooms = {_room(p) for p in (ROOT / "streams").rglob("*.py")}
    assert rooms <= set(ALLOWED), f"add {sorted(rooms - set(ALLOWED))} to ALLOWED"


def test_imports_point_down() -> None:
    wrong = []
    for path in _sources():
        room = _room(path)
        for module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN_LIBS.get(room, set()):
                wrong.append(f"{path.relative_to(ROOT)}: {module}")
            elif top == "streams" and room in ALLOWED and path.is_relative_to(ROOT / "streams"):
                target = module.split(".")[1] if "." in module else "__init__"
                if target != room and target not in ALLOWED[room]:
                    wrong.append(f"{path.relative_to(ROOT)}: {module}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def _loaded_after(statement: str) -> set[str]:
    code = (f"import sys; {statement}; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_state_loads_neither_faust_nor_torch() -> None:
    assert not _loaded_after("import streams.state") & {"faust", "aiokafka", "torch", "faiss"}


def test_recall_loads_no_kafka_redis_or_torch() -> None:
    # two_tower (torch, faiss) is imported by whoever serves a model, not by the package
    assert not _loaded_after("import streams.recall") & {"faust", "aiokafka", "kafka", "redis",
                                                         "torch"}


def test_copies_the_layering_keeps_apart_agree() -> None:
    """index/ may not import towers/, nor settings index/ (faiss): their copies must match."""
    from index.config import BACKENDS
    from index.items import VERSION_RE as INDEX_VERSION_RE
    from streams.settings import INDEX_BACKENDS
    from towers.versions import VERSION_RE

    assert INDEX_VERSION_RE.pattern == VERSION_RE.pattern
    assert tuple(BACKENDS) == INDEX_BACKENDS


def test_the_recall_engine_loads_no_faust_torch_or_faiss() -> None:
    # the engine is the worker's core without Kafka; the model's torch and faiss come with
    # the model (streams.recall.two_tower), when one is loaded
    assert not _loaded_after("import streams.worker.engine") & {"faust", "aiokafka", "torch",
                                                                "faiss"}

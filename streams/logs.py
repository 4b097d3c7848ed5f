"""Logging set-up of the commands: plain lines, or one JSON object per line."""

from __future__ import annotations

import logging
import re
import time

import orjson

__all__ = ["configure_logging", "logging_config", "redact"]

# third-party loggers kept to warnings and errors: their info lines are per connection
# attempt (kafka) or about which CPU build was loaded (faiss)
_NOISY = ("kafka", "aiokafka", "faiss")

# user:password@ in URLs, and password=... pairs: never printed
_SECRET = re.compile(r"(?<=://)([^:/@\s]*):([^@\s]+)@|(password=)([^&\s]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with URL passwords and password=... values replaced by ***."""
    return _SECRET.sub(lambda m: f"{m.group(1)}:***@" if m.group(1) is not None
                       else f"{m.group(3)}***", text)


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": redact(record.getMessage())}
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def logging_config(level: str = "info", *, json: bool = False) -> dict[str, object]:
    """The same set-up as a dictConfig (Faust's worker applies one at start)."""
    formatter = ({"()": "streams.logs._Json"} if json else
                 {"()": "streams.logs._Redacting",
                  "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"nearline": formatter},
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "nearline",
                                     "stream": "ext://sys.stderr"}},
            "root": {"level": level.upper(), "handlers": ["default"]},
            "loggers": {name: {"level": "WARNING"} for name in _NOISY}}


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    """Root handler on stderr; third-party clients only from WARNING up."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Json() if json else _Redacting(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)

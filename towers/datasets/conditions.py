"""Daily conditions of the simulated market: weather per region, holidays, demand factors."""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from towers.datasets.market import CATEGORIES, Market

__all__ = ["Climate", "DayConditions"]

DAY = 86_400
PRE_HOLIDAY_DAYS = 3  # demand for holiday goods rises this many days before
_SEASON = np.array([c.season for c in CATEGORIES])
_HEAT = np.array([c.heat for c in CATEGORIES])
_WET = np.array([c.wet for c in CATEGORIES])
_HOLIDAY = np.array([c.holiday for c in CATEGORIES])


@dataclass(frozen=True)
class DayConditions:
    day: int  # days since the start
    ts: float  # midnight UTC, unix seconds
    weekday: int  # 0 = Monday
    holiday: bool
    pre_holiday: bool  # one of the few days before a holiday
    temperature: np.ndarray  # (R,) degC
    weather: tuple[str, ...]  # (R,) sunny, cloudy, rain, snow
    demand: np.ndarray  # (R, C) multiplier of each category's demand in each region


class Climate:
    """Temperature per region: an AR(1) walk around a seasonal mean; rain or snow at random."""

    def __init__(self, market: Market, rng: np.random.Generator) -> None:
        self.market = market
        self.rng = rng
        self.start = date.fromisoformat(market.config.start)
        self.holidays = set(market.config.holidays)
        self.deviation = rng.normal(0.0, 2.0, len(market.regions))

    def day(self, day: int) -> DayConditions:
        today = self.start + timedelta(days=day)
        mean, amplitude = self.market.region_climate.T
        season = _season(today)
        self.deviation = 0.8 * self.deviation + self.rng.normal(0.0, 2.0, len(mean))
        temperature = np.round(mean + amplitude * season + self.deviation, 1)
        wet = self.rng.random(len(mean)) < 0.3
        sunny = self.rng.random(len(mean)) < 0.6
        weather = tuple(("snow" if t < 1.0 else "rain") if w else ("sunny" if s else "cloudy")
                        for t, w, s in zip(temperature, wet, sunny, strict=True))
        holiday = today.strftime("%m-%d") in self.holidays
        pre = any((today + timedelta(days=k)).strftime("%m-%d") in self.holidays
                  for k in range(1, PRE_HOLIDAY_DAYS + 1))
        log_demand = (_SEASON[None, :] * season + _HEAT[None, :] * (temperature[:, None] - 15) / 10
                      + _WET[None, :] * wet[:, None] + _HOLIDAY[None, :] * pre)
        return DayConditions(
            day=day, ts=float(calendar.timegm(today.timetuple())), weekday=today.weekday(),
            holiday=holiday, pre_holiday=pre, temperature=temperature, weather=weather,
            demand=np.exp(log_demand))


def _season(today: date) -> float:
    """+1 in mid-July, -1 in mid-January (northern hemisphere)."""
    return math.cos(2 * math.pi * (today.timetuple().tm_yday - 196) / 365.25)

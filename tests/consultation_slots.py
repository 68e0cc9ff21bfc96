"""Consultation slots for tests: a time inside the business days and hours, in the visitor's zone."""

import datetime
import zoneinfo

from django.conf import settings


def business_slot(*, days_ahead: int = 3, hour: int = 11, visitor_zone: str = "Europe/Berlin") -> dict:
    """Form fields for a weekday `hour` o'clock in the business zone, shown in `visitor_zone`."""
    business = zoneinfo.ZoneInfo(settings.CONSULTATION_TIMEZONE)
    day = datetime.datetime.now(business).date() + datetime.timedelta(days=days_ahead)
    while day.weekday() not in settings.CONSULTATION_DAYS:
        day += datetime.timedelta(days=1)
    when = datetime.datetime.combine(day, datetime.time(hour), tzinfo=business).astimezone(
        zoneinfo.ZoneInfo(visitor_zone)
    )
    return {"date": when.date().isoformat(), "time": when.strftime("%H:%M"), "timezone": visitor_zone}

"""Staff consultations pipeline: legal transitions only, known-answer stats, filters and contact links."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from consultations.models import ConsultationRequest
from consultations.services import IllegalTransition, consultation_transition

pytestmark = pytest.mark.django_db
S = ConsultationRequest.Status
NOW = dt.datetime(2026, 11, 26, 15, tzinfo=dt.UTC)  # a Thursday


def consultation(name: str, *, created: dt.datetime, status: str = S.PENDING, phone: str = "") -> ConsultationRequest:
    made = ConsultationRequest.objects.create(
        name=name, email=f"{name.lower()}@example.com", phone=phone, preferred_time=NOW + dt.timedelta(days=2)
    )
    ConsultationRequest.objects.filter(pk=made.pk).update(created_at=created, status=status)
    made.refresh_from_db()
    return made


def test_only_the_workflows_transitions_are_allowed(staff_user):
    pending = consultation("Ada", created=NOW)
    with pytest.raises(IllegalTransition, match="a pending consultation cannot become completed"):
        consultation_transition(consultation_id=pending.pk, to=S.COMPLETED)
    consultation_transition(consultation_id=pending.pk, to=S.CONFIRMED, actor=staff_user)
    consultation_transition(consultation_id=pending.pk, to=S.NO_SHOW, actor=staff_user)
    with pytest.raises(IllegalTransition):
        consultation_transition(consultation_id=pending.pk, to=S.CONFIRMED)
    with pytest.raises(IllegalTransition):
        consultation_transition(consultation_id=pending.pk, to=S.CANCELLED)
    assert [e.new_status for e in pending.events.all()] == [S.CONFIRMED, S.NO_SHOW]


def test_pipeline_stats_filters_actions_and_contact_links(client, staff_user):
    consultation("Today", created=NOW - dt.timedelta(hours=2), phone="+1 555 0100")
    consultation("Monday", created=NOW - dt.timedelta(days=3), status=S.CONFIRMED)
    consultation("LastWeek", created=NOW - dt.timedelta(days=8), status=S.CONFIRMED)
    old = consultation("LastMonth", created=NOW - dt.timedelta(days=40), status=S.COMPLETED)
    client.force_login(staff_user)
    url = reverse("admin:consultations_consultationrequest_changelist")

    with time_machine.travel(NOW, tick=False):
        page = client.get(url).content.decode()
        search = client.get(url + "?q=555").content.decode()
        refused = client.post(
            url, {"action": "mark_confirmed", "_selected_action": [old.pk]}, follow=True
        ).content.decode()

    for stat, value in {"total": 4, "today": 1, "this_week": 2, "pending": 1, "confirmed": 2}.items():
        assert f'<strong data-stat="{stat}">{value}</strong>' in page, stat
    assert 'href="mailto:today@example.com"' in page and 'href="tel:+15550100"' in page
    assert "Today" in search and "Monday" not in search
    assert "a completed consultation cannot become confirmed" in refused
    assert ConsultationRequest.objects.get(pk=old.pk).status == S.COMPLETED

"""The one way a status changes (shophosting.core.transitions): lock, allowed edge, write, event."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backups.models import BackupEvent, BackupRun, RunStatus
from backups.services.records import run_transition
from consultations.models import ConsultationEvent, ConsultationRequest, ContactMessage
from consultations.services import IllegalTransition
from shophosting.core.transitions import InvalidTransition, transition
from stores.exceptions import InvalidTransition as StoresInvalidTransition

pytestmark = pytest.mark.django_db
C = ConsultationRequest.Status
EDGES = {C.CONFIRMED: {C.PENDING}, C.CANCELLED: {C.PENDING, C.CONFIRMED}}


def _consultation() -> ConsultationRequest:
    return ConsultationRequest.objects.create(
        name="Ada", email="ada@example.com", preferred_time="2026-12-01T10:00:00Z"
    )


def _confirm(consultation: ConsultationRequest, **options) -> ConsultationRequest:
    return transition(
        ConsultationRequest,
        consultation.pk,
        C.CONFIRMED,
        allowed_from=EDGES,
        event_model=ConsultationEvent,
        event_link="consultation",
        **options,
    )


def test_there_is_one_invalid_transition_class_under_its_old_names():
    assert StoresInvalidTransition is InvalidTransition
    assert IllegalTransition is InvalidTransition


def test_an_illegal_edge_raises_and_writes_nothing():
    consultation = _consultation()
    ConsultationRequest.objects.filter(pk=consultation.pk).update(status=C.CANCELLED)

    with pytest.raises(InvalidTransition, match="cancelled -> confirmed is not allowed"):
        _confirm(consultation, staff_notes="must not be written")

    consultation.refresh_from_db()
    assert consultation.status == C.CANCELLED and consultation.staff_notes == ""
    assert not ConsultationEvent.objects.exists()


def test_a_legal_edge_writes_status_fields_and_event_with_actor_and_note_under_the_row_lock(staff_user):
    consultation = _consultation()

    with CaptureQueriesContext(connection) as queries:
        changed = _confirm(consultation, actor=staff_user, note="called back", staff_notes="prefers mornings")

    first_read = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT"))
    assert "consultations_consultationrequest" in first_read and first_read.endswith("FOR UPDATE")
    consultation.refresh_from_db()
    assert changed.status == consultation.status == C.CONFIRMED
    assert consultation.staff_notes == "prefers mornings"
    event = ConsultationEvent.objects.get()
    assert (event.consultation_id, event.old_status, event.new_status) == (consultation.pk, C.PENDING, C.CONFIRMED)
    assert (event.actor, event.note) == (staff_user, "called back")


def test_backup_run_edges_are_enforced():
    run = BackupRun.objects.create(kind=BackupRun.Kind.SYSTEM)
    with pytest.raises(InvalidTransition):
        run_transition(BackupRun, run.pk, RunStatus.SUCCEEDED)  # never ran

    run_transition(BackupRun, run.pk, RunStatus.RUNNING)
    run_transition(BackupRun, run.pk, RunStatus.SUCCEEDED, snapshot_id="abc123")
    for to in (RunStatus.RUNNING, RunStatus.FAILED, RunStatus.QUEUED):
        with pytest.raises(InvalidTransition):
            run_transition(BackupRun, run.pk, to, error="late worker")

    run.refresh_from_db()
    assert (run.status, run.snapshot_id, run.error) == (RunStatus.SUCCEEDED, "abc123", "")
    assert [(e.old_status, e.new_status) for e in BackupEvent.objects.filter(backup_run=run)] == [
        (RunStatus.QUEUED, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.SUCCEEDED),
    ]


def test_the_contact_message_admin_moves_status_along_allowed_edges_only(client, staff_user):
    message = ContactMessage.objects.create(name="Bo", email="bo@example.com", subject="Hosting?", message="Hi")
    client.force_login(staff_user)
    changelist = reverse("admin:consultations_contactmessage_changelist")
    change = reverse("admin:consultations_contactmessage_change", args=[message.pk])

    # The change form no longer edits the status freely.
    client.post(change, {"status": ContactMessage.Status.ANSWERED})
    message.refresh_from_db()
    assert message.status == ContactMessage.Status.NEW

    client.post(changelist, {"action": "mark_closed", "_selected_action": [message.pk]}, follow=True)
    message.refresh_from_db()
    assert message.status == ContactMessage.Status.CLOSED

    refused = client.post(
        changelist, {"action": "mark_answered", "_selected_action": [message.pk]}, follow=True
    ).content.decode()
    message.refresh_from_db()
    assert message.status == ContactMessage.Status.CLOSED
    assert "a closed contact message cannot become answered" in refused

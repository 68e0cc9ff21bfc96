"""What the support flags of a plan deliver: each ticket is owed its first staff answer within its customer's
target (billing.models.FIRST_RESPONSE_TARGETS), a staff answer stops the clock, and staff see what is late
in the ticket list and on the dashboard."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from accounts.services import staff_user_ensure
from billing.models import Plan, Subscription
from consultations.models import Ticket
from consultations.services import ticket_create, ticket_reply_staff, ticket_transition

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("woo_plan")]  # woo_plan seeds the catalogue
SS = Subscription.Status
OPENED = timezone.now().replace(microsecond=0) + timedelta(days=1)


def customer_on(user_factory, *subscriptions: tuple[str, str]):
    """A customer with a subscription to each (plan slug, status)."""
    customer = user_factory()
    for slug, status in subscriptions:
        Subscription.objects.create(customer=customer, plan=Plan.objects.get(slug=slug), status=status)
    return customer


def opened_ticket(customer, subject="Checkout is slow") -> Ticket:
    with time_machine.travel(OPENED, tick=False):
        return ticket_create(customer=customer, category="technical", subject=subject, body="Since this morning.")


@pytest.mark.parametrize(
    "subscriptions, hours",
    [
        ([("woocommerce-commerce-core", SS.ACTIVE)], 24),  # email support
        ([("woocommerce-commerce-scale", SS.ACTIVE)], 4),  # 24/7 support
        ([("magento-agency-plus", SS.ACTIVE)], 1),  # dedicated support
        ([], 48),  # no plan
        # Several subscriptions: the quickest target among the supported ones.
        ([("woocommerce-commerce-core", SS.ACTIVE), ("woocommerce-commerce-scale", SS.PAST_DUE)], 4),
        # A canceled, suspended or unpaid subscription promises nothing any more.
        (
            [
                ("woocommerce-commerce-core", SS.ACTIVE),
                ("magento-agency-plus", SS.CANCELED),
                ("woocommerce-agency-plus", SS.SUSPENDED),
                ("woocommerce-commerce-scale", SS.CHECKOUT),
            ],
            24,
        ),
    ],
)
def test_a_ticket_is_due_within_its_customers_best_target(user_factory, subscriptions, hours):
    ticket = opened_ticket(customer_on(user_factory, *subscriptions))

    assert ticket.first_response_due_at == OPENED + timedelta(hours=hours)
    assert ticket.first_response_hours == hours and ticket.first_response_at is None


def test_the_customer_is_told_the_target_until_staff_answer(client, user_factory, staff_user):
    customer = customer_on(user_factory, ("woocommerce-commerce-scale", SS.ACTIVE))
    client.force_login(customer)
    with time_machine.travel(OPENED, tick=False):
        response = client.post(
            reverse("consultations:ticket_new"), {"category": "technical", "subject": "Down", "body": "500 errors"}
        )
    ticket = Ticket.objects.get()
    page = client.get(response["Location"]).content.decode()
    assert "We answer within 4 hours" in page

    ticket_reply_staff(ticket_id=ticket.pk, author=staff_user, body="Looking into it.")
    assert "We answer within" not in client.get(response["Location"]).content.decode()


def test_a_staff_answer_stops_the_clock_and_an_internal_note_does_not(user_factory, staff_user):
    ticket = opened_ticket(customer_on(user_factory, ("woocommerce-commerce-core", SS.ACTIVE)))
    note_at, answer_at = OPENED + timedelta(hours=1), OPENED + timedelta(hours=30)

    with time_machine.travel(note_at, tick=False):
        ticket_reply_staff(ticket_id=ticket.pk, author=staff_user, body="Ask the DBA", internal=True)
    ticket.refresh_from_db()
    assert ticket.first_response_at is None

    with time_machine.travel(answer_at, tick=False):
        assert ticket in tickets_overdue()
        ticket_reply_staff(ticket_id=ticket.pk, author=staff_user, body="Fixed: a slow query.")
        assert ticket not in tickets_overdue()
    with time_machine.travel(answer_at + timedelta(hours=2), tick=False):
        ticket_reply_staff(ticket_id=ticket.pk, author=staff_user, body="And one more thing.")
    ticket.refresh_from_db()
    assert ticket.first_response_at == answer_at  # the first answer counts, later ones change nothing


def tickets_overdue() -> list[Ticket]:
    from consultations.selectors import tickets_first_response_overdue

    return list(tickets_first_response_overdue())


def test_overdue_and_due_soon_tickets_show_in_the_admin_filter_and_on_the_dashboard(client, user_factory, staff_user):
    dedicated = customer_on(user_factory, ("magento-agency-plus", SS.ACTIVE))  # 1 h
    around_the_clock = customer_on(user_factory, ("woocommerce-commerce-scale", SS.ACTIVE))  # 4 h
    email = customer_on(user_factory, ("woocommerce-commerce-core", SS.ACTIVE))  # 24 h
    late = opened_ticket(dedicated, "Late: dedicated")
    soon = opened_ticket(around_the_clock, "Soon: 24/7")
    later = opened_ticket(email, "Later: e-mail")
    answered = opened_ticket(dedicated, "Answered in time")
    closed = opened_ticket(dedicated, "Closed unanswered")
    ticket_reply_staff(ticket_id=answered.pk, author=staff_user, body="Done.")
    ticket_transition(ticket_id=closed.pk, to=Ticket.Status.CLOSED)
    support, _ = staff_user_ensure(email="support@example.com", role=Role.SUPPORT, password="support pass 123")
    client.force_login(support)
    changelist = reverse("admin:consultations_ticket_changelist")

    with time_machine.travel(OPENED + timedelta(hours=3, minutes=30), tick=False):
        overdue_page = client.get(changelist + "?first_response=overdue").content.decode()
        soon_page = client.get(changelist + "?first_response=due_soon").content.decode()
        all_page = client.get(changelist).content.decode()
        dashboard = client.get(reverse("admin:index"))

    assert late.subject in overdue_page
    for other in (soon, later, answered, closed):
        assert other.subject not in overdue_page
    assert soon.subject in soon_page and late.subject not in soon_page and later.subject not in soon_page
    assert "overdue by 2 h 30 min" in all_page and "due in 30 min" in all_page and "due in 20 h 30 min" in all_page
    assert '<strong data-count="first_response_overdue">1</strong>' in all_page
    body = dashboard.content.decode()
    assert dashboard.context["dashboard"]["tickets_first_response_overdue"] == 1
    assert dashboard.context["dashboard"]["tickets_first_response_due_soon"] == 1
    assert 'data-figure="tickets-overdue">1</p>' in body
    assert f'href="{changelist}?first_response=overdue"' in body

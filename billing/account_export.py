"""A customer's account data as one ZIP: `account.json` (everything, nested) and a CSV file per table
(profile, stores, store names, subscriptions, invoices, tickets, ticket messages, consultations).

Built in the request and sent at once, not prepared by a job: it reads only database rows of one customer
(a few hundred at most: their stores, invoices, tickets and consultation requests), with no Docker, restic
or Stripe call, so it takes milliseconds and a few hundred kilobytes. A job, a stored file and a signed link
would add a copy of personal data to clean up and nothing the customer needs. The stores' own data (their
database and files) is the backup download's business (backups/), not this one.

Reads only: every query is filtered by the customer (or by their Stripe customer ids and e-mail address),
and tests/test_account_leaving.py checks that another customer's data never appears. Staff notes on
tickets (internal messages) and the names of staff members are left out."""

import csv
import io
import json
import zipfile
from dataclasses import dataclass

from django.utils import timezone
from djstripe.models import Invoice as MirroredInvoice

from accounts.models import User
from accounts.services import audit_record
from billing.models import Subscription, money_text
from consultations.models import ConsultationRequest, Ticket, TicketMessage
from stores.models import Store, StoreName


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[dict]


def _when(value) -> str:
    return value.isoformat() if value else ""


def account_export_tables(*, customer: User) -> list[Table]:
    """The customer's data, one table per CSV file."""
    profile = {
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company": customer.company,
        "date_joined": _when(customer.date_joined),
        "last_login": _when(customer.last_login),
    }
    stores = list(Store.objects.filter(customer=customer).select_related("plan").order_by("pk"))
    names = list(StoreName.objects.filter(store__customer=customer).order_by("store_id", "pk"))
    subscriptions = list(Subscription.objects.filter(customer=customer).select_related("plan").order_by("pk"))
    stripe_customers = {s.stripe_customer_id for s in subscriptions if s.stripe_customer_id}
    invoices = MirroredInvoice.objects.filter(customer__id__in=stripe_customers).order_by("created")
    tickets = list(Ticket.objects.filter(customer=customer).select_related("store").order_by("pk"))
    messages = (
        TicketMessage.objects.filter(ticket__customer=customer, internal=False)
        .select_related("ticket")
        .prefetch_related("attachments")
        .order_by("ticket_id", "created_at", "pk")
    )
    consultations = ConsultationRequest.objects.filter(email__iexact=customer.email).order_by("created_at")
    return [
        Table("profile", tuple(profile), [profile]),
        Table(
            "stores",
            ("id", "name", "domain", "platform", "plan", "status", "created_at"),
            [
                {
                    "id": s.pk,
                    "name": s.site_title,
                    "domain": s.domain,
                    "platform": s.get_platform_display(),
                    "plan": s.plan.name,
                    "status": s.get_status_display(),
                    "created_at": _when(s.created_at),
                }
                for s in stores
            ],
        ),
        Table(
            "store_names",
            ("store_id", "name", "kind", "status"),
            [
                {"store_id": n.store_id, "name": n.name, "kind": n.get_kind_display(), "status": n.get_status_display()}
                for n in names
            ],
        ),
        Table(
            "subscriptions",
            ("id", "plan", "status", "created_at", "canceled_at"),
            [
                {
                    "id": s.pk,
                    "plan": s.plan.name,
                    "status": s.get_status_display(),
                    "created_at": _when(s.created_at),
                    "canceled_at": _when(s.canceled_at),
                }
                for s in subscriptions
            ],
        ),
        Table("invoices", ("number", "date", "status", "amount", "currency"), [_invoice(i) for i in invoices]),
        Table(
            "tickets",
            ("number", "subject", "category", "status", "priority", "store", "created_at", "updated_at"),
            [
                {
                    "number": t.number or t.pk,
                    "subject": t.subject,
                    "category": t.get_category_display(),
                    "status": t.get_status_display(),
                    "priority": t.get_priority_display(),
                    "store": t.store.domain if t.store else "",
                    "created_at": _when(t.created_at),
                    "updated_at": _when(t.updated_at),
                }
                for t in tickets
            ],
        ),
        Table(
            "ticket_messages",
            ("ticket", "created_at", "from", "body", "attachments"),
            [
                {
                    "ticket": m.ticket.number or m.ticket_id,
                    "created_at": _when(m.created_at),
                    "from": "ShopHosting support" if m.from_staff else "you",
                    "body": m.body,
                    "attachments": "; ".join(a.original_name for a in m.attachments.all()),
                }
                for m in messages
            ],
        ),
        Table(
            "consultations",
            (
                "created_at",
                "name",
                "email",
                "phone",
                "company",
                "platform",
                "preferred_time",
                "timezone",
                "message",
                "status",
            ),
            [
                {
                    "created_at": _when(c.created_at),
                    "name": c.name,
                    "email": c.email,
                    "phone": c.phone,
                    "company": c.company,
                    "platform": c.get_platform_display(),
                    "preferred_time": _when(c.preferred_time),
                    "timezone": c.timezone,
                    "message": c.message,
                    "status": c.get_status_display(),
                }
                for c in consultations
            ],
        ),
    ]


def _invoice(invoice) -> dict:
    data = invoice.stripe_data
    paid = data.get("status") == "paid"
    return {
        "number": data.get("number") or invoice.id,
        "date": _when(invoice.created),
        "status": data.get("status") or "",
        "amount": money_text(data.get("amount_paid") if paid else data.get("amount_due")),
        "currency": (data.get("currency") or "").upper(),
    }


# A spreadsheet runs a cell that starts with one of these as a formula; the customer's own ticket text
# could start with one. Such cells get a leading apostrophe in the CSV files (the JSON keeps them as typed).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table.columns)
    writer.writeheader()
    for row in table.rows:
        writer.writerow({column: _cell(row.get(column)) for column in table.columns})
    return buffer.getvalue()


def account_export_archive(*, customer: User) -> bytes:
    """The ZIP: account.json, one CSV per table, and a short README."""
    tables = account_export_tables(customer=customer)
    document = {
        "exported_at": timezone.now().isoformat(),
        "account": tables[0].rows[0],
        **{table.name: table.rows for table in tables[1:]},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("account.json", json.dumps(document, indent=2, ensure_ascii=False))
        for table in tables:
            archive.writestr(f"{table.name}.csv", _csv(table))
        archive.writestr(
            "README.txt",
            "Your ShopHosting account data: account.json holds everything; each CSV file holds one table.\n"
            "Your stores' own data (database and files) is in their backups: download one from each store's "
            "backups page.\n",
        )
    return buffer.getvalue()


def account_export(*, customer: User, request=None) -> bytes:
    """The archive for a download, audited (who, from where, how large)."""
    archive = account_export_archive(customer=customer)
    audit_record(event="account_exported", request=request, actor=customer, customer=customer.pk, bytes=len(archive))
    return archive

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from consultations.models import ConsultationRequest, ContactMessage


def _notify_staff(subject: str, body: str) -> None:
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [settings.SUPPORT_EMAIL], fail_silently=True)


@transaction.atomic
def contact_message_create(**fields) -> ContactMessage:
    message = ContactMessage.objects.create(**fields)
    transaction.on_commit(
        lambda: _notify_staff(
            f"[contact] {message.subject}", f"From {message.name} <{message.email}>\n\n{message.message}"
        )
    )
    return message


@transaction.atomic
def consultation_request_create(**fields) -> ConsultationRequest:
    consultation = ConsultationRequest.objects.create(**fields)
    transaction.on_commit(
        lambda: _notify_staff(
            f"[consultation] {consultation.name} at {consultation.preferred_time:%Y-%m-%d %H:%M} UTC",
            f"{consultation.name} <{consultation.email}> {consultation.phone}\n"
            f"Platform: {consultation.get_platform_display()}\n\n{consultation.message}",
        )
    )
    return consultation

"""Transactional e-mail: every message has a text and an HTML version, both under templates/emails/."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def email_send(*, template: str, to: list[str], context: dict) -> None:
    """Render emails/<template>.subject.txt, .txt and .html, and send them as one multipart message."""
    context = {"site_url": settings.SITE_URL.rstrip("/"), **context}
    subject = " ".join(render_to_string(f"emails/{template}.subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject, render_to_string(f"emails/{template}.txt", context), settings.DEFAULT_FROM_EMAIL, to
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    message.send()

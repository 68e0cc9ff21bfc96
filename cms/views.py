"""POSTs to the contact page: each form runs its own service and rate limit, then redirects back (so a reload
never sends twice); invalid input re-renders the page with the errors and what was typed."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from consultations.forms import ConsultationForm, ContactForm
from consultations.services import consultation_request_create, contact_message_create
from shophosting.core.ratelimits import rate_limited


def _render(request, page, **forms):
    context = page.get_context(request)
    context.update(forms)
    return TemplateResponse(request, page.get_template(request), context)


@rate_limited("contact")
def _contact(request, page):
    form = ContactForm(request.POST)
    if not form.is_valid():
        return _render(request, page, contact_form=form)
    contact_message_create(**form.cleaned_data)
    messages.success(request, "Thanks, your message reached us. We answer within one business day.")
    return redirect(page.url + "#message")


@rate_limited("consultation")
def _consultation(request, page):
    form = ConsultationForm(request.POST)
    if not form.is_valid():
        return _render(request, page, consultation_form=form)
    consultation_request_create(**form.save_fields())
    messages.success(request, "Thanks, we will confirm your consultation by e-mail.")
    return redirect(page.url + "#consultation")


def contact_page_post(request, *, page):
    handler = {"contact": _contact, "consultation": _consultation}.get(request.POST.get("form", "contact"))
    if handler is None:
        return HttpResponseBadRequest("Unknown form.")
    return handler(request, page)


def robots_txt(request):
    """Crawlers may read the marketing pages; the private areas are not for them."""
    private = [
        f"/{settings.ADMIN_URL}",
        f"/{settings.WAGTAIL_ADMIN_URL}",
        "/accounts/",
        "/stores/",
        "/billing/",
        "/support/",
        "/signup/",
        "/django-rq/",
        "/stripe/",
    ]
    lines = [
        "User-agent: *",
        *(f"Disallow: {path}" for path in private),
        "",
        f"Sitemap: {request.build_absolute_uri('/sitemap.xml')}",
        "",
    ]
    return HttpResponse("\n".join(lines), content_type="text/plain; charset=utf-8")

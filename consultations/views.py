from django.contrib import messages
from django.shortcuts import redirect, render

from consultations.forms import ConsultationForm, ContactForm
from consultations.services import consultation_request_create, contact_message_create
from shophosting.ratelimits import rate_limited


@rate_limited("contact")
def contact_view(request):
    form = ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact_message_create(**form.cleaned_data)
        messages.success(request, "Thanks, your message reached us. We answer within one business day.")
        return redirect("consultations:contact")
    return render(request, "consultations/contact.html", {"form": form})


@rate_limited("consultation")
def consultation_view(request):
    form = ConsultationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        consultation_request_create(**form.cleaned_data)
        messages.success(request, "Thanks, we will confirm your consultation by e-mail.")
        return redirect("consultations:consultation")
    return render(request, "consultations/consultation.html", {"form": form})

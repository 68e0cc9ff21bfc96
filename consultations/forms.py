import datetime
import zoneinfo

from django import forms
from django.conf import settings
from django.utils import timezone

from consultations.attachments import attachment_check
from consultations.models import ConsultationRequest, ContactMessage, Ticket
from shophosting.core.validators import single_line
from stores.selectors import store_list_for_customer


class ContactForm(forms.ModelForm):
    class Meta:
        model = ContactMessage
        fields = ["name", "email", "company", "subject", "message"]
        widgets = {"message": forms.Textarea(attrs={"rows": 6})}


TIMEZONES = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


class ConsultationForm(forms.ModelForm):
    """A call at a date and time in the visitor's own time zone, inside our business days and hours."""

    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time", "step": 900}))
    timezone = forms.ChoiceField(choices=[(name, name.replace("_", " ")) for name in TIMEZONES], initial="UTC")

    class Meta:
        model = ConsultationRequest
        fields = ["name", "email", "phone", "company", "platform", "date", "time", "timezone", "message"]
        widgets = {"message": forms.Textarea(attrs={"rows": 4})}

    def clean(self):
        cleaned = super().clean()
        date, time, zone = cleaned.get("date"), cleaned.get("time"), cleaned.get("timezone")
        if not (date and time and zone):
            return cleaned
        when = datetime.datetime.combine(date, time, tzinfo=zoneinfo.ZoneInfo(zone))
        if when <= timezone.now() + datetime.timedelta(hours=1):
            self.add_error("date", "Please pick a time at least an hour from now.")
            return cleaned
        ours = when.astimezone(zoneinfo.ZoneInfo(settings.CONSULTATION_TIMEZONE))
        first, last = settings.CONSULTATION_HOURS
        if ours.weekday() not in settings.CONSULTATION_DAYS:
            self.add_error("date", f"We take calls {business_days_text()}; please pick one of those days.")
        elif not (first <= ours.hour < last):
            self.add_error(
                "time",
                f"That is {ours:%H:%M} for us ({settings.CONSULTATION_TIMEZONE}); we take calls from {first}:00 to "
                f"{last}:00 there.",
            )
        cleaned["preferred_time"] = when.astimezone(datetime.UTC)
        return cleaned

    def save_fields(self) -> dict:
        fields = {
            name: self.cleaned_data[name] for name in ("name", "email", "phone", "company", "platform", "message")
        }
        return {
            **fields,
            "timezone": self.cleaned_data["timezone"],
            "preferred_time": self.cleaned_data["preferred_time"],
        }


def business_days_text() -> str:
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    days = sorted(settings.CONSULTATION_DAYS)
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        return f"{names[days[0]]} to {names[days[-1]]}"
    return ", ".join(names[d] for d in days)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class AttachmentsField(forms.FileField):
    """Up to 5 files; each is checked (type by magic bytes, size) when the ticket service stores it."""

    widget = MultipleFileInput

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Optional: up to 5 files (PDF, images, ZIP or text), at most 10 MB each.")
        super().__init__(**kwargs)

    def clean(self, data, initial=None):
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if len(files) > 5:
            raise forms.ValidationError("Attach at most 5 files.")
        for upload in files:
            attachment_check(upload)
        return files


class TicketForm(forms.Form):
    category = forms.ChoiceField(choices=Ticket.Category.choices)
    store = forms.ModelChoiceField(queryset=None, required=False, empty_label="Not about one store")
    subject = forms.CharField(max_length=200, validators=[single_line])
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 6}), max_length=20_000)
    attachments = AttachmentsField()

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)

        self.fields["store"].queryset = store_list_for_customer(customer)


class TicketReplyForm(forms.Form):
    body = forms.CharField(label="Your reply", widget=forms.Textarea(attrs={"rows": 4}), max_length=20_000)
    attachments = AttachmentsField()

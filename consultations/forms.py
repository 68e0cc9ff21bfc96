from django import forms
from django.utils import timezone

from consultations.attachments import attachment_check
from consultations.models import ConsultationRequest, ContactMessage, Ticket


class ContactForm(forms.ModelForm):
    class Meta:
        model = ContactMessage
        fields = ["name", "email", "company", "subject", "message"]
        widgets = {"message": forms.Textarea(attrs={"rows": 6})}


class ConsultationForm(forms.ModelForm):
    class Meta:
        model = ConsultationRequest
        fields = ["name", "email", "phone", "company", "platform", "preferred_time", "message"]
        widgets = {
            "preferred_time": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "message": forms.Textarea(attrs={"rows": 4}),
        }

    def clean_preferred_time(self):
        preferred = self.cleaned_data["preferred_time"]
        if preferred <= timezone.now():
            raise forms.ValidationError("Please pick a time in the future.")
        return preferred


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
    subject = forms.CharField(max_length=200)
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 6}), max_length=20_000)
    attachments = AttachmentsField()

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        from stores.selectors import store_list_for_customer

        self.fields["store"].queryset = store_list_for_customer(customer)


class TicketReplyForm(forms.Form):
    body = forms.CharField(label="Your reply", widget=forms.Textarea(attrs={"rows": 4}), max_length=20_000)
    attachments = AttachmentsField()

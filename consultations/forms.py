from django import forms
from django.utils import timezone

from consultations.models import ConsultationRequest, ContactMessage


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

from django.contrib import admin

from consultations.models import ConsultationRequest, ContactMessage


@admin.register(ContactMessage)
class ContactMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "name", "email", "subject", "status"]
    list_filter = ["status"]
    search_fields = ["name", "email", "subject", "message"]
    readonly_fields = ["created_at", "name", "email", "company", "subject", "message"]


@admin.register(ConsultationRequest)
class ConsultationRequestAdmin(admin.ModelAdmin):
    list_display = ["created_at", "name", "email", "platform", "preferred_time", "status"]
    list_filter = ["status", "platform"]
    search_fields = ["name", "email", "company"]
    readonly_fields = ["created_at"]

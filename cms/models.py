from django.db import models
from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField
from wagtail.models import Page


class HomePage(Page):
    """The marketing home page. Pricing, Features, About and Contact pages arrive with the CMS issue."""

    headline = models.CharField(max_length=200, default="E-commerce hosting that is ready in seconds")
    intro = RichTextField(blank=True)

    content_panels = Page.content_panels + [FieldPanel("headline"), FieldPanel("intro")]
    max_count = 1

    def get_context(self, request, *args, **kwargs):
        from billing.selectors import plan_list_public

        context = super().get_context(request, *args, **kwargs)
        context["plans"] = plan_list_public()
        return context

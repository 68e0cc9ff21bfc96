"""The marketing site's pages. What visitors see is only ever the published revision; editors work on drafts,
preview them, schedule them and roll back through Wagtail's revisions."""

from django.db import models
from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

from billing.selectors import plan_catalogue_by_platform, plan_list_public
from cms import views
from cms.blocks import SectionsBlock
from cms.page_cache import page_cache_allow
from consultations.forms import ConsultationForm, ContactForm

INTRO_FEATURES = ["bold", "italic", "link"]


class MarketingPage(Page):
    """Title, SEO fields (Wagtail's promote tab: SEO title, search description), an intro and sections."""

    intro = RichTextField(blank=True, features=INTRO_FEATURES)
    body = StreamField(SectionsBlock(), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]
    parent_page_types = ["cms.HomePage"]
    subpage_types: list[str] = []
    max_count = 1

    class Meta:
        abstract = True

    def serve(self, request, *args, **kwargs):
        # The published page is the same for every anonymous visitor: cms/page_cache.py may keep it (it
        # checks the visitor, the response and the CSRF token use itself).
        page_cache_allow(request)
        return super().serve(request, *args, **kwargs)


class HomePage(MarketingPage):
    headline = models.CharField(max_length=200, default="E-commerce hosting that is ready in seconds")
    subheadline = models.CharField(max_length=300, blank=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("headline"),
        FieldPanel("subheadline"),
        FieldPanel("intro"),
        FieldPanel("body"),
    ]
    parent_page_types = ["wagtailcore.Page"]
    subpage_types = ["cms.PricingPage", "cms.FeaturesPage", "cms.AboutPage", "cms.ContactPage"]

    def get_context(self, request, *args, **kwargs):

        context = super().get_context(request, *args, **kwargs)
        context["plans"] = plan_list_public()
        return context


class PricingPage(MarketingPage):
    """Reads the plan catalogue live: a price change in billing shows here without a content edit."""

    template = "cms/pricing_page.html"

    def get_context(self, request, *args, **kwargs):

        context = super().get_context(request, *args, **kwargs)
        context["platforms"] = plan_catalogue_by_platform()
        return context


class FeaturesPage(MarketingPage):
    template = "cms/marketing_page.html"


class AboutPage(MarketingPage):
    template = "cms/marketing_page.html"


class ContactPage(MarketingPage):
    """The contact form (stored, e-mailed to support) and the consultation booking form, on one page."""

    def serve(self, request, *args, **kwargs):
        if request.method == "POST":
            return views.contact_page_post(request, page=self)
        return super().serve(request, *args, **kwargs)

    def get_context(self, request, *args, **kwargs):

        context = super().get_context(request, *args, **kwargs)
        context.setdefault("contact_form", ContactForm())
        context.setdefault("consultation_form", ConsultationForm())
        return context

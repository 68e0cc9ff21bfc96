from django.db import transaction
from wagtail.models import Page, Site

from cms.models import HomePage

HOME_INTRO = (
    "<p>Pick WooCommerce or Magento 2, pay, and get your own isolated store with a TLS certificate, "
    "daily backups and a dashboard that shows every step.</p>"
)


@transaction.atomic
def site_pages_seed() -> HomePage:
    """Make a HomePage the default site's root (idempotent), replacing Wagtail's placeholder page."""
    home = HomePage.objects.first()
    if home is None:
        root = Page.get_first_root_node()
        placeholder = Page.objects.filter(depth=2, slug="home").exclude(content_type__model="homepage").first()
        if placeholder is not None:
            placeholder.slug = "wagtail-welcome"
            placeholder.save()
        home = root.add_child(instance=HomePage(title="ShopHosting", slug="home", intro=HOME_INTRO))
        home.save_revision().publish()
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        Site.objects.create(
            hostname="localhost", port=80, root_page=home, is_default_site=True, site_name="ShopHosting"
        )
    elif site.root_page_id != home.pk:
        site.root_page = home
        site.site_name = "ShopHosting"
        site.save()
    Page.objects.filter(depth=2, slug="wagtail-welcome").delete()
    return home

"""The marketing site's initial content. `site_seed` is idempotent: it creates what is missing and never
touches a page that exists, so editors' changes survive every deploy."""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from wagtail.models import Page, Site

from cms.models import AboutPage, ContactPage, FeaturesPage, HomePage, PricingPage


def _text(heading: str, html: str) -> dict:
    return {"type": "text", "value": {"heading": heading, "body": html}}


def _cta(heading: str, text: str, label: str, link: str) -> dict:
    value = {"heading": heading, "text": text, "button_label": label, "button_link": link}
    return {"type": "call_to_action", "value": value}


HOME = {
    "title": "Managed WooCommerce and Magento hosting",
    "slug": "home",
    "headline": "Your online store, live in seconds, looked after for years",
    "subheadline": "Pick WooCommerce or Magento 2, pay once, and get your own isolated store with HTTPS, "
    "backups every few hours and a dashboard that shows every step.",
    "search_description": "Managed WooCommerce and Magento 2 hosting: an isolated store of your own, live in "
    "seconds, with HTTPS, frequent backups and one-click restores.",
    "body": [
        {
            "type": "figures",
            "value": {
                "items": [
                    {"value": "< 60 s", "label": "from payment to a live store"},
                    {"value": "99.9%", "label": "uptime on SLA plans"},
                    {"value": "6 h", "label": "between automatic backups"},
                    {"value": "12 h", "label": "saved per month on server chores"},
                ]
            },
        },
        {
            "type": "features",
            "value": {
                "heading": "Everything a store needs, nothing to babysit",
                "items": [
                    {
                        "title": "Isolated by design",
                        "text": "Your database, cache and web server run in their "
                        "own containers with fixed memory and CPU. A busy neighbour never slows you down.",
                    },
                    {
                        "title": "HTTPS from the start",
                        "text": "We request and renew your Let's Encrypt "
                        "certificate as soon as your domain points at us.",
                    },
                    {
                        "title": "Backups you can restore",
                        "text": "Encrypted, deduplicated backups every few "
                        "hours. Restore the database, the files or both from your dashboard.",
                    },
                    {
                        "title": "See what happens",
                        "text": "Setup, restores and restarts show a live checklist, "
                        "so you always know where things stand.",
                    },
                ],
            },
        },
        {
            "type": "testimonials",
            "value": {
                "heading": "Merchants who moved to us",
                "items": [
                    {
                        "quote": "We moved our WooCommerce shop on a Friday afternoon and sold the same evening. "
                        "Checkout has never been faster.",
                        "name": "Maya Lindqvist",
                        "role": "Owner, Nordic Tea Co.",
                    },
                    {
                        "quote": "The restore button saved a launch day. Two clicks, and the catalogue was back "
                        "as it was that morning.",
                        "name": "Daniel Osei",
                        "role": "Operations, Kente Supply",
                    },
                ],
            },
        },
        _cta(
            "Ready when you are",
            "Choose a plan and your store is live before your coffee is.",
            "See pricing",
            "/pricing/",
        ),
    ],
}

PAGES = [
    (
        PricingPage,
        {
            "title": "Pricing",
            "slug": "pricing",
            "search_description": "Simple monthly plans for WooCommerce and Magento 2 stores. Memory, CPU and "
            "features per plan, no setup fees, cancel any time.",
            "intro": "<p>One monthly price per store, with memory and CPU reserved for you. No setup fee, no "
            "traffic surcharge, and you can change or cancel your plan at any time.</p>",
            "body": [
                {
                    "type": "faq",
                    "value": {
                        "heading": "Questions about pricing",
                        "items": [
                            {
                                "question": "Can I change plans later?",
                                "answer": "<p>Yes. Upgrades and downgrades "
                                "take effect from your next billing period, and your store keeps running.</p>",
                            },
                            {
                                "question": "What happens if a payment fails?",
                                "answer": "<p>We e-mail you and "
                                "retry. Your store stays online during a grace period while you update your "
                                "card.</p>",
                            },
                            {
                                "question": "Do you keep my data if I cancel?",
                                "answer": "<p>We take a final "
                                "backup and keep it for the retention period, so you can come back or take it "
                                "with you.</p>",
                            },
                        ],
                    },
                },
                _cta(
                    "Not sure which plan fits?",
                    "Tell us about your catalogue and traffic; we will recommend a plan.",
                    "Book a free consultation",
                    "/contact/#consultation",
                ),
            ],
        },
    ),
    (
        FeaturesPage,
        {
            "title": "Features",
            "slug": "features",
            "search_description": "Isolated containers, automatic HTTPS, frequent encrypted backups, one-click "
            "restores and live progress for every operation.",
            "intro": "<p>ShopHosting runs each store as its own stack of containers behind a hardened proxy, "
            "and gives you the tools to look after it without a system administrator.</p>",
            "body": [
                {
                    "type": "features",
                    "value": {
                        "heading": "Performance",
                        "items": [
                            {
                                "title": "Reserved resources",
                                "text": "Memory and CPU limits are enforced per "
                                "store, so your shop gets what your plan promises.",
                            },
                            {
                                "title": "Redis object cache",
                                "text": "Pages and sessions are cached in memory on every plan that lists it.",
                            },
                            {
                                "title": "Varnish for Magento",
                                "text": "Magento stores get a full-page cache in front of the web server.",
                            },
                        ],
                    },
                },
                {
                    "type": "features",
                    "value": {
                        "heading": "Safety",
                        "items": [
                            {
                                "title": "Encrypted backups",
                                "text": "Every few hours, deduplicated and checked for restorability every week.",
                            },
                            {
                                "title": "Restores you control",
                                "text": "Database only, files only, or both. We "
                                "back up the current state first, just in case.",
                            },
                            {
                                "title": "Private by default",
                                "text": "Database ports never face the internet; "
                                "admin tools are only reachable through us.",
                            },
                        ],
                    },
                },
                _cta(
                    "See it for yourself", "Pick a plan and watch your store being built.", "See pricing", "/pricing/"
                ),
            ],
        },
    ),
    (
        AboutPage,
        {
            "title": "About us",
            "slug": "about",
            "search_description": "ShopHosting is a small team of engineers who run online stores for "
            "merchants, so they can spend their time on customers instead of servers.",
            "intro": "<p>We are a small team of engineers who have run online shops for a living. We built the "
            "hosting we wished we had: fast to start, boring to run, and honest about what is happening.</p>",
            "body": [
                _text(
                    "What we believe",
                    "<p>Merchants should not need a system administrator to sell online. "
                    "Every store deserves its own resources, real backups and a clear picture of its state. "
                    "When something goes wrong, you should hear it from us first, in plain words.</p>",
                ),
                _text(
                    "How we work",
                    "<p>Every store runs in isolated containers on servers we operate. Changes "
                    "are automated and recorded, backups are tested, and our support team answers real "
                    "questions from real people.</p>",
                ),
                _cta(
                    "Talk to a human",
                    "Questions about moving your store? We are happy to help.",
                    "Contact us",
                    "/contact/",
                ),
            ],
        },
    ),
    (
        ContactPage,
        {
            "title": "Contact",
            "slug": "contact",
            "search_description": "Write to the ShopHosting team or book a free consultation call about "
            "hosting your WooCommerce or Magento store.",
            "intro": "<p>Write to us, or book a free call at a time that suits you. We answer every message "
            "within one business day.</p>",
            "body": [],
        },
    ),
]


def _site_address() -> tuple[str, int]:
    address = urlsplit(settings.SITE_URL)
    return address.hostname or "localhost", address.port or (443 if address.scheme == "https" else 80)


def _publish(page: Page) -> Page:
    page.save_revision().publish()
    return page


@transaction.atomic
def site_seed() -> HomePage:
    """The whole marketing site: the home page as the default site's root and its four pages, published."""
    home = HomePage.objects.first()
    if home is None:
        root = Page.get_first_root_node()
        placeholder = Page.objects.filter(depth=2, slug="home").exclude(content_type__model="homepage").first()
        if placeholder is not None:
            placeholder.slug = "wagtail-welcome"
            placeholder.save()
        home = _publish(root.add_child(instance=HomePage(**HOME)))
    hostname, port = _site_address()
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        Site.objects.create(hostname=hostname, port=port, root_page=home, is_default_site=True, site_name="ShopHosting")
    elif site.root_page_id != home.pk:
        site.root_page = home
        site.hostname, site.port, site.site_name = hostname, port, "ShopHosting"
        site.save()
    Page.objects.filter(depth=2, slug="wagtail-welcome").delete()
    for model, fields in PAGES:
        if not model.objects.exists():
            _publish(home.add_child(instance=model(show_in_menus=True, **fields)))
    return home

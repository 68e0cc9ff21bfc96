"""The marketing site in Wagtail: what is published is exactly what visitors see. Drafts, publishing, revert,
scheduled publishing and preview go through Wagtail's real admin views, as an editor would."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Page
from wagtail.test.utils.form_data import querydict_from_html

from accounts.roles import Role
from accounts.services import staff_user_ensure
from billing.models import Plan
from cms.models import AboutPage, ContactPage, FeaturesPage, HomePage, PricingPage
from consultations.models import ConsultationRequest, ContactMessage
from shophosting.jobs import pages_publish_scheduled
from tests.consultation_slots import business_slot

# The plan catalogue (woo_plan seeds it) and the marketing site, as site_seed and plans_seed make them; the
# visitors' page cache on, as in production: nothing an editor does may show late because of it.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("woo_plan", "site_pages", "page_cache_on")]


def visitor(path: str) -> str:
    response = Client().get(path)
    assert response.status_code == 200, path
    return response.content.decode()


@pytest.fixture
def editor(client):
    user, _ = staff_user_ensure(email="editor@example.com", role=Role.EDITOR, password="editor password 1")
    client.force_login(user)
    return user


def edit_form(client, page: Page):
    """The page's edit form as Wagtail renders it, as the data the browser would send back.

    Wagtail draws StreamFields with JavaScript, so their inputs are not in the HTML: the tests edit the contact
    page, whose seeded body is empty, and send the empty StreamField as the browser would."""
    assert not page.specific.body, "edit a page with an empty body (see the docstring)"
    html = client.get(reverse("wagtailadmin_pages:edit", args=[page.pk])).content.decode()
    return _as_browser_sends(querydict_from_html(html, form_id="page-edit-form"))


def _as_browser_sends(data):
    data["body-count"] = "0"
    if data.get("show_in_menus") == "":
        data["show_in_menus"] = "on"  # a checked box without a value attribute is sent as "on"
    return data


def save(client, page: Page, data, *, publish: bool):
    if publish:
        data["action-publish"] = "action-publish"
    response = client.post(reverse("wagtailadmin_pages:edit", args=[page.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return response


def test_a_draft_leaves_the_live_page_unchanged_and_publishing_shows_it(client, editor):
    contact = ContactPage.objects.get()
    data = edit_form(client, contact)
    data["title"] = "Talk to the ShopHosting team"

    save(client, contact, data, publish=False)

    assert "Talk to the ShopHosting team" not in visitor("/contact/")
    contact.refresh_from_db()
    assert contact.has_unpublished_changes and contact.title == "Contact"

    save(client, contact, data, publish=True)

    assert "<title>Talk to the ShopHosting team · ShopHosting</title>" in visitor("/contact/")


def test_reverting_to_an_earlier_revision_brings_back_the_old_content(client, editor):
    contact = ContactPage.objects.get()
    original = contact.revisions.order_by("created_at", "pk").first()
    data = edit_form(client, contact)
    data["title"] = "A title we regret"
    save(client, contact, data, publish=True)
    assert "A title we regret" in visitor("/contact/")
    latest = contact.revisions.order_by("-created_at", "-pk").first()

    compare = client.get(reverse("wagtailadmin_pages:revisions_compare", args=[contact.pk, original.pk, latest.pk]))
    assert compare.status_code == 200 and "A title we regret" in compare.content.decode()
    revert_page = client.get(reverse("wagtailadmin_pages:revisions_revert", args=[contact.pk, original.pk]))
    reverted = _as_browser_sends(querydict_from_html(revert_page.content.decode(), form_id="page-edit-form"))
    assert reverted["title"] == "Contact"
    save(client, contact, reverted, publish=True)

    page = visitor("/contact/")
    assert "<title>Contact · ShopHosting</title>" in page and "A title we regret" not in page


def test_a_scheduled_publish_goes_live_when_the_runner_passes_its_time(client, editor):
    contact = ContactPage.objects.get()
    go_live = timezone.now() + timedelta(days=1)
    data = edit_form(client, contact)
    data["title"] = "Contact us in the new year"
    data["go_live_at"] = go_live.strftime("%Y-%m-%d %H:%M")

    save(client, contact, data, publish=True)

    assert "Contact us in the new year" not in visitor("/contact/")
    call_command("publish_scheduled")
    assert "Contact us in the new year" not in visitor("/contact/")  # not yet
    with time_machine.travel(go_live + timedelta(minutes=1)):
        pages_publish_scheduled()  # what the periodic-job runner calls every minute
        assert "Contact us in the new year" in visitor("/contact/")


def test_a_scheduled_expiry_takes_the_page_down(client, editor):
    contact = ContactPage.objects.get()
    data = edit_form(client, contact)
    data["expire_at"] = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    save(client, contact, data, publish=True)
    assert "Contact" in visitor("/contact/")

    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        pages_publish_scheduled()
        assert Client().get("/contact/").status_code == 404


def test_preview_shows_the_draft_and_visitors_never_see_it(client, editor):
    contact = ContactPage.objects.get()
    data = edit_form(client, contact)
    data["title"] = "Secret launch contact"
    preview_url = reverse("wagtailadmin_pages:preview_on_edit", args=[contact.pk])

    assert client.post(preview_url, data).json()["is_valid"] is True
    preview = client.get(preview_url)

    assert preview.status_code == 200 and "Secret launch contact" in preview.content.decode()
    assert "Secret launch contact" not in visitor("/contact/")
    assert Client().get(preview_url).status_code == 302  # visitors are sent to the sign-in page
    contact.refresh_from_db()
    assert contact.title == "Contact" and not contact.has_unpublished_changes


def test_the_pricing_page_reads_plans_live(client):
    pricing = PricingPage.objects.get()
    revisions = pricing.revisions.count()
    core = Plan.objects.get(slug="woocommerce-commerce-core")
    page = visitor("/pricing/")
    assert f'data-price="{core.slug}">${core.price_monthly:.2f}' in page

    core.price_monthly = "123.45"
    core.save()  # as the plan admin saves it
    retired = Plan.objects.get(slug="magento-commerce-core")
    retired.active = False
    retired.save()

    page = visitor("/pricing/")
    assert f'data-price="{core.slug}">$123.45' in page
    assert 'data-plan="magento-commerce-core"' not in page  # retired plans are not sold
    assert pricing.revisions.count() == revisions  # no content edit was needed


def test_the_pricing_page_groups_plans_by_platform_with_a_feature_matrix(client):
    page = visitor("/pricing/")
    active = Plan.objects.filter(active=True)
    for plan in active:
        assert f'data-plan="{plan.slug}"' in page and reverse("billing:signup", args=[plan.slug]) in page
    assert 'id="platform-woocommerce"' in page and 'id="platform-magento"' in page
    assert 'data-platform="woocommerce"' in page  # the switcher
    assert page.count('class="table feature-matrix"') == 2
    matrix = page.split('id="platform-woocommerce"')[1].split("</table>")[0]
    woo = list(active.filter(platform="woocommerce").order_by("display_order", "price_monthly"))
    staging = [plan.staging for plan in woo]
    row = matrix.split("Staging</th>")[1].split("</tr>")[0]
    assert [cell.startswith('<span class="yes"') for cell in row.split("<td>")[1:]] == staging


def test_every_page_has_a_title_description_open_graph_and_a_sitemap_entry(client):
    sitemap = visitor("/sitemap.xml")
    for page in Page.objects.live().type(HomePage, PricingPage, FeaturesPage, AboutPage, ContactPage).specific():
        html = visitor(page.url)
        # A home page from before the seed had SEO fields falls back to the site's description.
        description = page.search_description or "Managed WooCommerce and Magento 2 hosting"
        assert f'<meta name="description" content="{description}' in html, page.url
        assert f'<meta property="og:title" content="{page.seo_title or page.title}">' in html
        assert f'<link rel="canonical" href="{page.full_url}">' in html
        assert f"<loc>{page.full_url}</loc>" in sitemap
    robots = visitor("/robots.txt")
    assert "Disallow: /admin/" in robots and "Sitemap: http://testserver/sitemap.xml" in robots
    missing = Client().get("/no-such-page/")
    assert missing.status_code == 404 and 'class="site-header"' in missing.content.decode()  # the site's style


def test_drafts_never_reach_the_sitemap_or_the_menu(client, editor):
    home = HomePage.objects.get()
    draft = home.add_child(instance=AboutPage(title="Careers", slug="careers", live=False, show_in_menus=True))
    assert Client().get("/careers/").status_code == 404
    assert "/careers/" not in visitor("/sitemap.xml") and 'href="/careers/"' not in visitor("/")
    draft.save_revision().publish()
    assert 'href="/careers/"' in visitor("/")


def test_the_contact_page_stores_and_emails_messages_and_books_consultations(
    client, django_capture_on_commit_callbacks
):
    message = {"form": "contact", "name": "Ada", "email": "ada@example.com", "subject": "Moving", "message": "Hi"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/contact/", message)
    assert response.status_code == 302 and response["Location"] == "/contact/#message"
    assert ContactMessage.objects.get().subject == "Moving" and mail.outbox[0].subject == "[contact] Moving"
    assert "your message reached us" in client.get("/contact/").content.decode()

    bad = client.post("/contact/", {**message, "email": "nope", "message": "Keep this text"})
    assert bad.status_code == 200 and "Enter a valid email address." in bad.content.decode()
    assert "Keep this text" in bad.content.decode() and ContactMessage.objects.count() == 1

    booking = {"form": "consultation", "name": "Bo", "email": "bo@example.com", "platform": "magento", "message": "Hi"}
    response = client.post("/contact/", {**booking, **business_slot(days_ahead=10)})
    assert response.status_code == 302 and response["Location"] == "/contact/#consultation"
    assert ConsultationRequest.objects.get().email == "bo@example.com"
    assert client.post("/contact/", {"form": "spam"}).status_code == 400


def test_the_site_seed_is_idempotent_and_keeps_editors_changes(client, editor):
    contact = ContactPage.objects.get()
    data = edit_form(client, contact)
    data["title"] = "Write to us"
    save(client, contact, data, publish=True)

    call_command("site_seed")
    call_command("site_seed")

    assert Page.objects.type(HomePage, PricingPage, FeaturesPage, AboutPage, ContactPage).count() == 5
    assert ContactPage.objects.get().title == "Write to us"
    menu = visitor("/")
    for path in ("/pricing/", "/features/", "/about/", "/contact/"):
        assert f'href="{path}"' in menu


def test_editors_use_the_cms_admin_but_not_the_operations_admin(client, editor):
    assert client.get("/cms-admin/").status_code == 200
    assert client.get(reverse("wagtailadmin_pages:edit", args=[FeaturesPage.objects.get().pk])).status_code == 200
    assert client.get(reverse("admin:stores_store_changelist")).status_code == 403
    support, _ = staff_user_ensure(email="desk@example.com", role=Role.SUPPORT, password="support password 1")
    client.force_login(support)
    assert client.get("/cms-admin/").status_code == 302  # Wagtail sends them to its sign-in page

"""The role matrix: every URL of the staff admin, walked as each role, answers or refuses exactly as the
roles table in issue #7 says. A new admin page that is not in the matrix fails this test until it is."""

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, resolve, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.roles import Role
from accounts.services import staff_user_ensure
from provisioning.models import ProvisioningJob
from stores.models import Host, Store
from stores.services import store_create

pytestmark = pytest.mark.django_db
SUPER, ADMIN, SUPPORT, EDITOR = Role.SUPER_ADMIN, Role.ADMIN, Role.SUPPORT, Role.EDITOR

# What admin and support may do per model (super admins may do everything the ModelAdmin offers at all).
# Models not listed here are for super admins only.
MODEL_ACCESS: dict[str, dict[Role, set[str]]] = {
    "accounts.staffuser": {ADMIN: {"view"}},
    "accounts.customer": {ADMIN: {"view", "change"}, SUPPORT: {"view"}},
    "accounts.auditevent": {ADMIN: {"view"}},
    "stores.store": {ADMIN: {"view", "add", "change", "delete"}, SUPPORT: {"view"}},
    "stores.host": {ADMIN: {"view"}},
    "provisioning.provisioningjob": {ADMIN: {"view"}, SUPPORT: {"view"}},
    "provisioning.rollout": {ADMIN: {"view", "add"}, SUPPORT: {"view"}},
    "provisioning.incident": {ADMIN: {"view"}, SUPPORT: {"view"}},
    # The warm pool's size: set by those who run operations; its stacks are read-only for everyone.
    "provisioning.pooltarget": {ADMIN: {"view", "add", "change"}, SUPPORT: {"view"}},
    "provisioning.poolstack": {ADMIN: {"view"}, SUPPORT: {"view"}},
    "backups.backuprun": {ADMIN: {"view"}},
    "backups.restorerun": {ADMIN: {"view"}},
    "backups.hostrecovery": {ADMIN: {"view"}},  # the progress of a lost host's stores restored elsewhere
    "billing.plan": {ADMIN: {"view"}, SUPPORT: {"view"}},
    "billing.subscription": {ADMIN: {"view"}, SUPPORT: {"view"}},
    "consultations.contactmessage": {ADMIN: {"view", "change"}, SUPPORT: {"view", "change"}},
    "consultations.consultationrequest": {ADMIN: {"view", "change"}, SUPPORT: {"view", "change"}},
    "consultations.ticket": {ADMIN: {"view", "change"}, SUPPORT: {"view", "change"}},
    "statuspage.statusnotice": {ADMIN: {"view", "add", "change"}, SUPPORT: {"view"}},
    # Editors work in Wagtail; the images and documents they upload there also list here.
    "wagtailimages.image": {EDITOR: {"view", "add", "change"}},
    "wagtaildocs.document": {EDITOR: {"view", "add", "change"}},
}
# The admin's own pages beyond the standard model views: who may open them, and how they are asked.
EVERYONE = set(Role)
STAFF_DESK = {SUPER, ADMIN, SUPPORT}
OPERATORS = {SUPER, ADMIN}
CUSTOM_ACCESS: dict[str, tuple[set[Role], str]] = {
    "index": (EVERYONE, "GET"),
    "password_change": (EVERYONE, "GET"),
    "password_change_done": (EVERYONE, "GET"),
    "jsi18n": (EVERYONE, "GET"),
    "autocomplete": (EVERYONE, "skip"),  # answers only for fields that declare autocomplete
    "view_on_site": (EVERYONE, "skip"),
    "login": (EVERYONE, "skip"),
    "logout": (EVERYONE, "skip"),
    "app_list": (EVERYONE, "skip"),  # walked per app below
    "system_health": (OPERATORS, "GET"),
    "logs": (OPERATORS, "GET"),
    "system_backup_run": (OPERATORS, "POST"),
    "rq_failed_clear": (OPERATORS, "POST"),
    "job_retry": (OPERATORS, "POST"),
    "store_operate": (OPERATORS, "POST"),
    "stores_store_credentials": (OPERATORS, "POST"),
    "stores_store_names": (OPERATORS, "GET"),
    "stores_store_move": (OPERATORS, "GET"),
    "provisioning_provisioningjob_progress": (STAFF_DESK, "GET"),
    "billing_subscription_overview": (STAFF_DESK, "GET"),
    "otp_totp_totpdevice_config": ({SUPER}, "GET"),
    "otp_totp_totpdevice_qrcode": ({SUPER}, "GET"),
}
STANDARD_SUFFIXES = ("_changelist", "_add", "_change", "_delete", "_history")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


@pytest.fixture
def staff(db):
    return {
        role: staff_user_ensure(email=f"{role.value}@example.com", role=role, password="role password 123")[0]
        for role in Role
    }


@pytest.fixture
def sample_objects(user_factory, woo_plan):
    customer = user_factory(email="walk@example.com")
    store = store_create(customer=customer, plan=woo_plan, domain="walk.test")
    job = ProvisioningJob.objects.create(store=store, kind=ProvisioningJob.Kind.PROVISION)
    return {"store": store, "job": job, "customer": customer}


def _expected_model_access(role: Role, label: str, permission: str, model_admin, superuser: User, rf) -> bool:
    request = rf.get("/")
    request.user = superuser
    offered = getattr(model_admin, f"has_{permission}_permission")(request)
    if role == SUPER:
        return offered
    return offered and permission in MODEL_ACCESS.get(label, {}).get(role, set())


def test_every_admin_url_answers_each_role_as_the_matrix_says(client, staff, sample_objects, rf):
    failures = []
    objects = {
        "stores.store": sample_objects["store"],
        "provisioning.provisioningjob": sample_objects["job"],
        "accounts.customer": sample_objects["customer"],
        "accounts.staffuser": staff[SUPPORT],
        "stores.host": Host.objects.first(),
    }
    AuditEvent.objects.create(event="walk")
    for role in Role:
        client.force_login(staff[role])
        for model, model_admin in admin.site._registry.items():
            label = model._meta.label_lower
            info = (model._meta.app_label, model._meta.model_name)
            obj = objects.get(label) or model._default_manager.first()
            pk = obj.pk if obj is not None else 999_999_999
            urls = {
                "view": reverse("admin:{}_{}_changelist".format(*info)),
                "add": reverse("admin:{}_{}_add".format(*info)),
                "change": reverse("admin:{}_{}_change".format(*info), args=[pk]),
                "delete": reverse("admin:{}_{}_delete".format(*info), args=[pk]),
            }
            for permission, url in urls.items():
                allowed = _expected_model_access(role, label, permission, model_admin, staff[SUPER], rf)
                if permission == "change":  # the change page also shows objects read-only to viewers
                    allowed = allowed or _expected_model_access(role, label, "view", model_admin, staff[SUPER], rf)
                status = client.get(url).status_code
                if (status == 403) == allowed:
                    failures.append(f"{role.value} {permission} {label}: {url} answered {status}")
    assert not failures, "\n".join(failures)


def test_every_custom_admin_page_is_in_the_matrix_and_enforced(client, staff, sample_objects):
    kwargs_for = {
        "job_id": sample_objects["job"].pk,
        "store_id": sample_objects["store"].pk,
        "pk": TOTPDevice.objects.create(user=staff[SUPPORT], name="walk", confirmed=False).pk,
    }
    failures = []
    for route, name in _walk(admin.site.get_urls()):
        if not name or name.endswith(STANDARD_SUFFIXES):
            continue
        if name not in CUSTOM_ACCESS:
            failures.append(f"{name} ({route}) is not in CUSTOM_ACCESS: decide who may open it")
            continue
        allowed_roles, method = CUSTOM_ACCESS[name]
        if method == "skip":
            continue
        pattern_kwargs = [part.split(">")[0].split(":")[-1] for part in route.split("<")[1:]]
        url = reverse(f"admin:{name}", kwargs={k: kwargs_for[k] for k in pattern_kwargs})
        for role in Role:
            client.force_login(staff[role])
            response = client.post(url, {}) if method == "POST" else client.get(url)
            if (response.status_code == 403) == (role in allowed_roles):
                failures.append(f"{role.value} {method} {url} answered {response.status_code}")
    assert not failures, "\n".join(failures)


def test_each_role_sees_exactly_its_menu(client, staff):
    expected = {
        SUPPORT: {
            "accounts.customer",
            "stores.store",
            "provisioning.provisioningjob",
            "provisioning.rollout",
            "provisioning.incident",
            "provisioning.pooltarget",
            "provisioning.poolstack",
            "billing.plan",
            "billing.subscription",
            "consultations.contactmessage",
            "consultations.consultationrequest",
            "consultations.ticket",
            "statuspage.statusnotice",
        },
    }
    expected[ADMIN] = expected[SUPPORT] | {
        "accounts.staffuser",
        "accounts.auditevent",
        "stores.host",
        "backups.backuprun",
        "backups.restorerun",
        "backups.hostrecovery",
    }
    expected[SUPER] = {m._meta.label_lower for m in admin.site._registry}
    expected[EDITOR] = {"wagtailimages.image", "wagtaildocs.document"}
    for role in Role:
        client.force_login(staff[role])
        response = client.get(reverse("admin:index"))
        shown = {
            f"{app['app_label']}.{entry['object_name'].lower()}"
            for app in response.context["app_list"]
            for entry in app["models"]
        }
        assert shown == expected[role], role


def test_each_role_gets_exactly_its_actions(client, staff, rf):
    expected = {
        (SUPER, "stores.store"): {"suspend", "resume", "retry"},
        (ADMIN, "stores.store"): {"suspend", "resume", "retry"},
        (SUPPORT, "stores.store"): set(),
        (SUPER, "accounts.staffuser"): {"reset_staff_password", "deactivate", "reactivate"},
        (ADMIN, "accounts.staffuser"): set(),
        (SUPER, "accounts.customer"): {"deactivate", "reactivate", "close_account"},
        (ADMIN, "accounts.customer"): {"deactivate", "reactivate", "close_account"},
        (SUPPORT, "accounts.customer"): set(),
        (SUPER, "provisioning.provisioningjob"): {"retry"},
        (ADMIN, "provisioning.provisioningjob"): {"retry"},
        (SUPPORT, "provisioning.provisioningjob"): set(),
    }
    registry = {m._meta.label_lower: model_admin for m, model_admin in admin.site._registry.items()}
    for (role, label), actions in expected.items():
        request = rf.get("/")
        request.user = staff[role]
        assert set(registry[label].get_actions(request)) == actions, (role, label)


def test_the_rq_dashboard_and_the_cms_admin_follow_the_roles(client, staff):
    for role, rq_allowed in [(SUPER, True), (ADMIN, True), (SUPPORT, False)]:
        client.force_login(staff[role])
        assert client.get("/django-rq/").status_code == (200 if rq_allowed else 403), role
        assert client.post("/django-rq/queues/0/empty/").status_code != 403 or not rq_allowed
        assert client.get("/django-rq/stats.json").status_code == (200 if rq_allowed else 403), role
    for role in (ADMIN, SUPPORT):
        client.force_login(staff[role])
        assert client.get("/cms-admin/").status_code != 200, role  # the CMS is for super admins and editors
    for role in (SUPER, EDITOR):
        client.force_login(staff[role])
        assert client.get("/cms-admin/").status_code == 200, role
    client.force_login(staff[EDITOR])
    assert client.get("/django-rq/").status_code == 403


def test_support_cannot_run_a_destructive_action_by_posting_it(client, staff, sample_objects):
    store = sample_objects["store"]
    client.force_login(staff[SUPPORT])
    changelist = reverse("admin:stores_store_changelist")
    response = client.post(changelist, {"action": "suspend", "_selected_action": [store.pk]})
    # An action the role does not have is not offered, so Django refuses it as unknown: nothing is queued.
    assert response.status_code in (200, 302)
    assert not store.jobs.exclude(pk=sample_objects["job"].pk).exists()
    assert (
        client.post(reverse("admin:stores_store_delete", args=[store.pk]), {"confirm": "walk.test"}).status_code == 403
    )
    store.refresh_from_db()
    assert store.status == Store.Status.AWAITING_PAYMENT


def test_the_stripe_mirror_is_read_only_for_everyone_and_listed_last(client, staff, rf, sample_objects):
    """dj-stripe's models are read-only even for super admins (changes go through Stripe or our billing
    actions), its action pages (cancel a subscription, sync) are gone, and the models staff never use are not
    registered at all."""
    from djstripe import models as djstripe_models

    request = rf.get("/")
    request.user = staff[SUPER]
    mirror = {m: ma for m, ma in admin.site._registry.items() if m._meta.app_label == "djstripe"}
    assert {m._meta.model_name for m in mirror} >= {"customer", "subscription", "invoice", "charge", "refund"}
    for model, model_admin in mirror.items():
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request) and not model_admin.has_delete_permission(request)
        assert model_admin.has_view_permission(request) and model_admin.get_actions(request) == {}, model
    for hidden in (djstripe_models.Payout, djstripe_models.APIKey, djstripe_models.Transfer):
        assert hidden not in admin.site._registry
    assert not {"auth.group", "otp_static.staticdevice"} & {m._meta.label_lower for m in admin.site._registry}
    assert "djstripe_custom_action" not in {name for _route, name in _walk(admin.site.get_urls())}

    client.force_login(staff[SUPER])
    assert client.get(reverse("admin:djstripe_charge_add")).status_code == 403
    assert client.post(reverse("admin:djstripe_refund_add"), {}).status_code == 403
    cancel = "/admin/djstripe/subscription/action/_cancel/subscription/"  # dj-stripe's "cancel in Stripe" page
    assert resolve(cancel).url_name != "djstripe_custom_action" and client.post(cancel, {}).status_code != 200
    response = client.get(reverse("admin:index"))
    apps = response.context["app_list"]
    assert apps[-1]["app_label"] == "djstripe" and apps[-1]["name"].startswith("Stripe mirror (read-only")
    assert [app["app_label"] for app in apps[:3]] == ["stores", "provisioning", "backups"]
    page = response.content.decode()
    assert 'href="/admin/djstripe/' in page and "/admin/djstripe/charge/add/" not in page
    # The operations panels come before the records.
    assert page.index('id="dashboard-incidents"') < page.index('id="dashboard-jobs"') < page.index('id="content-main"')
    assert page.index('id="dashboard-capacity"') < page.index('id="dashboard-customers"')
    assert f'data-job-active="{sample_objects["job"].pk}"' in page  # the queued job, in the jobs panel

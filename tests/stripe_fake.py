"""Stripe's HTTP API, faked at its boundary with `responses`.

stripe-python sends its requests through `requests`; `responses` answers them here from a small in-memory
store seeded with the Stripe-shaped JSON fixtures in tests/fixtures/stripe/. Nothing in the project is
patched: the gateway, dj-stripe's syncs and the webhook endpoint all run for real against these answers.
Webhooks are built from the same objects and signed with the endpoint's secret, as Stripe signs them.
"""

import copy
import hashlib
import hmac
import itertools
import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import responses

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
# Collection path -> fixture name, for GET by id and list calls.
COLLECTIONS = {
    "customers": "customer",
    "products": "product",
    "prices": "price",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "checkout/sessions": "checkout_session",
}
PREFIXES = {
    "customer": "cus",
    "product": "prod",
    "price": "price",
    "subscription": "sub",
    "invoice": "in",
    "checkout_session": "cs_test",
    "billing_portal_session": "bps",
}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def form_decode(body: str | bytes | None) -> dict:
    """Stripe's form encoding (`items[0][price]=x`) back into nested dicts and lists."""
    if isinstance(body, bytes):
        body = body.decode()
    result: dict = {}
    for key, value in parse_qsl(body or "", keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = result
        for part, following in zip(parts, parts[1:], strict=False):
            container = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(copy.copy(container))
                node = node[index]
            else:
                node = node.setdefault(part, container)
        last = parts[-1]
        value = {"true": True, "false": False}.get(value, value)
        if isinstance(node, list):
            node.append(value)
        else:
            node[last] = value
    return result


def _error(status: int, message: str, code: str = "resource_missing"):
    return status, {}, json.dumps({"error": {"type": "invalid_request_error", "code": code, "message": message}})


class StripeFake:
    def __init__(self, mock: responses.RequestsMock, base_url: str):
        self.mock = mock
        self.base = base_url.rstrip("/")
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self._ids = itertools.count(1)
        self.account = fixture("account")
        self._failures: list[tuple[str, str, int, str]] = []
        self._latency: dict[tuple[str, str], float] = {}
        pattern = re.compile(re.escape(self.base) + r"/v1/.*")
        # Everything that is not Stripe (the Docker engine, pebble, the stores) goes through untouched.
        mock.add_passthru(re.compile(r"^(?!" + re.escape(self.base) + r"/)"))
        for method in (responses.GET, responses.POST, responses.DELETE):
            mock.add_callback(method, pattern, callback=self._dispatch)

    # --- building objects ------------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        return f"{PREFIXES[kind]}_{next(self._ids):06d}fake"

    def add(self, kind: str, **fields) -> dict:
        obj = fixture(kind)
        obj.update(fields)
        obj.setdefault("id", self.new_id(kind))
        if obj["id"].endswith("TEMPLATE"):
            obj["id"] = self.new_id(kind)
        self.objects[obj["id"]] = obj
        return obj

    def product_with_price(self, *, name: str, amount_cents: int, interval: str = "month", interval_count: int = 1):
        product = self.add("product", name=name)
        price = self.add(
            "price",
            product=product["id"],
            unit_amount=amount_cents,
            unit_amount_decimal=str(amount_cents),
            recurring={"interval": interval, "interval_count": interval_count, "meter": None, "usage_type": "licensed"},
        )
        product["default_price"] = price["id"]
        return product, price

    def subscription(self, *, customer: str, price: dict, status: str = "active", quantity: int = 1, **fields) -> dict:
        sub = self.add("subscription", customer=customer, status=status, **fields)
        item = sub["items"]["data"][0]
        item.update(
            id=f"si_{next(self._ids):06d}fake", price=copy.deepcopy(price), quantity=quantity, subscription=sub["id"]
        )
        sub["items"]["url"] = f"/v1/subscription_items?subscription={sub['id']}"
        return sub

    def invoice(self, *, subscription: dict, status: str = "paid", amount_cents: int | None = None, **fields) -> dict:
        items = subscription["items"]["data"]
        amount = sum(i["price"]["unit_amount"] * i["quantity"] for i in items) if amount_cents is None else amount_cents
        invoice = self.add(
            "invoice",
            customer=subscription["customer"],
            status=status,
            amount_due=amount,
            amount_paid=amount if status == "paid" else 0,
            amount_remaining=0 if status == "paid" else amount,
            parent={
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": subscription["id"]},
                "type": "subscription_details",
            },
            **fields,
        )
        invoice["number"] = f"SH-{invoice['id'][3:9]}"
        if status != "paid":
            invoice["status_transitions"] = {**invoice["status_transitions"], "paid_at": None}
        return invoice

    # --- webhooks --------------------------------------------------------------------------------------

    def event(
        self,
        event_type: str,
        obj: dict,
        *,
        event_id: str | None = None,
        previous: dict | None = None,
        created: int | None = None,
    ) -> dict:
        """A webhook event as Stripe sends it. `created` (Unix seconds, default now) orders events: Stripe
        delivers them in any order."""
        data = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        return {
            "id": event_id or f"evt_{next(self._ids):06d}fake",
            "object": "event",
            "api_version": "2026-08-26.dahlia",
            "created": created or int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    @staticmethod
    def signed_headers(payload: str, secret: str, *, timestamp: int | None = None) -> dict:
        timestamp = timestamp or int(time.time())
        signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
        return {"HTTP_STRIPE_SIGNATURE": f"t={timestamp},v1={signature}"}

    # --- the HTTP side ---------------------------------------------------------------------------------

    def fail_next(
        self, method: str, path: str, *, status: int = 500, message: str = "An error occurred", times: int = 1
    ) -> None:
        """Stripe answers the next `times` `method path` requests with an error (an outage, a refusal).
        stripe-python retries 5xx answers by itself, so an outage needs more than one."""
        self._failures.extend([(method, path, status, message)] * times)

    def slow(self, method: str, path_pattern: str, seconds: float) -> None:
        """Stripe takes `seconds` to answer `method` requests whose path matches `path_pattern` (a regex), so
        concurrent requests overlap as they would against the real API."""
        self._latency[(method, path_pattern)] = seconds

    def requests_to(self, method: str, path_prefix: str) -> list[dict]:
        return [params for m, path, params in self.calls if m == method and path.startswith(path_prefix)]

    def _dispatch(self, request):
        url = urlsplit(request.url)
        path = url.path.removeprefix("/v1/")
        params = form_decode(request.body) if request.method == "POST" else dict(parse_qsl(url.query))
        self.calls.append((request.method, path, params))
        for (method, pattern), seconds in self._latency.items():
            if method == request.method and re.fullmatch(pattern, path):
                time.sleep(seconds)
        for failure in self._failures:
            if failure[:2] == (request.method, path):
                self._failures.remove(failure)
                kind = "api_error" if failure[2] >= 500 else "invalid_request_error"
                return failure[2], {}, json.dumps({"error": {"type": kind, "message": failure[3]}})
        if path == "account":
            return 200, {}, json.dumps(self.account)
        if request.method == "POST":
            return self._post(path, params)
        if request.method == "GET":
            return self._get(path, params)
        if request.method == "DELETE" and (match := re.fullmatch(r"customers/([^/]+)", path)):
            customer = self.objects.get(match[1])
            if customer is None or customer.get("deleted"):
                return _error(404, f"No such customer: '{match[1]}'")
            self.objects[match[1]] = {"id": match[1], "object": "customer", "deleted": True}
            return 200, {}, json.dumps(self.objects[match[1]])
        if request.method == "DELETE" and (match := re.fullmatch(r"subscriptions/([^/]+)", path)):
            sub = self.objects.get(match[1])
            if sub is None:
                return _error(404, f"No such subscription: '{match[1]}'")
            if sub["status"] == "canceled":
                return _error(400, "This subscription has already been canceled.", code="resource_missing")
            sub.update(status="canceled", canceled_at=int(time.time()), ended_at=int(time.time()))
            return 200, {}, json.dumps(sub)
        return _error(400, f"{request.method} /v1/{path} is not faked", code="not_faked")

    def _get(self, path: str, params: dict):
        if re.fullmatch(r"products/[^/]+/features", path):
            return 200, {}, json.dumps({"object": "list", "data": [], "has_more": False, "url": f"/v1/{path}"})
        for collection in COLLECTIONS:
            if path == collection:
                kind = COLLECTIONS[collection]
                found = [o for o in self.objects.values() if o["object"] == fixture(kind)["object"]]
                return 200, {}, json.dumps({"object": "list", "data": found, "has_more": False, "url": f"/v1/{path}"})
            if path.startswith(collection + "/"):
                object_id = path[len(collection) + 1 :]
                if object_id in self.objects:
                    return 200, {}, json.dumps(self.objects[object_id])
                return _error(404, f"No such object: '{object_id}'")
        return _error(404, f"GET /v1/{path} is not faked", code="not_faked")

    def _post(self, path: str, params: dict):
        params.pop("expand", None)
        if path == "checkout/sessions":
            session = self.add(
                "checkout_session",
                client_reference_id=params.get("client_reference_id"),
                customer_email=params.get("customer_email"),
                metadata=params.get("metadata", {}),
                success_url=params.get("success_url"),
                cancel_url=params.get("cancel_url"),
                allow_promotion_codes=params.get("allow_promotion_codes"),
                mode=params.get("mode"),
            )
            session["url"] = f"https://checkout.stripe.com/c/pay/{session['id']}"
            return 200, {}, json.dumps(session)
        if match := re.fullmatch(r"checkout/sessions/([^/]+)/expire", path):
            session = self.objects.get(match[1])
            if session is None:
                return _error(404, f"No such checkout session: '{match[1]}'")
            if session["status"] != "open":
                return _error(400, "Only open sessions can be expired.", code="checkout_session_not_open")
            session["status"] = "expired"
            return 200, {}, json.dumps(session)
        if path == "billing_portal/sessions":
            portal = self.add("billing_portal_session", customer=params["customer"], return_url=params["return_url"])
            portal["url"] = f"https://billing.stripe.com/p/session/{portal['id']}"
            return 200, {}, json.dumps(portal)
        if path == "products":
            return 200, {}, json.dumps(self.add("product", **params))
        if path == "prices":
            amount = int(params.pop("unit_amount"))
            recurring = {"interval_count": 1, "meter": None, "usage_type": "licensed", **params.pop("recurring", {})}
            recurring["interval_count"] = int(recurring["interval_count"])
            price = self.add(
                "price", unit_amount=amount, unit_amount_decimal=str(amount), recurring=recurring, **params
            )
            return 200, {}, json.dumps(price)
        if match := re.fullmatch(r"(products|prices)/([^/]+)", path):
            obj = self.objects.get(match[2])
            if obj is None:
                return _error(404, f"No such object: '{match[2]}'")
            if match[1] == "prices" and {"unit_amount", "currency", "recurring"} & params.keys():
                return _error(400, "Received unknown parameter: unit_amount", code="parameter_unknown")
            obj.update(params)
            return 200, {}, json.dumps(obj)
        if match := re.fullmatch(r"subscriptions/([^/]+)", path):
            sub = self.objects.get(match[1])
            if sub is None:
                return _error(404, f"No such subscription: '{match[1]}'")
            for change in params.get("items", []):
                item = next(i for i in sub["items"]["data"] if i["id"] == change["id"])
                item["price"] = copy.deepcopy(self.objects[change["price"]])
            return 200, {}, json.dumps(sub)
        return _error(400, f"POST /v1/{path} is not faked", code="not_faked")


def webhook_endpoint_create(*, endpoint_id: str, secret: str, url: str):
    """dj-stripe's row for a webhook endpoint whose signatures are checked with `secret`."""
    import uuid

    from djstripe.models import WebhookEndpoint

    return WebhookEndpoint.objects.create(
        id=endpoint_id,
        secret=secret,
        url=url,
        api_version="2026-08-26.dahlia",
        livemode=False,
        djstripe_uuid=uuid.uuid4(),
        djstripe_validation_method="verify_signature",
        djstripe_tolerance=300,
        enabled_events=["*"],
        status="enabled",
    )

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_POST

from accounts.services import audit_record
from stores.selectors import store_of_customer_or_404
from stores.services import store_credentials


@require_POST
@login_required
def store_credentials_view(request, store_id: int):
    """Credentials are shown only on an explicit request (POST, CSRF-checked), and each reveal is audited."""
    store = store_of_customer_or_404(request.user, store_id)
    audit_record(event="credentials_revealed", request=request, store_id=store.pk)
    response = render(
        request,
        "stores/store_credentials.html",
        {"store": store, "credentials": store_credentials(store)},
    )
    response["Cache-Control"] = "no-store"
    return response

"""One request id per request: taken from nginx's X-Request-ID (or made), echoed in the response, written in
every JSON log line, and carried into the RQ jobs the request enqueues."""

import json
import uuid
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from rq import SimpleWorker

from shophosting.core import request_id

pytestmark = pytest.mark.django_db


def json_lines(name: str) -> list[dict]:
    path = Path(settings.STAFF_LOG_FILES[name])
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")] if path.exists() else []


def test_the_id_from_nginx_is_echoed_and_a_bad_one_is_replaced(client):
    assert client.get("/readyz", HTTP_X_REQUEST_ID="0123456789abcdef")["X-Request-ID"] == "0123456789abcdef"
    replaced = client.get("/readyz", HTTP_X_REQUEST_ID="bad id; drop table")["X-Request-ID"]
    assert replaced != "bad id; drop table" and len(replaced) == 32
    assert client.get("/readyz")["X-Request-ID"] != client.get("/readyz")["X-Request-ID"]


def test_log_lines_of_a_request_carry_its_id(client):
    request = f"req-404-{uuid.uuid4().hex}"
    client.get("/no-such-page-at-all/", HTTP_X_REQUEST_ID=request)
    [line] = [line for line in json_lines("web") if line.get("request_id") == request]
    assert line["level"] == "WARNING" and line["logger"] == "django.request" and "Not Found" in line["message"]


def test_a_job_enqueued_in_a_request_logs_with_the_requests_id():
    queue = django_rq.get_queue("default")
    done, periodic = f"done by the worker {uuid.uuid4()}", f"a periodic job {uuid.uuid4()}"
    token = request_id.current.set("req-job-000000000042")
    try:
        job = queue.enqueue("tests.request_id_probe.log_one_line", done)
    finally:
        request_id.current.reset(token)
    assert job.meta["request_id"] == "req-job-000000000042"

    django_rq.get_worker("default", worker_class=SimpleWorker).work(burst=True)

    [line] = [line for line in json_lines("worker") if line.get("message") == done]
    assert line["request_id"] == "req-job-000000000042" and line["logger"] == "provisioning.probe"
    # Outside any request a job still gets an id of its own.
    token = request_id.current.set("")
    try:
        queue.enqueue("tests.request_id_probe.log_one_line", periodic)
    finally:
        request_id.current.reset(token)
    django_rq.get_worker("default", worker_class=SimpleWorker).work(burst=True)
    [line] = [line for line in json_lines("worker") if line.get("message") == periodic]
    assert line["request_id"].startswith("job-")

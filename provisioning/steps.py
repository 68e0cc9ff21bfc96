"""The steps of every job kind. Each step is idempotent: it looks up what exists before creating it,
so a retried job resumes where the last one failed. Steps talk to Docker only through docker_client and
hold no database transaction while they do."""

import dataclasses
import http.client
import ipaddress
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.urls import reverse

from provisioning import acme_client, docker_client, egress, hooks, pool, proxy
from provisioning.exceptions import ProvisioningError
from provisioning.host_images import host_images_ensure
from provisioning.kinds import JobKind, Log, Step
from provisioning.lost_hosts import store_place_new
from provisioning.models import JobLogLine, JobStep
from provisioning.models import ProvisioningJob as JobModel
from provisioning.services import store_certificate_short, store_tls_ensure, store_vhost_write
from provisioning.stacks import stack_for
from provisioning.stacks.base import SECRETS_DIR, ServiceSpec
from provisioning.store_images import store_images_record
from shophosting.core.emails import email_send
from stores import services as store_services
from stores.models import Store, StoreName

MB = 1024 * 1024
LIVE_HOOKS_STEP = "hooks"  # a job holding this step runs provisioning.hooks when it succeeds


def _stack(store: Store):
    return stack_for(store)


def _services(store: Store):
    creds = store_services.store_credentials(store)
    return _stack(store).services(credentials=creds, include_optional=store.phpmyadmin_enabled)


def allocate(store: Store, log: Log, *, job_id: int | None = None) -> None:
    """Place the store: claim a ready stack of the warm pool (provisioning/pool.py), else a host and a port
    for a stack built from scratch. A provision job (`job_id`) records which path it took; a staging copy's
    job (no job_id) never claims."""
    claimed = pool.pool_claim(store_id=store.pk) if job_id is not None else None
    if claimed is not None:
        store = Store.objects.select_related("host", "plan", "customer").get(pk=store.pk)
        _path_record(job_id, JobModel.Path.CLAIMED)
        log(f"claimed warm pool stack {store.slug} (ready since {claimed.ready_at:%H:%M:%S} UTC)")
        log(f"placed on host {store.host.name}, web port {store.host.bind_address}:{store.port}")
        log(f"images: {', '.join(f'{role} {image}' for role, image in sorted(claimed.images.items()))}")
    else:
        store = store_place_new(store_id=store.pk)
        if not store.stack_key:  # a retry of a claimed store keeps its path
            _path_record(job_id, JobModel.Path.BUILT)
            images = store_images_record(store_id=store.pk)
            log(f"placed on host {store.host.name}, web port {store.host.bind_address}:{store.port}")
            log(f"images: {', '.join(f'{role} {image}' for role, image in sorted(images.items()))}")
            # Placement does not look at images: the host gets the ones this store runs that it lacks, from
            # the platform's engine, before any container (provisioning/host_images.py); a retry finds them.
            services = _stack(store).services(include_optional=store.phpmyadmin_enabled)
            host_images_ensure(host=store.host, images=[service.image for service in services], log=log)
        else:
            _path_record(job_id, JobModel.Path.CLAIMED)
            log(f"runs the warm pool stack {store.slug} it claimed, on host {store.host.name}")
    # Before any container: the application's configuration lists the names it answers on.
    names = store_services.store_names_ensure(store_id=store.pk)
    log(f"names: {', '.join(row.name for row in names)}")
    creds = store_services.store_credentials(store)
    if not creds.get("db_password"):
        store_services.store_credentials_save(
            store_id=store.pk,
            credentials={
                "db_user": _stack(store).database_user,
                "db_password": secrets.token_urlsafe(24),
                "db_root_password": secrets.token_urlsafe(24),
                "admin_user": store.customer.email.split("@")[0][:50] or "admin",
                "admin_email": store.customer.email,
                # Magento wants letters and digits; the suffix guarantees both.
                "admin_password": secrets.token_urlsafe(16) + "7q",
            },
        )
        log("generated database and admin credentials (stored encrypted)")
    else:
        log("credentials already exist; reusing them")


def _path_record(job_id: int | None, path: str) -> None:
    if job_id is not None:
        JobModel.objects.filter(pk=job_id).update(path=path)


def network_and_volumes(store: Store, log: Log) -> None:
    stack = _stack(store)
    network = docker_client.network_ensure(
        name=stack.network_name,
        labels=stack.labels,
        bridge=egress.bridge_name(stack.network_name),  # inside the host's outbound fence
        base_url=store.host.engine,
    )
    log(f"network {network.name} ready (bridge {network.bridge})")
    for service in stack.services():
        for suffix in service.volumes:
            name = docker_client.volume_ensure(
                name=stack.volume_name(suffix), labels=stack.labels, base_url=store.host.engine
            )
            log(f"volume {name} ready")


def service_container_ensure(
    service: ServiceSpec,
    *,
    name: str,
    network: str,
    labels: dict[str, str],
    volumes: dict[str, str],
    publish: tuple | None = None,
    base_url: docker_client.EngineRef = None,
) -> tuple[docker_client.ContainerInfo, bool]:
    """The running container of one service, with its limits, confinement and secret files: a store's own,
    or a throwaway copy of it (backup verification) on another network and volumes."""
    return docker_client.stack_container_ensure(
        name=name,
        image=service.image,
        network=network,
        alias=service.role,
        labels=labels,
        memory_bytes=service.memory_mb * MB,
        cpus=service.cpus,
        environment=service.environment,
        volumes=volumes,
        command=service.command,
        healthcheck=service.healthcheck,
        publish=publish,
        pids_limit=service.pids_limit,
        cap_add=list(service.cap_add),
        read_only=service.read_only,
        tmpfs=service.tmpfs,
        secrets=service.secrets,
        secrets_dir=SECRETS_DIR,
        secrets_gid=service.secrets_gid,
        user=service.user,
        base_url=base_url,
    )


def _start(store: Store, services, log: Log, *, at_once: bool = False) -> None:
    """Start (or find running) each service's container, in order; `at_once` starts them all together
    (services that do not depend on each other: the data services), which saves each start's wait on the
    engine but the longest."""
    stack = _stack(store)
    engine = store.host.engine

    def start(service):
        return service_container_ensure(
            service,
            name=stack.container_name(service.role),
            network=stack.network_name,
            labels={**stack.labels, "shophosting.role": service.role},
            volumes={stack.volume_name(suffix): path for suffix, path in service.volumes.items()},
            publish=_publish(store, service),
            base_url=engine,
        )

    if at_once and len(services) > 1:
        results = _parallel(*(lambda service=service: start(service) for service in services))
    else:
        results = [start(service) for service in services]
    for service, (info, created) in zip(services, results, strict=True):
        verb = "started" if created else "already running"
        log(f"{service.role}: {info.name} {verb} ({service.memory_mb} MB, {service.cpus} CPU)")


def _publish(store: Store, service) -> tuple[str | int, ...] | None:
    if not service.published_port:
        return None
    if store.status == Store.Status.POOLED:
        # A warm pool stack is reachable from its own host at most: published on the port it holds only where
        # that is a loopback address (no vhost routes to it), so a claim keeps the running container; on a
        # host whose stores publish beyond loopback it publishes nothing, and a claim replaces it.
        if service.optional or not ipaddress.ip_address(store.host.bind_address).is_loopback:
            return None
    if service.optional:  # tools such as phpMyAdmin: loopback only, on a port Docker picks
        return (service.published_port, "127.0.0.1", None)
    return (service.published_port, store.host.bind_address, store.port)


def data_services_start(store: Store, log: Log) -> None:
    app_roles = _stack(store).app_roles
    _start(store, [s for s in _services(store) if s.role not in app_roles], log, at_once=True)


def wait_http(
    store: Store,
    log: Log,
    *,
    timeout: float,
    accept_server_errors: bool = False,
    address: tuple[str, int] | None = None,
    host: str | None = None,
) -> None:
    """Poll the published web port (never following redirects: those point at the store's real domain)
    until it answers below HTTP 500, or with any status at all with `accept_server_errors` (an update's
    checks judge the answer afterwards, and a 500 should fail them at once, not after `timeout`). With
    `address` and `host`: through the platform's nginx at that address, asking for that name.

    While it does not answer, the engine is asked about the web container every few seconds: an engine
    that went away (stopped, restarting) fails the wait at once, naming the engine, not after `timeout`."""
    ip, port = address or (store.host.bind_address, store.port)
    where = f"{ip}:{port}" + (f" (nginx, for {host})" if host else "")
    deadline = time.monotonic() + timeout
    engine_checked = time.monotonic()
    last_error = ""
    while time.monotonic() < deadline:
        if time.monotonic() - engine_checked > 2:
            docker_client.container_state(name=_stack(store).container_name("web"), base_url=store.host.engine)
            engine_checked = time.monotonic()
        connection = http.client.HTTPConnection(ip, port, timeout=5 if host else 2)
        try:
            connection.request("GET", "/", headers={"Host": host or store.domain, "Connection": "close"})
            status = connection.getresponse().status
            if status < 500 or accept_server_errors:
                log(f"web answers HTTP {status}" + (f" through nginx for {host}" if host else ""))
                return
            last_error = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last_error = str(exc)
        finally:
            connection.close()
        # Apache answers within a second of its start: polled often, the first answer is not waited for.
        time.sleep(0.05)
    raise ProvisioningError(f"the store's web service did not answer on {where} within {timeout:.0f} s ({last_error})")


def wait_db(store: Store, log: Log, *, timeout: float, container: str | None = None) -> None:
    """Until the store's database (or `container`, a copy of it on the same engine) accepts connections."""
    name = container or _stack(store).container_name("db")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, _ = docker_client.container_exec(
            name=name, command=["healthcheck.sh", "--connect"], base_url=store.host.engine
        )
        if code == 0:
            log("database accepts connections")
            return
        time.sleep(0.5)
    raise ProvisioningError(f"the database did not accept connections within {timeout:.0f} s")


def _cache_empty(store: Store, log: Log) -> None:
    """Empty the store's cache (its Redis is the store's alone) before its app starts: the database may
    have changed while the app was stopped and the cache kept running (a restore stops only the app), and
    keys that outlived that would serve the old rows. A Redis that does not answer yet has just started,
    and holds nothing (no persistence): nothing to empty, and no error."""
    stack = _stack(store)
    if not any(service.role == "cache" for service in stack.services()):
        return
    code, output = docker_client.container_exec(
        name=stack.container_name("cache"), command=["redis-cli", "FLUSHALL"], base_url=store.host.engine
    )
    log("cache emptied" if code == 0 and output.strip() == "OK" else f"cache not emptied: {output.strip()[:200]}")


def app_start(store: Store, log: Log, *, accept_server_errors: bool = False) -> None:
    """Start what serves requests, in the stack's order, from the images the store runs, and wait until
    its port answers (with any status, for a caller that judges the answer itself: an update's checks)."""
    _cache_empty(store, log)
    by_role = {s.role: s for s in _services(store)}
    _start(store, [by_role[role] for role in _stack(store).app_roles], log)  # in the stack's order
    wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT, accept_server_errors=accept_server_errors)


def app_install(store: Store, log: Log) -> None:
    wait_db(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    creds = store_services.store_credentials(store)
    stack = _stack(store)
    what = stack.install_name
    for command, environment in stack.install_commands(creds):
        code, output = docker_client.container_exec(
            name=stack.container_name("web"), command=command, environment=environment, base_url=store.host.engine
        )
        output = _without_secrets(output, creds)
        for line in output.strip().splitlines():
            log(line)
        if code != 0:
            raise ProvisioningError(f"{what} failed (exit {code}): {output.strip()[-500:]}")


def _without_secrets(text: str, creds: dict[str, str]) -> str:
    for key in ("admin_password", "db_password", "db_root_password", "pool_root_password"):
        if creds.get(key):
            text = text.replace(creds[key], "********")
    return text


def _vhost(store: Store, log: Log, *, mode: str, settle: bool = True) -> None:
    if not settings.NGINX_ENABLED:
        log(f"nginx is not enabled here; the store answers on {store.host.bind_address}:{store.port} only")
        return
    path = store_vhost_write(store=store, mode=mode, settle=settle)
    served = [mode] + (["HTTPS"] if "ssl_certificate " in path.read_text() else [])
    served += ["firewall"] if store.plan.advanced_security else []
    names = ", ".join(store.names.filter(status__in=StoreName.SERVED).values_list("name", flat=True))
    log(f"nginx vhost {path.name} written for {names} ({', '.join(served)}), nginx -t passed, reloaded")


def tls_certificate(store: Store, log: Log) -> None:
    """Issue the certificate. A failure leaves the store live on HTTP with a retry scheduled (not a failed job)."""
    if not (settings.NGINX_ENABLED and settings.TLS_ENABLED):
        log("TLS is not enabled here")
        return
    store = store_tls_ensure(store_id=store.pk)
    if store.tls_status == Store.TLS.ISSUED:
        log(f"certificate issued for {', '.join(acme_client.certificate_names(domain=store.proxy_key))}; HTTPS is on")
    elif store.tls_status == Store.TLS.FAILED:
        log(f"no certificate: {store.tls_error}")
    else:
        log(
            f"no certificate yet ({store.tls_error}); "
            f"attempt {store.tls_attempts + 1} at {store.tls_next_attempt_at:%H:%M} UTC"
        )


def tls_names_cover(store: Store, log: Log) -> None:
    """Get a certificate when the store's active names are not all on the one it has (a custom domain just
    proven or pointed at us again); nothing when they are (an HSTS change)."""
    if not (settings.NGINX_ENABLED and settings.TLS_ENABLED):
        log("TLS is not enabled here")
        return
    short = store_certificate_short(store)
    if not short:
        log("the certificate covers every active name")
        return
    log(f"not on the certificate yet: {', '.join(short)}")
    tls_certificate(store, log)


def app_recreate(store: Store, log: Log) -> None:
    """Recreate the application's containers (their data in volumes is kept), so their configuration (the
    primary name, the names they answer on) is the store's as it is now."""
    stack = _stack(store)
    for role in reversed(stack.app_roles):
        if docker_client.container_remove(name=stack.container_name(role), base_url=store.host.engine):
            log(f"{role} removed, to start again with the store's names")
    app_start(store, log)


def app_urls_replace(store: Store, log: Log) -> None:
    """The application's own URLs to the primary name: every other name of the store in its database becomes
    the primary's (WordPress: a serialized-safe search-replace, and home/siteurl; Magento: its base URLs)."""
    stack = _stack(store)
    primary = stack.primary_name
    others = sorted(set(store.names.exclude(name=primary).values_list("name", flat=True)) - {primary})
    wait_db(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    for command, environment in stack.url_replace_commands(old_names=others):
        code, output = docker_client.container_exec(
            name=stack.container_name("web"), command=command, environment=environment, base_url=store.host.engine
        )
        for line in output.strip().splitlines():
            log(line)
        if code != 0:
            raise ProvisioningError(f"changing the application's URLs failed (exit {code}): {output.strip()[-500:]}")
    log(f"the application's URLs are {stack.primary_url}/ now")


def vhost_proxy(store: Store, log: Log) -> None:
    _vhost(store, log, mode="proxy")


def vhost_maintenance(store: Store, log: Log) -> None:
    _vhost(store, log, mode="maintenance")


def vhost_as_is(store: Store, log: Log) -> None:
    """Rewrite the vhost in the store's present mode, e.g. with the firewall of a new plan."""
    _vhost(store, log, mode="maintenance" if store.status == Store.Status.SUSPENDED else "proxy")


def vhost_remove(store: Store, log: Log) -> None:
    # The store's files are named by its proxy key; a store from before that may still have them under its
    # signup domain (never adopted), removed only when its header says it is this store's.
    keys = [store.proxy_key] + ([store.domain] if proxy.vhost_belongs(domain=store.domain, store_id=store.pk) else [])
    for key in keys:
        if settings.NGINX_ENABLED and proxy.vhost_remove(domain=key):
            log(f"nginx vhost {key}.conf removed, nginx reloaded")
        # Only after the vhost is gone: a vhost naming a missing certificate fails the next `nginx -t`.
        if acme_client.certificate_remove(domain=key):
            log(f"certificate {key} deleted")


def live_hooks(store: Store, log: Log) -> None:
    """Say what happens once the store is live. The reactions themselves (provisioning.hooks) run when the
    job succeeds, since until then this job holds the store and no other operation (a backup) may start;
    they add what they did to this step's log."""
    registered = hooks.store_live_hooks()
    for hook in registered:
        log(f"when this job has finished and the store is live, {hook.promise}")
    if not registered:
        log("nothing is registered to happen when the store goes live")


def notify(store: Store, log: Log) -> None:
    email_send(
        template="store_ready",
        to=[store.customer.email],
        context={"store": store, "dashboard_path": reverse("stores:detail", args=[store.pk])},
    )
    log(f"e-mailed {store.customer.email} a link to the dashboard")


def containers_stop(store: Store, log: Log) -> None:
    stack = _stack(store)
    for service in reversed(stack.services(include_optional=True)):
        if docker_client.container_stop(name=stack.container_name(service.role), base_url=store.host.engine):
            log(f"{service.role} stopped")


def app_stop(store: Store, log: Log) -> None:
    """Stop what serves requests (the stack's app roles, last started first); the data services keep running."""
    stack = _stack(store)
    for role in reversed(stack.app_roles):
        if docker_client.container_stop(name=stack.container_name(role), base_url=store.host.engine):
            log(f"{role} stopped")


def containers_start(store: Store, log: Log) -> None:
    data_services_start(store, log)
    app_start(store, log)


def limits_apply(store: Store, log: Log) -> None:
    for service in _services(store):
        _limits_set(store, service)
        log(f"{service.role}: {service.memory_mb} MB, {service.cpus} CPU, {service.pids_limit} processes")


def _limits_set(store: Store, service: ServiceSpec) -> None:
    docker_client.container_update_limits(
        name=_stack(store).container_name(service.role),
        memory_bytes=service.memory_mb * MB,
        cpus=service.cpus,
        pids_limit=service.pids_limit,
        base_url=store.host.engine,
    )


def stack_remove(store: Store, log: Log) -> None:
    if store.host is None:
        log("the store was never placed on a host; nothing to remove")
        return
    removed = docker_client.labelled_objects_remove(
        label=f"shophosting.store={store.object_key}", base_url=store.host.engine
    )
    for kind, names in removed.items():
        log(f"removed {len(names)} {kind}")


def staging_copies_remove(store: Store, log: Log) -> None:
    """A store's staging copy goes with it: its vhost, basic-auth file, certificate, containers, network and
    volumes, its port, and its row becomes deleted (stores/staging.py). A copy busy with a job of its own
    fails this step with the reason; the teardown's retry removes it once that job has ended. A staging
    copy torn down on its own loses its basic-auth file here."""
    if store.staging_of_id and proxy.basic_auth_remove(store_id=store.pk):
        log("the staging copy's basic-auth file removed")
    copies = list(Store.objects.select_related("host", "plan").filter(staging_of=store).exclude(status=S.DELETED))
    if not copies:
        log("no staging copy")
        return
    for copy in copies:
        active = JobModel.objects.filter(store=copy, status__in=JobModel.ACTIVE).first()
        if active is not None and active.kind == K.TEARDOWN:
            log(f"staging copy {copy.domain} is being removed by its own job #{active.pk}")  # an account closure
            continue
        if active is not None:
            raise ProvisioningError(f"the staging copy {copy.domain} is busy ({active.kind}, job #{active.pk})")
        if copy.status != S.DELETING:
            store_services.store_transition(store_id=copy.pk, to=S.DELETING, note=f"its live store {store.pk} goes")
        vhost_remove(copy, log)
        if proxy.basic_auth_remove(store_id=copy.pk):
            log(f"{copy.domain}: basic-auth file removed")
        stack_remove(copy, log)
        port_release(copy, log)
        store_services.store_transition(store_id=copy.pk, to=S.DELETED, note=f"removed with its live store {store.pk}")
        log(f"staging copy {copy.domain} removed")


def _staging_copies(store: Store, statuses: set[str]) -> list[Store]:
    return list(Store.objects.select_related("host", "plan").filter(staging_of=store, status__in=statuses))


def staging_copies_suspend(store: Store, log: Log) -> None:
    """A suspended store's staging copy is suspended with it: the maintenance page (like any suspended store's,
    to everyone; still noindex) and every container stopped, whatever suspends the store (non-payment, staff, a final
    backup), since each goes through the suspend kind. First in the suspend, so a copy busy with a job of its
    own (a refresh) fails it before the live store is touched; its retry suspends both once that job ended.
    A copy suspended already (a retried suspend) is stopped again, which changes nothing."""
    copies = _staging_copies(store, set(S.values) - {S.DELETING, S.DELETED})
    if not copies:
        log("no staging copy")
        return
    for copy in copies:  # a copy being made counts: it would be live once its job ends
        active = JobModel.objects.filter(store=copy, status__in=JobModel.ACTIVE).first()
        if active is not None:
            raise ProvisioningError(
                f"the staging copy {copy.domain} is busy ({active.kind}, job #{active.pk}); nothing was suspended"
            )
    for copy in copies:
        if copy.status not in (S.ACTIVE, S.SUSPENDED):
            log(f"staging copy {copy.domain} is {copy.get_status_display().lower()}: left as it is")
            continue
        if copy.status == S.ACTIVE:
            copy = store_services.store_transition(
                store_id=copy.pk, to=S.SUSPENDED, note=f"its live store {store.pk} is suspended"
            )
        vhost_maintenance(copy, log)
        containers_stop(copy, log)
        log(f"staging copy {copy.domain} suspended with its live store")


def staging_copies_resume(store: Store, log: Log) -> None:
    """A resumed store's suspended staging copy starts again and is routed (behind its password). Last in the
    resume, after the live store answers: a copy that does not start is logged and left suspended (staff
    resume it from its own page), never holding its live store back."""
    copies = _staging_copies(store, {S.SUSPENDED})
    if not copies:
        log("no suspended staging copy")
        return
    for copy in copies:
        if JobModel.objects.filter(store=copy, status__in=JobModel.ACTIVE).exists():
            log(f"staging copy {copy.domain} is busy with a job of its own; left as it is")
            continue
        try:
            containers_start(copy, log)
            copy = store_services.store_transition(
                store_id=copy.pk, to=S.ACTIVE, note=f"its live store {store.pk} is resumed"
            )
            vhost_proxy(copy, log)
        except ProvisioningError as exc:
            log(f"staging copy {copy.domain} did not start again, left suspended for staff: {exc}")
            continue
        log(f"staging copy {copy.domain} resumed with its live store")


def port_release(store: Store, log: Log) -> None:
    store_services.store_release(store_id=store.pk)
    log("port released")


# A claimed pool stack becomes the store's: every password of the database changes (ALTER USER, so the pool's
# no longer opens it), in one client session opened with the root password of the secret file, the pool's
# or the store's (the files are rewritten at the same time, and a retry may find the change made already).
# Values come from the exec's environment; the account list from the server itself. The official image's
# `healthcheck` account (its healthcheck.sh reads the password from .my-healthcheck.cnf in the data directory)
# gets a new password too, written into that file (atomically, the mysql user's, 0600); without the file
# nothing uses the account, and it is dropped. No password appears in the step's log (the output is
# scrubbed of the store's and the pool's).
DB_PASSWORDS_ROTATE = r"""
set -euo pipefail
client() {
    local password error
    for password in "$(cat "$MARIADB_ROOT_PASSWORD_FILE")" "$POOL_ROOT_PASSWORD" "$NEW_ROOT_PASSWORD"; do
        if error=$(MYSQL_PWD="$password" mariadb -uroot -N -B -e "$1" 2>&1 >&3); then return 0; fi
        # Only a refused login tries the next password; any other error is the answer.
        [[ "$error" == *"Access denied"* ]] || { echo "$error" >&2; return 1; }
    done 3>&1
    echo "neither the pool's nor the store's root password opens the database" >&2
    return 1
}
# mariadb-install-db also makes root@<the pool container's hostname>: the server (skip-name-resolve) never
# matches it and cannot ALTER it; it goes, with any other account of those names beyond these hosts.
hosts="'localhost', '%', '127.0.0.1', '::1'"
cnf=/var/lib/mysql/.my-healthcheck.cnf
accounts=$(client "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host), ' ', User) FROM mysql.user
    WHERE User IN ('root', '$APP_USER', 'healthcheck') AND Host IN ($hosts)")
sql="DELETE FROM mysql.global_priv WHERE User IN ('root', '$APP_USER') AND Host NOT IN ($hosts); FLUSH PRIVILEGES; "
rotated=0
while read -r account user; do
    [[ -n "$account" ]] || continue
    case "$user" in
        root) sql+="ALTER USER $account IDENTIFIED BY '$NEW_ROOT_PASSWORD'; " ;;
        healthcheck)
            if [[ -f "$cnf" ]]; then sql+="ALTER USER $account IDENTIFIED BY '$NEW_HEALTHCHECK_PASSWORD'; "
            else sql+="DROP USER $account; "; fi ;;
        *) sql+="ALTER USER $account IDENTIFIED BY '$NEW_APP_PASSWORD'; " ;;
    esac
    rotated=$((rotated + 1))
done <<< "$accounts"
client "$sql FLUSH PRIVILEGES;"
if [[ -f "$cnf" ]] && grep -q "^user=healthcheck" "$cnf"; then
    # Made 0600 while root owns it (no capability to change the mode of another user's file), then the mysql
    # user's, then in place at once.
    (umask 0077; sed "s/^password=.*/password=$NEW_HEALTHCHECK_PASSWORD/" "$cnf" > "$cnf.tmp")
    chown mysql:mysql "$cnf.tmp"
    mv "$cnf.tmp" "$cnf"
fi
echo "$rotated database accounts have new passwords"
"""
SAFE_SECRET = re.compile(r"^[A-Za-z0-9_-]+$")


def _parallel(*calls):
    """Run engine calls at once (a claim's are independent and each mostly waits on the engine) and return
    their results in order; an error is raised once every call has ended. The calls must not touch the
    database (each thread would open a connection of its own): the caller reads first and logs after."""
    with ThreadPoolExecutor(max_workers=len(calls)) as executor:
        futures = [executor.submit(call) for call in calls]
    return [future.result() for future in futures]


def _claimed_make_own(store: Store, log: Log) -> None:
    """A claimed pool stack's data services and secret files become the store's, all at once: the database's
    passwords, the database container's password files (read by the platform's own clients, never by the
    running server), the web container's password file (read by every PHP request, so the running container
    uses it at once), and the exact plan's limits."""
    stack = _stack(store)
    creds = store_services.store_credentials(store)
    for key in ("db_password", "db_root_password"):
        if not SAFE_SECRET.match(creds[key]):  # token_urlsafe: never a quote that could end the SQL string
            raise ProvisioningError(f"refusing a {key} with characters outside [A-Za-z0-9_-]")
    engine = store.host.engine
    by_role = {service.role: service for service in _services(store)}
    pool_creds = store_services.store_credentials(pool.pool_stack_claimed_by(store).store)
    pool_root_password = pool_creds.get("db_root_password", "")

    def database() -> str:
        deadline = time.monotonic() + settings.STORE_WEB_READY_TIMEOUT
        while True:  # the pool's database runs already; after a host restart it may still be starting
            code, output = docker_client.container_exec(
                name=stack.container_name("db"),
                command=["bash", "-c", DB_PASSWORDS_ROTATE],
                environment={
                    "NEW_ROOT_PASSWORD": creds["db_root_password"],
                    "NEW_APP_PASSWORD": creds["db_password"],
                    "POOL_ROOT_PASSWORD": pool_root_password,
                    # Kept nowhere but in the data directory's own file, which the image's healthcheck reads.
                    "NEW_HEALTHCHECK_PASSWORD": secrets.token_urlsafe(24),
                    "APP_USER": stack.database_user,
                },
                base_url=engine,
            )
            output = _without_secrets(output, {**creds, "pool_root_password": pool_root_password})
            if code == 0 or "Can't connect" not in output or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if code != 0:
            raise ProvisioningError(f"rotating the database passwords failed (exit {code}): {output.strip()[-500:]}")
        return output.strip().splitlines()[-1] if output.strip() else "database passwords rotated"

    def limits() -> None:
        for service in by_role.values():
            _limits_set(store, service)

    rotated, *_ = _parallel(
        database,
        lambda: _secrets_rewrite(store, by_role["db"]),
        lambda: _secrets_rewrite(store, by_role["web"]),
        limits,
    )
    log(rotated)
    log("the database and web containers' password files are the store's")
    for service in by_role.values():
        log(f"{service.role}: {service.memory_mb} MB, {service.cpus} CPU, {service.pids_limit} processes")


def _secrets_rewrite(store: Store, service: ServiceSpec) -> None:
    stack = _stack(store)
    docker_client.container_secrets_rewrite(
        name=stack.container_name(service.role),
        image=service.image,
        labels=stack.labels,
        secrets=service.secrets,
        gid=service.secrets_gid,
        base_url=store.host.engine,
    )


def provision_data_services(store: Store, log: Log) -> None:
    data_services_start(store, log)
    if pool.pool_stack_claimed_by(store) is not None:
        _claimed_make_own(store, log)


def _claimed_in_place(store: Store) -> bool:
    """Whether the store's web container is the pool's, still running as it was built (claim in place)."""
    web = docker_client.container_summary(name=_stack(store).container_name("web"), base_url=store.host.engine)
    return web is not None and web.labels.get("shophosting.pool") == "1"


def provision_app(store: Store, log: Log) -> None:
    """Start the web server. A claimed pool stack's web container, configured for the pool, becomes the
    store's: kept running where it is published on the store's port already and keeps its application keys
    where the claim can renew them (the install step then gives it new keys and the store's names and mail,
    in place: no restart), else replaced by one with the store's configuration (its application keys
    removed first, so the new one makes its own)."""
    stack = _stack(store)
    name = stack.container_name("web")
    base_url = store.host.engine
    web = docker_client.container_summary(name=name, base_url=base_url)
    if web is not None and web.labels.get("shophosting.pool") == "1":
        if (
            web.status == "running"
            and web.published == [(store.host.bind_address, store.port)]
            and stack.claim_in_place_keys
            and docker_client.container_path_exists(name=name, path=stack.claim_in_place_keys, base_url=base_url)
        ):
            # Nothing is asked of it here: the proxy step's request through nginx proves it answers.
            log("the pool's web server kept running (its password file is the store's already)")
            return
        for command in stack.claim_forget_commands:
            docker_client.container_exec(name=name, command=command, base_url=base_url)
        for role in reversed(stack.app_roles):
            docker_client.container_remove(name=stack.container_name(role), base_url=base_url)
        log("the pool's web server removed, with its application keys")
    app_start(store, log)


def provision_install(store: Store, log: Log) -> None:
    """Install the application; on a claimed pool stack (installed already), make it the store's instead."""
    claimed = pool.pool_stack_claimed_by(store)
    if claimed is None:
        app_install(store, log)
        return
    # The data services step has just rotated the database's passwords: it accepts connections.
    creds = store_services.store_credentials(store)
    stack = _stack(store)
    commands = stack.claim_commands(creds, pool_domain=claimed.store.domain, in_place=_claimed_in_place(store))
    for command, environment in commands:
        code, output = docker_client.container_exec(
            name=stack.container_name("web"), command=command, environment=environment, base_url=store.host.engine
        )
        output = _without_secrets(output, creds)
        for line in output.strip().splitlines():
            log(line)
        if code != 0:
            raise ProvisioningError(
                f"handing the pool's application over failed (exit {code}): {output.strip()[-500:]}"
            )


def provision_proxy(store: Store, log: Log) -> None:
    """Route the store's names through nginx, then ask the store's front page through nginx: the store is
    live only once it really answers there (below HTTP 500). That first request also renders the page for
    the first time (caches warm), so the customer's own does not wait for it.

    nginx's old workers accept for a moment after the new ones answer (proxy.OLD_WORKERS_ACCEPTING): that
    moment passes while the page renders, and only what is left of it is waited out. An old worker knows no
    new name (the default server closes the connection, and the request is asked again), and for a name it
    knows (a retried job) it routes to this same store."""
    if not (settings.NGINX_ENABLED and store.tls_status != Store.TLS.ISSUED):
        # No nginx here, or HTTPS only (a retry after its certificate): the store's own port.
        vhost_proxy(store, log)
        wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
        return
    _vhost(store, log, mode="proxy", settle=False)
    routed = time.monotonic()
    host, _, port = settings.NGINX_LISTEN_HTTP.rpartition(":")
    name = _stack(store).primary_name
    address = (host or "127.0.0.1", int(port))
    wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT, address=address, host=name)
    time.sleep(max(0.0, routed + proxy.OLD_WORKERS_ACCEPTING - time.monotonic()))


PROVISION = (
    Step("allocate", "Reserve a host and a port", allocate, with_job=True),
    Step("network", "Create the network and volumes", network_and_volumes),
    Step("data_services", "Start the database and cache", provision_data_services),
    Step("app", "Start the web server", provision_app),
    Step("install", "Install the store application", provision_install),
    Step("proxy", "Route the domain through nginx", provision_proxy),
    Step("tls", "Get a TLS certificate", tls_certificate),
    Step(LIVE_HOOKS_STEP, "Queue the first backup", live_hooks),
    Step("notify", "E-mail the customer", notify),
)


def _store_went_live(job_id: int) -> None:
    """A new store is live: the reactions other apps registered (provisioning.hooks) run now, in the
    transaction that frees the store, so what they queue with on_commit starts once it is free. They say what
    they did in the job's hooks step."""
    hooks_step = JobStep.objects.select_related("job").get(job_id=job_id, name=LIVE_HOOKS_STEP)
    hooks.store_live_react(
        store_id=hooks_step.job.store_id,
        log=lambda message: JobLogLine.objects.create(step=hooks_step, message=message),
    )


S = Store.Status
K = JobModel.Kind
TEARDOWN_STEPS = (
    Step("staging", "Remove the staging copy", staging_copies_remove),
    Step("unroute", "Remove the nginx vhost and certificate", vhost_remove),
    Step("remove", "Remove containers, network and volumes", stack_remove),
    Step("release", "Release the port", port_release),
)
SETUP = JobKind(
    name=K.PROVISION,
    title="Set up the store",
    steps=PROVISION,
    store_statuses=frozenset({S.QUEUED}),
    store_status_on_start=S.PROVISIONING,
    store_status_on_success=S.ACTIVE,
    fails_store=True,
    retry_as=K.RETRY,
    on_success=_store_went_live,
)
KINDS = (
    SETUP,
    # A failed setup runs again from a failed store: the same steps, which find their done work done.
    dataclasses.replace(SETUP, name=K.RETRY, title="Retry setting up the store", store_statuses=frozenset({S.FAILED})),
    JobKind(
        name=K.SUSPEND,
        title="Suspend",
        steps=(
            Step("staging", "Suspend the staging copy", staging_copies_suspend),
            Step("maintenance", "Show the maintenance page", vhost_maintenance),
            Step("stop", "Stop the containers", containers_stop),
        ),
        store_statuses=frozenset({S.ACTIVE}),
        store_status_on_success=S.SUSPENDED,
    ),
    JobKind(
        name=K.RESUME,
        title="Resume",
        steps=(
            Step("start", "Start the containers", containers_start),
            Step("proxy", "Route the domain through nginx", vhost_proxy),
            Step("staging", "Start the staging copy again", staging_copies_resume),
        ),
        store_statuses=frozenset({S.SUSPENDED}),
        store_status_on_success=S.ACTIVE,
    ),
    JobKind(
        name=K.TEARDOWN,
        title="Tear down",
        steps=TEARDOWN_STEPS,
        store_statuses=frozenset({S.AWAITING_PAYMENT, S.ACTIVE, S.SUSPENDED, S.FAILED, S.DELETING}),
        store_status_on_enqueue=S.DELETING,
        store_status_on_success=S.DELETED,
    ),
    JobKind(
        name=K.UPDATE_LIMITS,
        title="Update limits",
        steps=(
            Step("limits", "Apply the plan's memory and CPU", limits_apply),
            Step("firewall", "Apply the plan's firewall to the nginx vhost", vhost_as_is),
        ),
        store_statuses=frozenset({S.ACTIVE, S.SUSPENDED}),
    ),
    JobKind(
        name=K.HTTPS_SETTINGS,
        title="Apply the store's names and HTTPS settings",
        steps=(
            Step("proxy", "Rewrite the nginx vhost with the store's names and HTTPS settings", vhost_as_is),
            Step("tls", "Get a certificate for names not on it yet", tls_names_cover),
        ),
        store_statuses=frozenset({S.ACTIVE, S.SUSPENDED}),
    ),
    JobKind(
        name=K.PRIMARY_NAME,
        title="Change the primary name",
        steps=(
            # The application first: the moment the other names redirect, it answers on the new one.
            Step("app", "Restart the web server with the new name", app_recreate),
            Step("urls", "Change the shop's own links to the new name", app_urls_replace),
            Step("proxy", "Redirect the other names to the primary name", vhost_as_is),
        ),
        store_statuses=frozenset({S.ACTIVE}),
    ),
    JobKind(
        name=K.RESTART,
        title="Restart",
        steps=(
            Step("stop", "Stop the containers", containers_stop),
            Step("start", "Start the containers", containers_start),
        ),
        store_statuses=frozenset({S.ACTIVE}),
    ),
)

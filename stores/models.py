from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from shophosting.core.customer_pages import CustomerPagesQuerySet
from shophosting.core.transitions import StatusEvent
from stores import crypto


class Platform(models.TextChoices):
    """The shop software a store runs. A store's own fact: a plan is sold for one platform (billing's Plan
    points here), and provisioning picks the stack by it."""

    WOOCOMMERCE = "woocommerce", "WooCommerce"
    MAGENTO = "magento", "Magento 2"


@dataclass(frozen=True)
class Engine:
    """Where a Docker engine answers and how to prove who we are to it: what provisioning.docker_client
    needs to build a client. The TLS fields are PEM text (a tcp:// engine with --tlsverify); the SSH fields
    are an ssh:// engine's private key (OpenSSH format) and its pinned host key(s) in known_hosts form; all
    empty for a unix:// socket or plain tcp://. Hashable, so the adapter keeps one client per engine."""

    url: str
    ca_pem: str = field(default="", repr=False)
    cert_pem: str = field(default="", repr=False)
    key_pem: str = field(default="", repr=False)
    ssh_key: str = field(default="", repr=False)
    ssh_known_hosts: str = field(default="", repr=False)

    @property
    def uses_tls(self) -> bool:
        return bool(self.cert_pem and self.key_pem)

    @property
    def uses_ssh(self) -> bool:
        return self.url.startswith("ssh://")

    def __str__(self):
        return self.url


class Host(models.Model):
    """A Docker engine that runs stores (stores/README.md, "Hosts"): where it answers and the TLS client
    certificates for it (encrypted), its capacity, the port range and the private address its stores'
    web ports are published on (nginx proxies there), and what its registration check found."""

    class Status(models.TextChoices):
        READY = "ready", "Ready"
        DRAINING = "draining", "Draining (no new stores)"
        # No new stores, and its stores are moved off one at a time (provisioning/moves.py, an evacuation).
        MAINTENANCE = "maintenance", "Maintenance (stores moved off)"

    name = models.CharField(max_length=100, unique=True)
    docker_url = models.CharField(
        max_length=255,
        validators=[RegexValidator(r"^(unix|ssh|tcp)://", "Use a unix://, ssh:// or tcp:// URL.")],
        help_text="unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376 (with TLS client certificates)",
    )
    bind_address = models.GenericIPAddressField(
        default="127.0.0.1",
        verbose_name="private address",
        help_text=(
            "The host's address on the private network between nginx and the hosts: store web ports are "
            "published on it and nginx proxies to it. Never a public address; 127.0.0.1 for the platform's own engine."
        ),
    )
    port_range_start = models.PositiveIntegerField(default=20000, validators=[MinValueValidator(1024)])
    port_range_end = models.PositiveIntegerField(default=20999, validators=[MaxValueValidator(65535)])
    memory_capacity_mb = models.PositiveIntegerField(help_text="Memory that stores may reserve on this host.")
    cpu_capacity = models.DecimalField(max_digits=5, decimal_places=2, help_text="CPUs that stores may reserve.")
    disk_capacity_gb = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Disk that stores may reserve (their plans' allowances); empty: disk is not counted here.",
    )
    active = models.BooleanField(
        default=True,
        verbose_name="accepts new stores",
        help_text="New stores are placed only on hosts that accept them.",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.READY, editable=False)
    job_slots = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Jobs that may run on this host's engine at once; empty: the platform's HOST_JOB_SLOTS.",
    )
    # The CA, client certificate and key for a tcp:// engine with --tlsverify, one Fernet token like store
    # credentials (stores/crypto.py): {"ca": PEM, "cert": PEM, "key": PEM}; empty for unix:// and ssh://.
    tls_encrypted = models.TextField(blank=True, editable=False)
    # The private key the platform signs in with to an ssh:// engine and the host key(s) it pins, known_hosts
    # lines, one Fernet token: {"key": OpenSSH private key, "known_hosts": text}; empty for unix:// and tcp://.
    ssh_encrypted = models.TextField(blank=True, editable=False)
    # What the registration check found (provisioning/hosts.py, run again from the admin).
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    engine_version = models.CharField(max_length=40, blank=True, editable=False)
    storage_driver = models.CharField(max_length=40, blank=True, editable=False)
    cgroup_limits = models.CharField(max_length=100, blank=True, editable=False)
    memory_total_mb = models.PositiveIntegerField(null=True, blank=True, editable=False)
    cpus_total = models.PositiveIntegerField(null=True, blank=True, editable=False)
    disk_free_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    disk_total_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    check_report = models.TextField(blank=True, editable=False)
    # The last check run by a worker failed (provisioning/hosts.py, host_check_run): when and why; emptied by
    # the next check that passes. What the last passing check found stays above.
    check_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port_range_end__gte=models.F("port_range_start")), name="host_port_range_ordered"
            )
        ]

    def __str__(self):
        return self.name

    def clean(self):
        # The validator checks only the scheme at the start; the rest must be one address with nothing after.
        if any(character.isspace() or not character.isprintable() for character in self.docker_url or ""):
            raise ValidationError(
                {"docker_url": "The engine URL cannot contain spaces, line breaks or control characters."}
            )

    @property
    def engine(self) -> Engine:
        """What provisioning.docker_client needs to reach this host's engine, its certificates decrypted."""
        tls = crypto.decrypt(self.tls_encrypted)
        ssh = crypto.decrypt(self.ssh_encrypted)
        return Engine(
            url=self.docker_url,
            ca_pem=tls.get("ca", ""),
            cert_pem=tls.get("cert", ""),
            key_pem=tls.get("key", ""),
            ssh_key=ssh.get("key", ""),
            ssh_known_hosts=ssh.get("known_hosts", ""),
        )

    @property
    def job_slots_effective(self) -> int:
        return self.job_slots or settings.HOST_JOB_SLOTS

    @property
    def accepts_new_stores(self) -> bool:
        return self.active and self.status == self.Status.READY


class HostEvent(StatusEvent):
    """One row per status change of a host (stores.services.host_transition): drained, back to ready."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=20, choices=Host.Status.choices, blank=True)
    new_status = models.CharField(max_length=20, choices=Host.Status.choices)

    def __str__(self):
        return f"{self.host_id}: {super().__str__()}"


class Store(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        QUEUED = "queued", "Queued"
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"
        DELETED = "deleted", "Deleted"
        # Its host's engine stopped answering (provisioning/hosts.py, host_heartbeat): not failed, nothing to
        # retry; back to active when the engine answers again and the store's containers run.
        UNREACHABLE = "unreachable", "Host unreachable"
        # A stack of the warm pool (provisioning/README.md, "The warm pool"): built ahead of any order, owned
        # by no customer, handed to a paid store by the provision job that claims it.
        POOLED = "pooled", "In the warm pool"

    # None only for a stack of the warm pool, which belongs to nobody until a store claims it.
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="stores")
    plan = models.ForeignKey("billing.Plan", on_delete=models.PROTECT, related_name="stores")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    domain = models.CharField(max_length=253, db_index=True)
    # Equals `domain` while the store is not deleted and NULL afterwards: a plain unique index then
    # enforces "unique among live stores", which MariaDB cannot express as a conditional constraint.
    live_domain = models.CharField(max_length=253, null=True, blank=True, unique=True, editable=False)
    site_title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_PAYMENT, db_index=True)
    status_message = models.TextField(blank=True, help_text="A plain-words summary shown to the customer.")
    subscription = models.ForeignKey(
        "billing.Subscription", null=True, blank=True, on_delete=models.PROTECT, related_name="stores"
    )
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.PROTECT, related_name="stores")
    port = models.PositiveIntegerField(null=True, blank=True)
    credentials_encrypted = models.TextField(blank=True, editable=False)
    # The key of the Docker objects this store runs when it claimed them from the warm pool (the pool stack's
    # own key, since the engine can rename a container but never relabel one, a volume or a network); empty
    # for a store whose stack was built for it. See `object_key`.
    stack_key = models.CharField(max_length=40, blank=True, editable=False)
    phpmyadmin_enabled = models.BooleanField(
        default=False, help_text="Run phpMyAdmin for this store, reachable on 127.0.0.1 of its host only."
    )

    class TLS(models.TextChoices):
        NONE = "none", "Not requested"
        PENDING = "pending", "Retry scheduled"
        ISSUED = "issued", "Issued"
        FAILED = "failed", "Given up"  # none of its names points at the platform: no more retries

    tls_status = models.CharField(max_length=10, choices=TLS.choices, default=TLS.NONE)
    tls_error = models.TextField(blank=True)
    tls_attempts = models.PositiveSmallIntegerField(default=0)
    tls_next_attempt_at = models.DateTimeField(null=True, blank=True)
    hsts_enabled = models.BooleanField(
        default=False,
        verbose_name="HSTS",
        help_text=(
            "Warning: with HSTS on, browsers refuse plain HTTP for every name of this store for a year, even "
            "after a certificate lapses or a domain moves away. Turn it on only when HTTPS works on every name."
        ),
    )
    # Disk: what the store's volumes (its database and files, and its staging copy's) take, measured by a
    # periodic job, and the share
    # of the plan's allowance the merchant was last told about (0, 80 or 100), so each is mailed once.
    disk_bytes = models.BigIntegerField(null=True, blank=True)
    # Of disk_bytes, what the store's staging copy takes: a copy counts against its live store's allowance.
    disk_staging_bytes = models.BigIntegerField(default=0)
    disk_measured_at = models.DateTimeField(null=True, blank=True)
    disk_alert_percent = models.PositiveSmallIntegerField(default=0)
    # A staging copy is a store of its own (its stack on its live store's host, its platform name, its place
    # counted against the host) that points at the live store it copies; customer lists show it only on that
    # store's page (stores/staging.py).
    staging_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="staging_copies", editable=False
    )
    # The second place a store holds while it moves to another host (provisioning/moves.py): the target's
    # host and port until the switch, then the source's until its old stack is removed. Placement counts it
    # like `host`/`port` (stores.selectors), so nothing else is given that port or that room meanwhile.
    move_host = models.ForeignKey(
        Host, null=True, blank=True, on_delete=models.PROTECT, related_name="moving_stores", editable=False
    )
    move_port = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Every write marks the customer's cached dashboard stale (shophosting/core/customer_pages.py).
    objects = CustomerPagesQuerySet.as_manager()
    customer_pages_path = "customer_id"

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["host", "port"], name="store_unique_host_port")]
        # Staff roles (accounts/roles.py): support views stores; these are for the roles that run them.
        permissions = [
            ("operate_store", "Can suspend, resume, retry and restart stores"),
            ("reveal_store_credentials", "Can reveal a store's credentials"),
        ]

    def __str__(self):
        return self.domain

    @property
    def object_key(self) -> str:
        """What names and labels the store's Docker objects (`shophosting.store=<key>`): its id, or the key of
        the pool stack it claimed."""
        return self.stack_key or str(self.pk)

    @property
    def slug(self) -> str:
        """The prefix of every Docker object of this store."""
        return f"{settings.STORE_OBJECT_PREFIX}-{self.object_key}"

    @property
    def proxy_key(self) -> str:
        """What names the store's nginx vhost file and certificate directory: stable for the store's life,
        whatever its names become (its primary name may change)."""
        return f"store-{self.pk}"

    @property
    def is_staging(self) -> bool:
        return self.staging_of_id is not None

    @property
    def memory_mb(self) -> int:
        return self.plan.memory_mb

    @property
    def cpus(self) -> float:
        return float(self.plan.cpu_limit)


class StoreName(models.Model):
    """One host name a store answers on (stores/README.md, "Names"). Every live store has a platform name
    (`<label>.<PLATFORM_DOMAIN>`, given when the store is created); custom domains are added by the merchant or
    staff and wait (PENDING) until their DNS proves control: a TXT record `_shophosting-challenge.<proof_domain>`
    holding `proof_token`, or the name already resolving to PLATFORM_PUBLIC_ADDRESSES. A `www.` alias shares its
    apex's proof (same proof_domain and token). The vhost serves the SERVED names; the store's one certificate
    (files under TLS_CERT_DIR/store-<id>/) covers the ACTIVE ones as SANs; the primary name is what the
    application's URLs use and where the others redirect once it is proven and on the certificate."""

    class Kind(models.TextChoices):
        PLATFORM = "platform", "Platform name"
        CUSTOM = "custom", "Custom domain"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for proof"  # not served, holds nothing, blocks nobody
        ACTIVE = "active", "Active"
        UNREACHABLE = "unreachable", "Not pointing at us"  # served on HTTP, left off the certificate

    SERVED = (Status.ACTIVE, Status.UNREACHABLE)

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="names")
    name = models.CharField(max_length=253, db_index=True)
    # Equals `name` while the name is served (ACTIVE or UNREACHABLE) and NULL while it waits for proof: a plain
    # unique index then says "served by one store at most" and lets any number of stores wait for the same
    # domain (MariaDB has no conditional unique index; Store.live_domain does the same).
    served_name = models.CharField(max_length=253, null=True, blank=True, unique=True, editable=False)
    # The proof: the TXT record _shophosting-challenge.<proof_domain> holding proof_token (a www. alias has its
    # apex's). Empty for platform names and names made active without proof (stores from before the proof).
    proof_domain = models.CharField(max_length=253, blank=True)
    proof_token = models.CharField(max_length=64, blank=True, editable=False)
    proved_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True, help_text="When its DNS was last checked.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    is_primary = models.BooleanField(default=False, help_text="The name the application's own URLs use.")
    # Certificate validation of this name failing in a row; at TLS_NAME_MAX_FAILURES it becomes UNREACHABLE.
    tls_failures = models.PositiveSmallIntegerField(default=0)
    status_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_primary", "kind", "name"]
        constraints = [models.UniqueConstraint(fields=["store", "name"], name="storename_unique_per_store")]

    def __str__(self):
        return self.name

    @property
    def proof_record(self) -> str:
        """The TXT record's name that proves control of this name."""
        return f"{PROOF_RECORD_PREFIX}.{self.proof_domain or self.name}"


PROOF_RECORD_PREFIX = "_shophosting-challenge"


class StoreEvent(StatusEvent):
    """One row per status change, written by stores.services.store_transition, or per notable fact with the
    status unchanged (stores.services.store_event_record: a plan change, an update)."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=20, choices=Store.Status.choices)
    new_status = models.CharField(max_length=20, choices=Store.Status.choices)
    # Plain words for the merchant ("Updated to wordpress:6.5"): the events that carry one are the store's
    # history on its page. `note` is for staff and may name hosts, jobs and engine errors.
    message = models.TextField(blank=True)

    def __str__(self):
        return f"{self.store_id}: {super().__str__()}"


class StoreUsageSample(models.Model):
    """Memory and CPU of a store's containers together, sampled from the Docker engine by a periodic job."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="usage_samples")
    taken_at = models.DateTimeField(db_index=True)
    memory_bytes = models.BigIntegerField()
    memory_limit_bytes = models.BigIntegerField()
    cpu_percent = models.FloatField(help_text="Of one CPU: 150 means one and a half CPUs busy.")

    class Meta:
        ordering = ["taken_at"]
        indexes = [models.Index(fields=["store", "taken_at"])]

    def __str__(self):
        return f"store {self.store_id} at {self.taken_at:%H:%M}: {self.memory_bytes >> 20} MB, {self.cpu_percent:.0f}%"

"""The tables a database restore would take rows from, per application: the one place that knows them.

Before a database restore the platform finds the rows created or changed after the snapshot and exports them
(services/restore_export.py). Which rows those are is decided here, for each application a platform runs:
- WordPress (every WooCommerce store runs it): posts, comments and users, with their meta;
- WooCommerce: orders, order items and their meta, order notes and customers, in the tables of the versions
  in use: the HPOS tables (`wc_orders`, `wc_order_addresses`, `wc_order_operational_data`, `wc_orders_meta`,
  WooCommerce 8.2+) and the legacy ones (orders as `posts` of type shop_order, notes as `comments` of type
  order_note), the order items tables both use, and the customer lookup table (3.6+);
- Magento 2: orders with their items, addresses, payments and grid rows, order comments (status history),
  invoices, shipments, credit memos, customers and their addresses.

A `Selection` is one kind of row in one table. A row is "since the snapshot" when one of its `changed`
columns (UTC times: WordPress's *_gmt columns (a post's `post_modified_gmt`, set when it is written, not its
publication date, which a scheduled post has in the future), `user_registered`, WooCommerce's *_gmt columns and lookup
timestamps) is at or after the cutoff, or, for a child table without times of its own (meta, addresses,
order items), when its parent row is. Tables or columns a store's database does not have are left out (a
WooCommerce without HPOS has no `wc_orders`), so one list serves every version.

Table names carry the application's prefix (WordPress's `$table_prefix`, `wp_` on this platform; Magento's
`table_prefix`, empty here). It is read from the database itself (`table_prefix`), since a store imported from
elsewhere may use another one.
Every statement built here uses only this module's constants, the prefix (letters, digits and underscores
only) and a cutoff the platform formats: no tenant data is pasted into SQL.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

# What WordPress accepts as $table_prefix (wp-settings.php refuses anything else); Magento's are narrower.
PREFIX = re.compile(r"[A-Za-z0-9_]*")
# Post types and comment types that are WooCommerce's orders and order notes, not the site's posts.
ORDER_POST_TYPES = ("shop_order", "shop_order_refund", "shop_order_placehold")
ORDER_NOTE = "order_note"


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


@dataclass(frozen=True)
class Parent:
    """Rows of a child table whose `column` names a changed row (by its key) of one of the `selections`."""

    column: str
    selections: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    name: str  # the export's file name (<name>.csv) and the SQL file's section
    table: str  # without the prefix
    key: str  # the primary key: the export is ordered by it
    changed: tuple[str, ...] = ()  # UTC times; a row with any of them at or after the cutoff is "since"
    parent: Parent | None = None  # for child tables without times of their own
    where: str = ""  # which rows of the table this selection holds (constant SQL on its own columns)
    # The summary: what the merchant calls one row (singular, plural), and which of the rows count.
    noun: tuple[str, str] | None = None
    count_where: str = ""
    # Rows another selection already counts (HPOS keeps a synchronised copy of each order in `posts`):
    # (selection, this table's column naming the same row by the other's key).
    counted_by: tuple[str, str] | None = None
    filter_columns: tuple[str, ...] = field(default=())  # columns `where`/`count_where` read

    def columns(self) -> set[str]:
        """Every column of its table this selection reads: the table must have them all to be used."""
        used = {self.key, *self.changed, *self.filter_columns}
        if self.parent:
            used.add(self.parent.column)
        if self.counted_by:
            used.add(self.counted_by[1])
        return {column.lower() for column in used}  # MariaDB's column names ignore case


WORDPRESS = (
    Selection(
        "posts",
        "posts",
        "ID",
        changed=("post_modified_gmt",),
        where=f"post_type NOT IN ({_sql_list(ORDER_POST_TYPES)})",
        noun=("post", "posts"),
        # A revision is another copy of a post already counted; an auto-draft is an editor opened, not a post.
        count_where="post_type <> 'revision' AND post_status <> 'auto-draft'",
        filter_columns=("post_type", "post_status"),
    ),
    Selection("postmeta", "postmeta", "meta_id", parent=Parent("post_id", ("posts", "legacy_orders"))),
    Selection(
        "comments",
        "comments",
        "comment_ID",
        changed=("comment_date_gmt",),
        where=f"comment_type <> '{ORDER_NOTE}'",
        noun=("comment", "comments"),
        filter_columns=("comment_type",),
    ),
    Selection("commentmeta", "commentmeta", "meta_id", parent=Parent("comment_id", ("comments", "order_notes"))),
    Selection("users", "users", "ID", changed=("user_registered",), noun=("new user", "new users")),
    Selection("usermeta", "usermeta", "umeta_id", parent=Parent("user_id", ("users",))),
)

WOOCOMMERCE = (
    # HPOS (WooCommerce 8.2+): an order and its refunds are rows of wc_orders, told apart by `type`.
    Selection(
        "orders",
        "wc_orders",
        "id",
        changed=("date_updated_gmt", "date_created_gmt"),
        noun=("order", "orders"),
        count_where="type = 'shop_order'",
        filter_columns=("type",),
    ),
    Selection("order_addresses", "wc_order_addresses", "id", parent=Parent("order_id", ("orders",))),
    Selection("order_operational_data", "wc_order_operational_data", "id", parent=Parent("order_id", ("orders",))),
    Selection("orders_meta", "wc_orders_meta", "id", parent=Parent("order_id", ("orders",))),
    # Before HPOS (and as HPOS's synchronised copy): an order is a post of type shop_order.
    Selection(
        "legacy_orders",
        "posts",
        "ID",
        changed=("post_modified_gmt",),
        where=f"post_type IN ({_sql_list(ORDER_POST_TYPES)})",
        noun=("order", "orders"),
        count_where="post_type = 'shop_order'",
        counted_by=("orders", "ID"),
        filter_columns=("post_type",),
    ),
    # Both storages keep an order's lines (products, shipping, fees, taxes) here, keyed by the order's id.
    Selection(
        "order_items",
        "woocommerce_order_items",
        "order_item_id",
        parent=Parent("order_id", ("orders", "legacy_orders")),
    ),
    Selection(
        "order_itemmeta",
        "woocommerce_order_itemmeta",
        "meta_id",
        parent=Parent("order_item_id", ("order_items",)),
    ),
    # Order notes are comments of type order_note, in both storages.
    Selection(
        "order_notes",
        "comments",
        "comment_ID",
        changed=("comment_date_gmt",),
        where=f"comment_type = '{ORDER_NOTE}'",
        noun=("order note", "order notes"),
        filter_columns=("comment_type",),
    ),
    # Registered customers and guests who ordered (3.6+); TIMESTAMP columns, read in UTC (see `SESSION_UTC`).
    Selection(
        "customers",
        "wc_customer_lookup",
        "customer_id",
        changed=("date_registered", "date_last_active"),
        noun=("customer", "customers"),
    ),
)

MAGENTO = (
    Selection("orders", "sales_order", "entity_id", changed=("updated_at", "created_at"), noun=("order", "orders")),
    Selection("order_items", "sales_order_item", "item_id", parent=Parent("order_id", ("orders",))),
    Selection("order_addresses", "sales_order_address", "entity_id", parent=Parent("parent_id", ("orders",))),
    Selection("order_payments", "sales_order_payment", "entity_id", parent=Parent("parent_id", ("orders",))),
    # The order grid is Magento's own index of sales_order, one row per order under the same id.
    Selection("order_grid", "sales_order_grid", "entity_id", parent=Parent("entity_id", ("orders",))),
    # An order's comments and status changes (Magento's order notes).
    Selection(
        "order_comments",
        "sales_order_status_history",
        "entity_id",
        changed=("created_at",),
        noun=("order comment", "order comments"),
    ),
    Selection(
        "invoices", "sales_invoice", "entity_id", changed=("updated_at", "created_at"), noun=("invoice", "invoices")
    ),
    Selection(
        "shipments",
        "sales_shipment",
        "entity_id",
        changed=("updated_at", "created_at"),
        noun=("shipment", "shipments"),
    ),
    Selection(
        "credit_memos",
        "sales_creditmemo",
        "entity_id",
        changed=("updated_at", "created_at"),
        noun=("credit memo", "credit memos"),
    ),
    Selection(
        "customers",
        "customer_entity",
        "entity_id",
        changed=("updated_at", "created_at"),
        noun=("customer", "customers"),
    ),
    Selection("customer_addresses", "customer_address_entity", "entity_id", changed=("updated_at", "created_at")),
)


@dataclass(frozen=True)
class Application:
    """What a platform's stores run: the selections, and how its tables and their prefix are recognised."""

    name: str
    selections: tuple[Selection, ...]
    markers: tuple[str, str]  # two tables (without the prefix) every installation has
    default_prefix: str  # the platform's own, which wins when a database holds several installations


# The applications each platform runs, by `Plan.platform`. A WooCommerce store is a WordPress site.
APPLICATIONS: dict[str, Application] = {
    "woocommerce": Application("WordPress", WORDPRESS + WOOCOMMERCE, ("options", "posts"), "wp_"),
    # Magento's timestamps are TIMESTAMP columns (UTC inside; read in UTC, see `SESSION_UTC`); its table
    # prefix (env.php's db.table_prefix) is empty unless set at install.
    "magento": Application("Magento", MAGENTO, ("core_config_data", "sales_order"), ""),
}
# Every statement these selections run in starts with this, so TIMESTAMP columns compare in UTC.
SESSION_UTC = "SET time_zone = '+00:00';"


class NoApplicationTables(Exception):
    """The store's database does not hold the application's tables (or the platform has no list)."""


def application_for(platform: str) -> Application:
    try:
        return APPLICATIONS[platform]
    except KeyError:
        raise NoApplicationTables(f"no list of tables for {platform!r} stores") from None


def selections_for(platform: str) -> tuple[Selection, ...]:
    return application_for(platform).selections


def table_prefix(application: Application, tables: Iterable[str]) -> str:
    """The prefix of the application's tables in this database (WordPress's $table_prefix, Magento's
    table_prefix): the one both marker tables carry. The platform's own wins when several installations
    share the database."""
    names = set(tables)
    first, second = application.markers
    found = {
        name.removesuffix(first)
        for name in names
        if name.endswith(first) and f"{name.removesuffix(first)}{second}" in names
    }
    found = {prefix for prefix in found if PREFIX.fullmatch(prefix)}
    if application.default_prefix in found:
        return application.default_prefix
    if len(found) == 1:
        return found.pop()
    if not found:
        raise NoApplicationTables(f"the database holds no {application.name} tables")
    listed = ", ".join(repr(prefix) for prefix in sorted(found))
    raise NoApplicationTables(f"the database holds several {application.name} installations ({listed})")


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def cutoff_literal(cutoff: datetime) -> str:
    """The cutoff as a SQL literal in UTC, whole seconds rounded down (WordPress stores whole seconds, so a
    row written in the snapshot's own second counts as since: better one row too many than one lost)."""
    if cutoff.tzinfo is None:
        raise ValueError("the cutoff must be an aware datetime")
    utc = cutoff.astimezone(UTC)
    return f"'{utc:%Y-%m-%d %H:%M:%S}'"


@dataclass(frozen=True)
class Planned:
    """A selection as one store's database has it: its table's real name and the SQL telling its rows."""

    selection: Selection
    table: str  # with the prefix
    where: str  # the rows since the cutoff
    count_where: str  # of those, the rows the summary counts ("" when it counts none)


def plan(
    selections: Iterable[Selection], *, columns: dict[str, set[str]], prefix: str, cutoff: datetime
) -> list[Planned]:
    """The selections this database can answer (their table and every column they read exist, and so does a
    parent of each child), with the SQL that finds their rows changed at or after `cutoff`."""
    if not PREFIX.fullmatch(prefix):
        raise NoApplicationTables(f"not a table prefix: {prefix!r}")
    since = cutoff_literal(cutoff)
    usable: dict[str, Selection] = {}
    for selection in selections:
        if selection.columns() <= {column.lower() for column in columns.get(prefix + selection.table, ())}:
            usable[selection.name] = selection

    conditions: dict[str, str | None] = {}

    def condition(selection: Selection) -> str | None:
        """Its rows since the cutoff; None for a child none of whose parents this database has."""
        if selection.name not in conditions:
            parts = [" OR ".join(f"{quote(column)} >= {since}" for column in selection.changed)]
            if selection.parent:
                parts = []
                for name in selection.parent.selections:
                    other = usable.get(name)
                    if other is None or condition(other) is None:
                        continue
                    rows = f"SELECT {quote(other.key)} FROM {quote(prefix + other.table)} WHERE {condition(other)}"  # noqa: S608 - constants
                    parts.append(f"{quote(selection.parent.column)} IN ({rows})")
            found = " OR ".join(f"({part})" for part in parts if part)
            if not found:
                conditions[selection.name] = None
            else:
                conditions[selection.name] = f"({selection.where}) AND ({found})" if selection.where else found
        return conditions[selection.name]

    planned = []
    for selection in usable.values():
        where = condition(selection)
        if where is None:
            continue
        count_where = ""
        if selection.noun:
            count_where = f"({where}) AND ({selection.count_where})" if selection.count_where else where
            if selection.counted_by and selection.counted_by[0] in usable:
                other = usable[selection.counted_by[0]]
                counted = f"SELECT {quote(other.key)} FROM {quote(prefix + other.table)}"  # noqa: S608 - constants
                count_where += f" AND {quote(selection.counted_by[1])} NOT IN ({counted})"
        planned.append(
            Planned(selection=selection, table=prefix + selection.table, where=where, count_where=count_where)
        )
    return planned


def count_statement(planned: list[Planned]) -> str:
    """One SELECT answering, per planned selection (by its position): its rows since the cutoff, and how
    many of them the summary counts. Run after SESSION_UTC."""

    def count(selection: Planned, where: str) -> str:
        return f"(SELECT COUNT(*) FROM {quote(selection.table)} WHERE {where})"  # noqa: S608 - this module's SQL

    return " UNION ALL ".join(
        f"SELECT {index}, {count(p, p.where)}, {count(p, p.count_where) if p.count_where else 0}"
        for index, p in enumerate(planned)
    )


def summary_sentence(counts: dict[str, int], *, selections: Iterable[Selection]) -> str:
    """ "2 posts, 1 comment and 1 new user since this backup", from rows counted per noun (singular)."""
    plurals = {s.noun[0]: s.noun[1] for s in selections if s.noun}
    parts = [f"{n} {noun if n == 1 else plurals.get(noun, noun)}" for noun, n in counts.items() if n]
    if not parts:
        return "Nothing was added or changed since this backup"
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"{listed} since this backup"

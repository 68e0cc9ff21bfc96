"""Store care: read-only probes of every live store, incidents when they keep failing, and monthly uptime.

- `checks`: the registry of checks and provisioning's own (front page, admin login, cart, certificate,
  containers, disk). Apps above contribute theirs from their AppConfig.ready() (backups: the last backup and
  its verification), like provisioning.hooks.
- `services`: one round of checks for one store (recorded with its latency), the incident that consecutive
  failing rounds open and a passing round closes, the notifications, and the history's downsampling.
- `selectors`: each store's slot in the interval, the stores due this minute, uptime per month, and what the
  store page, the staff dashboard and a metrics collector read.

Checks are probes, not operations: they take no store lock and are no job of the engine, so they never make
a store busy. See provisioning/README.md, "Store care".
"""

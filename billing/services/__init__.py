"""Billing's services, one module a topic (billing/README.md, "Package layout"). Import from the topic module;
nothing is re-exported here."""

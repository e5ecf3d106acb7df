"""Notifications: a webhook or an email when a request finishes, and handlers' ``NOTIFY``
messages, sent at least once from an outbox in the KV (``docs/notifications.rst``)."""

"""The broker contract: one suite that every :class:`hub.broker.Broker` implementation passes."""

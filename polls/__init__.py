"""Polls and elections: ``poll.create``, ``poll.vote``, ``poll.close``, ``poll.get``, the
``poll.tally`` event, timers and the moderators' export (:mod:`polls.feature`)."""

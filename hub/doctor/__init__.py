"""``hub doctor``: a running deployment checked from the outside and from its settings.

:mod:`~hub.doctor.verdicts` holds the rules (pure), :mod:`~hub.doctor.checks` the checks that
talk to each part (the hub through its proxy, Redis, TURN and STUN servers, Janus),
:mod:`~hub.doctor.stun` the little of STUN and TURN they need, :mod:`~hub.doctor.diagnose` runs
them all at once, :mod:`~hub.doctor.report` shows the result and :mod:`~hub.doctor.cli` is the
command.
"""

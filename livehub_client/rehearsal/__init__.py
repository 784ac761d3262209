"""``hub rehearse``: a conference in miniature against a running deployment (the scenario,
its figures, their report)."""

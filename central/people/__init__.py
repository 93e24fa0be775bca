"""People: officer and staff accounts with their roles (``users``) and the audit trail (``audit``).

Who did what is recorded here; who may do what is the route policy in ``central.web``.
"""

"""Approvals: the desired hive in a git state repo, the manager's proposals, and the reconciler.

Kept import-free: hivectl imports the wire views (`approvals.views`) and must not pay for the rest.
"""

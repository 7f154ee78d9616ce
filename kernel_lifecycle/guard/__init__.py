"""The guard: finds alias (and lineage/gate tag) changes made outside the lifecycle, reverts and audits them.

- ``aliases``: drift between MLflow's aliases and the audited targets; ``check``/``repair``.
- ``tags``: a version's lineage and gate tags restored from the manifest and the gate decision.
- ``webhook``: ``guard serve`` (MLflow's signed webhooks, acted on at once) and ``guard install``.
The scheduler runs ``aliases.check(do_repair=True)`` every ``KL_GUARD_INTERVAL`` seconds, since
webhook deliveries can be lost.
"""

"""The scheduler: applied policies' triggers -> APScheduler jobs -> exactly-once fires.

- ``sync``: policies -> triggers -> jobs in the shared store (``apscheduler_jobs``);
- ``leases``: one ``kl_scheduler_leases`` row per (trigger, fire time) decides who runs a fire;
- ``store``: the job store and executor made safe for several schedulers on one store;
- ``fire``: one fire (lease, plan, outcome); ``service``: the long-running ``scheduler run``.

Nothing is imported here: ``import kernel_lifecycle.scheduler`` stays cheap.
"""

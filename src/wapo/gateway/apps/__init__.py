"""Long-running apps in the gateway: the supervisor that keeps them running (``supervisor``), their
routes (``routes``) and, in ``--workers`` children, the forwarding to the first process (``proxy``)."""

"""The cloud contract and the run logic, once for every cloud: layout, jobs, states, ports, the ledger,
the life of a run (``runs``) and what happens between events (``schedule``). No cloud SDK is imported
here; each cloud's adapters live in ``handlers/aws`` and ``handlers/azure``."""

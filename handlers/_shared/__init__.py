"""What the three handlers share: settings, typed events, the run ledger, job launchers and the run
lifecycle. ``predictd status`` reads the ledger through ``ledger``."""

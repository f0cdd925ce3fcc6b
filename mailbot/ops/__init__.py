"""Running mailbot: a pass, the daemon loop and what wakes it, health, metrics, alerts and log
formats."""

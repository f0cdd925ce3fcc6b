"""Running mailbot: a pass, the daemon loop, health, metrics, alerts and log formats."""

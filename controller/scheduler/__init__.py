"""Scheduled evaluations of what is live: the schedule, the lock, the runs, the API and the CLI."""

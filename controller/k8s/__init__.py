"""Kubernetes backends' shared parts: settings, names, rendering, API access, pod health."""

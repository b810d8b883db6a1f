"""Diagnosis: the checks along the request path, the runner that schedules them, the report."""

"""Runbooks: the model and loader, the step-by-step walkthrough, its Slack rendering."""

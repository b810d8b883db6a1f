"""End-to-end tests share the session's MLflow server (``shared_mlflow``, tests/conftest.py)."""

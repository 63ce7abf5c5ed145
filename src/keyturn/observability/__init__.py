"""What Keyturn tells operators: Prometheus metrics, JSON logs with request ids, the audit."""

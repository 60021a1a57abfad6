"""Turning a graph and its library into what runs it elsewhere: Procfiles, service units,
compose files and Kubernetes manifests, and the queue-driven autoscaling model."""

"""The service's Prometheus metrics, in a registry of its own (each app counts only itself)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "recsys_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "recsys_request_seconds",
            "request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.recommendations = Counter(
            "recsys_recommendations", "top-k lists served", registry=self.registry
        )
        self.reloads = Counter(
            "recsys_model_reloads", "model loads", ["outcome"], registry=self.registry
        )
        self.errors = Counter(
            "recsys_internal_errors",
            "requests that failed inside the service",
            registry=self.registry,
        )
        self.loaded = Gauge(
            "recsys_model_loaded_timestamp",
            "when the served bundle was loaded",
            registry=self.registry,
        )

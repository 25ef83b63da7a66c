"""Client drivers, one per stock Kafka client."""

from __future__ import annotations

import importlib

from compat.clients.base import Client

# name -> (module, class); the order is the report's column order
DRIVERS = {
    "kafka-python": ("compat.clients.kafka_python", "KafkaPythonClient"),
    "confluent": ("compat.clients.confluent", "ConfluentClient"),
    "aiokafka": ("compat.clients.aiokafka_client", "AioKafkaClient"),
    "kcat": ("compat.clients.kcat", "KcatClient"),
    "kafkajs": ("compat.clients.kafkajs_client", "KafkaJsClient"),
    "java": ("compat.clients.java_client", "JavaClient"),
}
CLIENT_NAMES = tuple(DRIVERS)


class MissingClient(Client):
    """Stands in for a driver whose library cannot be imported; start() raises. It keeps the
    client's feature list so that its scenarios are still listed, and fail, rather than vanish."""

    def __init__(self, name: str, error: Exception, features: frozenset[str]) -> None:
        self.name = name
        self.features = features
        self._error = error

    def start(self, bootstrap: str) -> None:
        raise RuntimeError(f"{self.name} is not installed: {self._error}")


def make_client(name: str) -> Client:
    """Instantiate the driver called ``name``."""
    module_name, class_name = DRIVERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        features_module = importlib.import_module("compat.clients.features")
        return MissingClient(name, exc, features_module.FEATURES[name])
    return getattr(module, class_name)()

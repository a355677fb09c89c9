"""Kafka TLS and SASL (PLAIN, SCRAM-SHA-256/512) settings, one source for every client the project uses.

Read from the environment so that every command honours them without extra flags; secrets never appear
in logs, metrics or error messages (only the protocol and mechanism are ever printed).

| variable | meaning |
|---|---|
| `SEGMENTER_KAFKA_SECURITY_PROTOCOL` | PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL |
| `SEGMENTER_KAFKA_SASL_MECHANISM` | PLAIN, SCRAM-SHA-256 (default with SASL), SCRAM-SHA-512 |
| `SEGMENTER_KAFKA_USERNAME`, `SEGMENTER_KAFKA_PASSWORD` | SASL credentials |
| `SEGMENTER_KAFKA_CA_FILE` | CA bundle to verify the brokers (TLS) |
| `SEGMENTER_KAFKA_CERT_FILE`, `SEGMENTER_KAFKA_KEY_FILE` | client certificate and key (mutual TLS) |
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

import click

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(click.ClickException):
    """A misconfiguration: reported as one line by every command."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            choices = ", ".join(PROTOCOLS)
            raise KafkaSecurityError(f"SEGMENTER_KAFKA_SECURITY_PROTOCOL must be one of {choices}")
        if self.uses_sasl:
            if self.mechanism not in MECHANISMS:
                choices = ", ".join(MECHANISMS)
                raise KafkaSecurityError(f"SEGMENTER_KAFKA_SASL_MECHANISM must be one of {choices}")
            if not self.username or not self.password:
                raise KafkaSecurityError("SASL needs SEGMENTER_KAFKA_USERNAME and SEGMENTER_KAFKA_PASSWORD")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if environ is None else environ
        protocol = (env.get("SEGMENTER_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        default_mechanism = "SCRAM-SHA-256" if protocol.startswith("SASL") else None
        mechanism = env.get("SEGMENTER_KAFKA_SASL_MECHANISM") or default_mechanism
        return cls(
            protocol=protocol,
            mechanism=mechanism.upper() if mechanism else None,
            username=env.get("SEGMENTER_KAFKA_USERNAME") or None,
            password=env.get("SEGMENTER_KAFKA_PASSWORD") or None,
            ca_file=env.get("SEGMENTER_KAFKA_CA_FILE") or None,
            cert_file=env.get("SEGMENTER_KAFKA_CERT_FILE") or None,
            key_file=env.get("SEGMENTER_KAFKA_KEY_FILE") or None,
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def __repr__(self) -> str:  # never print the password
        return f"KafkaSecurity(protocol={self.protocol!r}, mechanism={self.mechanism!r})"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (KafkaProducer, KafkaConsumer, KafkaAdminClient)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            kwargs.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            kwargs.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def librdkafka(self) -> dict[str, Any]:
        """Configuration properties for confluent-kafka (librdkafka) clients: the worker's."""
        config: dict[str, Any] = {"security.protocol": self.protocol.lower()}
        if self.uses_sasl:
            config.update(
                {
                    "sasl.mechanisms": self.mechanism,
                    "sasl.username": self.username,
                    "sasl.password": self.password,
                }
            )
        if self.uses_tls:
            for name, value in (
                ("ssl.ca.location", self.ca_file),
                ("ssl.certificate.location", self.cert_file),
                ("ssl.key.location", self.key_file),
            ):
                if value:
                    config[name] = value
        return config


def kafka_python_security() -> dict[str, Any]:
    return KafkaSecurity.from_env().kafka_python()


def aiokafka_security() -> dict[str, Any]:
    return KafkaSecurity.from_env().aiokafka()


def librdkafka_security() -> dict[str, Any]:
    return KafkaSecurity.from_env().librdkafka()

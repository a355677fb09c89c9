"""Kafka TLS/SASL settings reach every client, and secrets never show in their text."""

from __future__ import annotations

import ssl

import pytest

from streams.kafka_security import KafkaSecurity, KafkaSecurityError


def test_plaintext_by_default() -> None:
    security = KafkaSecurity.from_env({})
    assert security.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert security.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert security.librdkafka() == {"security.protocol": "plaintext"}


def test_sasl_scram_over_tls() -> None:
    env = {
        "SEGMENTER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "SEGMENTER_KAFKA_USERNAME": "seg",
        "SEGMENTER_KAFKA_PASSWORD": "s3cret",
    }
    security = KafkaSecurity.from_env(env)
    kwargs = security.kafka_python()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kwargs["sasl_plain_username"] == "seg" and kwargs["sasl_plain_password"] == "s3cret"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert security.aiokafka()["sasl_mechanism"] == "SCRAM-SHA-256"
    config = security.librdkafka()
    assert config["security.protocol"] == "sasl_ssl" and config["sasl.mechanisms"] == "SCRAM-SHA-256"
    assert config["sasl.username"] == "seg" and config["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(security) and "s3cret" not in str(security)


@pytest.mark.parametrize(
    "env",
    [
        {"SEGMENTER_KAFKA_SECURITY_PROTOCOL": "TLS"},
        {"SEGMENTER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
        {
            "SEGMENTER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SEGMENTER_KAFKA_USERNAME": "u",
            "SEGMENTER_KAFKA_PASSWORD": "p",
            "SEGMENTER_KAFKA_SASL_MECHANISM": "GSSAPI",
        },
    ],
)
def test_misconfiguration_is_one_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(KafkaSecurityError) as info:
        KafkaSecurity.from_env(env)
    assert "SEGMENTER_KAFKA_" in info.value.message


def test_tls_files_map_onto_librdkafka_locations() -> None:
    env = {
        "SEGMENTER_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SEGMENTER_KAFKA_CA_FILE": "/etc/ca.pem",
        "SEGMENTER_KAFKA_CERT_FILE": "/etc/client.pem",
        "SEGMENTER_KAFKA_KEY_FILE": "/etc/client.key",
    }
    assert KafkaSecurity.from_env(env).librdkafka() == {
        "security.protocol": "ssl",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
    }

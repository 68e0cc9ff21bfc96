"""Two real engines: the platform's own and a second one in a network namespace, reached over TCP with TLS
client certificates (tests/plugins/engines.py). Hosts, their registration check, and placement over both."""

import dataclasses

import pytest

from provisioning import docker_client
from tests.plugins import engines

pytestmark = [pytest.mark.docker]


def test_the_second_engine_answers_over_tls_only_with_the_client_certificate_and_holds_the_store_images(
    second_engine, settings
):
    facts = docker_client.engine_facts(base_url=second_engine.engine())
    assert facts.server_version and facts.storage_driver
    for image in set(settings.STORE_IMAGES["woocommerce"].values()):
        assert docker_client.image_id(tag=image, base_url=second_engine.engine()) == docker_client.image_id(tag=image)

    # The same address without a client certificate, or with one another CA signed, is refused.
    with pytest.raises(docker_client.DockerUnavailable):
        docker_client.engine_facts(base_url=f"tcp://{second_engine.address}:{engines.PORT}")
    stranger = engines.tls_files_make(address=second_engine.address, common_name="another CA")
    wrong_client = dataclasses.replace(
        second_engine.engine(), cert_pem=stranger.client_cert, key_pem=stranger.client_key
    )
    with pytest.raises(docker_client.DockerUnavailable):
        docker_client.engine_facts(base_url=wrong_client)
    # Nor does the platform trust an engine whose certificate its CA did not sign.
    wrong_ca = dataclasses.replace(second_engine.engine(), ca_pem=stranger.ca)
    with pytest.raises(docker_client.DockerUnavailable):
        docker_client.engine_facts(base_url=wrong_ca)

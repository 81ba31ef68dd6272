"""What the clients rely on without showing it, checked over plain HTTP on
the shared server."""

import json


def fault(body):
    return json.loads(body["error_message"])["faultstring"]


def test_trailing_slashes_are_ignored(ferric):
    # python-ironicclient pages with `/v1/nodes/?limit=...&marker=...`.
    for path in ("/v1/", "/v1/nodes/", "/v1/nodes/?limit=1", "/v1/drivers/", "/v1/conductors/", "/v1/ports/",
                 "/v1/portgroups/", "/v1/chassis/"):
        status, body = ferric.api("GET", path)
        assert status == 200, (path, body)


def test_field_selection_errors(ferric):
    # openstacksdk can select driver fields; `links` always comes along.
    status, body = ferric.api("GET", "/v1/drivers/fake-hardware?fields=name")
    assert status == 200
    assert set(body) == {"name", "links"}

    status, body = ferric.api("GET", "/v1/drivers?fields=bogus")
    assert status == 400
    assert fault(body).startswith("Schema error: 'bogus' is not one of ['hosts', 'links', 'name', 'default_boot_interface', ")

    status, body = ferric.api("GET", "/v1/chassis?fields=bogus")
    assert status == 400
    assert fault(body) == (
        "Schema error: 'bogus' is not one of ['created_at', 'description', 'extra', 'links', 'nodes', 'updated_at', 'uuid']"
    )

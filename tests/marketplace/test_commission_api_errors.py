"""A malformed commission from a script gets the API's error shape naming the field, never a 500."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_list_with_a_bad_item_is_refused_by_name(client, make_user):
    client.force_login(make_user("cora", trainer=False, customer=True))
    answer = client.post("/api/v1/marketplace/commissions/",
                         {"budget_cents": 100, "deadline": "2000-01-01T00:00:00Z", "description": "Bread.",
                          "title": "Bakery", "uses": ["0", ""]}, content_type="application/json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "uses")
    assert error["message"] == "This field may not be blank." and "uses" in error["fields"]

"""Secret masking: what a trader may see of a key, and what never."""
from core.masking import Masker, mask, mask_config, secret_values


def test_mask_keeps_only_the_last_four_of_long_values_and_nothing_of_short_ones():
    assert mask("abcdefgh12345678") == "****5678"
    assert mask("short") == "****"
    assert mask("") == "" and mask(None) == ""


def test_mask_config_masks_secret_fields_at_any_depth_and_leaves_the_rest():
    doc = {"exchange_config": {"api_key": "AKIAEXAMPLE1234567", "secret_key": "s3cr3t-value-9999",
                               "passphrase": "hunter2hunter2", "timeout_ms": 1000},
           "strategy_config": {"grid_num": 20}, "list": [{"token": "tok-abcdefgh-0000"}]}
    out = mask_config(doc)
    assert out["exchange_config"] == {"api_key": "****4567", "secret_key": "****9999",
                                      "passphrase": "****ter2", "timeout_ms": 1000}
    assert out["strategy_config"] == {"grid_num": 20} and out["list"] == [{"token": "****0000"}]
    assert doc["exchange_config"]["api_key"] == "AKIAEXAMPLE1234567"  # a copy, the original untouched


def test_a_variable_reference_stays_readable_but_its_default_is_masked():
    out = mask_config({"api_key": "${BACKPACK_KEY}", "secret_key": "${BP_SECRET:-literal-secret-value}"})
    assert out == {"api_key": "${BACKPACK_KEY}", "secret_key": "${BP_SECRET:-****alue}"}


def test_masker_replaces_known_secrets_inside_free_text():
    masker = Masker(["supersecretvalue1234", "abc"])   # too short to mask safely: ignored
    assert masker("auth failed for supersecretvalue1234 at abc") == "auth failed for ****1234 at abc"


def test_secret_values_finds_what_mask_config_masks_at_any_depth():
    doc = {"exchange_config": {"api_key": "AKIAEXAMPLE1234567", "timeout_ms": 1000},
           "daemon_config": {"environment": {"VENUE_PASSPHRASE": 918273645546372819, "TZ": "UTC"}},
           "list": [{"token": "tok-abcdefgh-0000"}], "flag": {"private": True}}
    assert sorted(secret_values(doc)) == ["918273645546372819", "AKIAEXAMPLE1234567", "tok-abcdefgh-0000"]


def test_notification_urls_are_secrets_masked_with_their_channel_readable():
    doc = {"daemon_config": {"notify": {"urls": ["tgram://123456:AAsecretbottoken/987654", "${TG_URL}"],
                                        "events": ["fatal"]}}}
    out = mask_config(doc)
    assert out["daemon_config"]["notify"] == {"urls": ["tgram://****7654", "${TG_URL}"], "events": ["fatal"]}
    assert "tgram://123456:AAsecretbottoken/987654" in secret_values(doc)
    masker = Masker(secret_values(doc))
    assert "AAsecretbottoken" not in masker("sending to tgram://123456:AAsecretbottoken/987654 failed")

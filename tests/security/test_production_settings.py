"""Production is a switch: IMPRINT_ENV=production refuses to start with DEBUG on, a default secret
key, or missing signing keys, and `manage.py check --deploy` is clean with proper settings."""

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def production_env(tmp_path, **overrides) -> dict:
    seed = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    env = {
        **os.environ,
        "IMPRINT_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "imprint.example.com", "IMPRINT_VAR_DIR": str(tmp_path),
        "STRIPE_SECRET_KEY": "sk_live_example", "STRIPE_PUBLISHABLE_KEY": "pk_live_example",
        "STRIPE_WEBHOOK_SECRET": "whsec_example",
        "IMPRINT_SIGNING_KEYS": json.dumps([{"kid": "2026-11", "d": seed}]),
        "IMPRINT_WATERMARK_SECRETS": json.dumps({"1": secrets.token_urlsafe(24)}),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    for test_only in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"):  # set by other tests of this process
        env.pop(test_only, None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def deploy_check(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = deploy_check(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("overrides, message", [
    ({"DEBUG": "true"}, "refuses to start with DEBUG on"),
    ({"SECRET_KEY": None}, "needs a SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "needs a SECRET_KEY"),
    ({"IMPRINT_SIGNING_KEYS": None}, "needs IMPRINT_SIGNING_KEYS"),
    ({"IMPRINT_SIGNING_KEYS": "not json"}, "IMPRINT_SIGNING_KEYS must be a JSON list"),
    ({"IMPRINT_WATERMARK_SECRETS": None}, "needs IMPRINT_WATERMARK_SECRETS"),
    ({"STRIPE_WEBHOOK_SECRET": None}, "STRIPE_WEBHOOK_SECRET"),
])
def test_production_refuses_to_start_without_its_secrets(tmp_path, overrides, message):
    result = deploy_check(production_env(tmp_path, **overrides))
    assert result.returncode != 0
    assert message in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_a_database_url_alone_is_not_production(tmp_path):
    env = {**os.environ, "IMPRINT_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("IMPRINT_ENV", None)
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                             "print(settings.PRODUCTION, settings.DEBUG)"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.split() == ["False", "True"], result.stderr

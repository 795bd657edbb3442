"""`imprint train`'s hyperparameter options: any `--name value` goes to the API, which validates it
through TrainConfig. Here the CLI talks to the API in-process (Django's test client stands in for
HTTP), so the server's answers are real without starting a server."""

import pytest

from imprint_cli import cli
from imprint_cli.api import ApiError
from tests.support.corpus import corpus_text
from tests.training.test_jobs import local_media, make_dataset  # noqa: F401 - fixtures used by name
from training.models import TrainingJob


class InProcessClient:
    """The CLI's Client (get/post of JSON, ApiError with the server's message) over Django's test client."""

    def __init__(self, client):
        self.client = client

    def _answer(self, response):
        body = response.json()
        if response.status_code >= 400:
            raise ApiError(response.status_code, body["error"]["message"], body)
        return body

    def get(self, path, **params):
        return self._answer(self.client.get(path, {k: v for k, v in params.items() if v is not None}))

    def post(self, path, json=None):
        return self._answer(self.client.post(path, json or {}, content_type="application/json"))


@pytest.fixture
def imprint(trainer, local_media, client, monkeypatch, tmp_path):  # noqa: F811
    """Runs `imprint ARGS` as the trainer against the in-process API; returns (exit status, file)."""
    client.force_login(trainer)
    monkeypatch.setenv("IMPRINT_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setattr(cli, "_client", lambda cfg, **kw: InProcessClient(client))
    poems = tmp_path / "poems.txt"
    poems.write_text(corpus_text())
    make_dataset(trainer)  # the same text: found by its digest, not uploaded

    def run(*args: str) -> int:
        return cli.main(["train", str(poems), "--detach", *args])

    return run


def test_it_reads_any_hyperparameter_as_name_and_value():
    args = cli.parse_arguments(["train", "poems.txt", "--steps", "100", "--weight-decay", "-1", "--lr=0.01",
                                "--sample-num", "2", "--grad_clip", "0", "--sample-prompt", "-- so it begins"])
    assert args.hyperparameters == {"steps": "100", "weight_decay": "-1", "learning_rate": "0.01",
                                    "sample_count": "2", "grad_clip": "0", "sample_prompt": "-- so it begins"}


def test_other_commands_still_refuse_unknown_options():
    with pytest.raises(SystemExit):
        cli.parse_arguments(["jobs", "--steps", "3"])


@pytest.mark.django_db
def test_train_refuses_a_value_out_of_range_with_the_servers_reason(imprint, capsys):
    assert imprint("--weight-decay", "5") == 1
    assert "error: weight_decay: Must be between 0 and 1." in capsys.readouterr().err
    assert imprint("--weight-decy", "0.1") == 1
    assert "error: weight_decy: not a field of a training job." in capsys.readouterr().err
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_train_sets_the_newly_settable_hyperparameters(imprint, capsys):
    assert imprint("--steps", "100", "--lr-schedule", "cosine", "--weight-decay", "0.01", "--grad-clip", "0.5",
                   "--eval-max-windows", "16", "--keep-checkpoints", "3") == 0
    assert "Started job" in capsys.readouterr().out
    config = TrainingJob.objects.get().config
    assert (config.steps, config.lr_schedule, config.weight_decay, config.grad_clip) == (100, "cosine", 0.01, 0.5)
    assert (config.eval_max_windows, config.keep_checkpoints) == (16, 3)


@pytest.mark.django_db
def test_train_recomputes_activations_when_asked_and_says_so(imprint, capsys):
    assert imprint("--steps", "100", "--activations", "recompute") == 0
    out = capsys.readouterr().out
    assert "Started job" in out and "recomputing activations" in out
    assert TrainingJob.objects.get().config.activations == "recompute"
    assert imprint("--steps", "100", "--activations", "sometimes", "--new") == 1
    assert "error: activations: " in capsys.readouterr().err

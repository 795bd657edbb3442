"""The `imprint` command: argument parsing and one function per command."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from . import __version__, commissions, config
from .api import ApiError, Client, PlainHttpRefused, is_plain_http_to_remote
from .ui import Bar

DATASETS = "/api/v1/training/datasets/"
JOBS = "/api/v1/training/jobs/"
POLL_SECONDS = 1.0
PAUSE_WAIT_SECONDS = 120


def _client(cfg: dict, *, credential: str = "token") -> Client:
    if not cfg.get("url"):
        raise SystemExit("Not logged in: run `imprint login URL` first (or set IMPRINT_URL and IMPRINT_TOKEN).")
    secret = cfg.get(credential)
    if not secret:
        what = "an API key (imp_…): `imprint login URL --api-key`, IMPRINT_API_KEY, or --api-key" \
            if credential == "api_key" else "a token: `imprint login URL`"
        raise SystemExit(f"No credential for this command; give {what}.")
    return Client(cfg["url"], secret, allow_plain_http=cfg.get("insecure_http", False))


# --- login -----------------------------------------------------------------------------------

def cmd_login(args, cfg) -> int:
    allow_plain_http = cfg.get("insecure_http", False)
    if is_plain_http_to_remote(args.url) and not allow_plain_http:
        raise PlainHttpRefused(args.url)  # before the user types a token that would then be refused
    token = os.environ.get("IMPRINT_TOKEN") or getpass.getpass(
        f"Personal access token (create one at {args.url.rstrip('/')}/account/tokens/): ").strip()
    me = Client(args.url, token, allow_plain_http=allow_plain_http).get("/api/v1/account/")
    values = {"url": args.url.rstrip("/"), "token": token}
    if args.save_api_key:
        values["api_key"] = os.environ.get("IMPRINT_API_KEY") or getpass.getpass("API key (imp_…): ").strip()
    path = config.save(values)
    scopes = ", ".join(me.get("token", {}).get("scopes", []))
    print(f"Logged in to {values['url']} as {me['username']} (token scopes: {scopes}). Saved in {path}.")
    return 0


# --- datasets --------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _print_stats(dataset: dict) -> None:
    s = dataset["stats"]
    print(f"Dataset {dataset['name']} ({dataset['id']}): {s['documents']:,} documents, {s['characters']:,} characters, "
          f"{s['tokens']:,} tokens ({s.get('tokenizer', '?')} tokenizer); documents of "
          f"{s['shortest_document_tokens']:,} to {s['longest_document_tokens']:,} tokens; licence {dataset['licence']}"
          f"{_holders(dataset)}.")


def _holders(dataset: dict) -> str:
    holders = dataset.get("rights_holders") or []
    return f", rights held by {'; '.join(holders)}" if holders else ""


def upload_dataset(client: Client, path: Path, *, licence: str, name: str = "", count_for: str = "",
                   rights_holders: list[str] | None = None) -> dict:
    """Upload a file and wait for the server to process it. Returns the dataset; raises
    SystemExit with the server's reason when the file is refused."""
    fields = {"licence": licence, "licence_attested": "true", "name": name or path.stem}
    if count_for:
        fields["stats_base_model"] = count_for
    if rights_holders:
        fields["rights_holders"] = "\n".join(rights_holders)
    with Bar(f"Uploading {path.name}", unit=" bytes") as bar:
        upload = client.upload(DATASETS, path, fields, lambda done, total: bar.update(done, total))
    with Bar("Processing", unit=" %") as bar:
        while upload["state"] == "processing":
            bar.update(int(upload["progress"]), 100, upload.get("phase") or "")
            time.sleep(POLL_SECONDS)
            upload = client.get(f"/api/v1/training/uploads/{upload['id']}/")
        bar.update(100, 100, upload["state"])
    if upload["state"] == "refused":
        refusal = upload["refusal"]
        at = f" (byte {refusal['offset']})" if refusal.get("offset") is not None else ""
        raise SystemExit(f"Refused: {refusal['message']} [{refusal['reason']}{at}]")
    return upload["dataset"]


def cmd_datasets_upload(args, cfg) -> int:
    dataset = upload_dataset(_client(cfg), Path(args.file), licence=args.licence, name=args.name,
                             count_for=args.count_for, rights_holders=args.rights_holder)
    _print_stats(dataset)
    return 0


def cmd_datasets_list(args, cfg) -> int:
    for d in _client(cfg).get(DATASETS):
        print(f"{d['id']}  {d['name']:<30} {d['stats'].get('tokens', 0):>12,} tokens  {d['licence']}")
    return 0


# --- train -----------------------------------------------------------------------------------

# Older spellings of a few options (from the train.py script this command replaces). Every other
# `--name value` is sent under its own name: the server's hyperparameters (`imprint
# hyperparameters`) are the only list of names, limits and defaults, and the server refuses names
# and values it does not accept, so this client never repeats them.
OPTION_ALIASES = {"lr": "learning_rate", "sample_num": "sample_count", "sample_length": "sample_max_new_tokens",
                  "save_every": "checkpoint_every"}


def parse_hyperparameters(options: list[str]) -> dict[str, str]:
    """`--name value` and `--name=value` pairs (dashes or underscores) as {name: value}; values stay
    text for the server to read. Raises SystemExit for anything that is not such a pair."""
    found, rest = {}, list(options)
    while rest:
        option = rest.pop(0)
        name, has_value, value = option.partition("=")
        if not name.startswith("--") or len(name) < 3:
            raise SystemExit(f"imprint train: unexpected argument {option!r}; hyperparameters are --name value.")
        if not has_value:
            if not rest:
                raise SystemExit(f"imprint train: {name} needs a value.")
            value = rest.pop(0)
        key = name[2:].replace("-", "_")
        found[OPTION_ALIASES.get(key, key)] = value
    return found


def _dataset_for(client: Client, path: Path, args) -> dict:
    found = client.get(DATASETS, sha256=file_digest(path))
    if found:
        print(f"Dataset already uploaded: {found[0]['name']} ({found[0]['id']}).")
        return found[0]
    if not args.licence:
        raise SystemExit(f"{path.name} is not uploaded yet: say under which licence with --licence (e.g. cc-by-4.0).")
    dataset = upload_dataset(client, path, licence=args.licence, count_for=args.base,
                             rights_holders=args.rights_holder)
    _print_stats(dataset)
    return dataset


def cmd_train(args, cfg) -> int:
    client = _client(cfg)
    path = Path(args.file)
    dataset = _dataset_for(client, path, args)
    body = {"dataset": dataset["id"], "base_model": args.base, "name": args.name or path.stem,
            "reuse": not args.new, **args.hyperparameters}
    job = client.post(JOBS, body)
    if job["outcome"] == "succeeded":
        print(f"This job already ran: {job['id']} succeeded ({job['step']} steps on {job['base_model']}).")
        _print_versions(job)
        print("Run it again with --new to start another.")
        return 0
    verb = {"created": "Started", "resumed": "Resuming", "following": "Following"}[job["outcome"]]
    from_step = f" from step {job['step']}" if job["outcome"] != "created" else ""
    print(f"{verb} job {job['id']}{from_step} ({job['total_steps']} steps on {job['base_model']}, "
          f"{_method_summary(job)}).", flush=True)
    if args.detach:
        print(f"Left running; follow it with `imprint job {job['id']}`.")
        return 0
    return follow(client, job, samples_after=-1 if job["outcome"] == "created" else job["step"])


def _method_summary(job: dict) -> str:
    """How the job trains: "LoRA r 8, alpha 16" (adapters beside the frozen base) or "full fine-tune",
    and ", recomputing activations" when it trades compute for memory."""
    hp = job.get("hyperparameters") or {}
    method = (f"LoRA r {hp.get('lora_r')}, alpha {hp.get('lora_alpha'):g}" if hp.get("method") == "lora"
              else "full fine-tune")
    return method + (", recomputing activations" if hp.get("activations") == "recompute" else "")


class _Interrupt:
    """Ctrl+C while following: the first asks the server to pause; a second one leaves at once."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _print_versions(job: dict, print_line=print, lead: str = "") -> None:
    """`lead` + "Model version: ID (why these weights)" per version, with the warnings it carries."""
    for version in job["versions"]:
        why = f" ({version['selection']})" if version.get("selection") else ""
        print_line(f"{lead}Model version: {version['id']}{why}")
        lead = ""
        for warning in version.get("warnings") or []:
            print_line(f"  warning [{warning['code']}]: {warning['message']}")
    if not job["versions"]:
        print_line(f"{lead}Model version: none")


def _warning_key(warning: dict) -> tuple:
    # A warning is announced again when its figures change (a later step copies more), not on every poll.
    figures = warning.get("figures") or {}
    return warning["code"], figures.get("latest_step"), figures.get("longest_copied_span"), figures.get("first_step")


def follow(client: Client, job: dict, *, samples_after: int) -> int:
    interrupt = _Interrupt()
    previous = signal.signal(signal.SIGINT, interrupt)
    metrics_after, loss, announced = 0, None, set()
    try:
        with Bar("Training", unit=" steps") as bar:
            while True:
                if interrupt.requested:
                    return _pause(client, job["id"], bar)
                job = client.get(f"{JOBS}{job['id']}/", metrics_after=metrics_after, samples_after=samples_after)
                for sample in job["samples"]:
                    bar.print(f"======== SAMPLE {sample['index'] + 1} (step {sample['step']}) ========\n"
                              f"{sample['text']}")
                    samples_after = max(samples_after, sample["step"])
                for metric in job["metrics"]:
                    metrics_after = max(metrics_after, metric["step"])
                    loss = metric["train_loss"] if metric["train_loss"] is not None else loss
                for warning in job.get("warnings") or []:
                    if _warning_key(warning) not in announced:
                        announced.add(_warning_key(warning))
                        bar.print(f"WARNING [{warning['code']}]: {warning['message']}")
                bar.update(job["step"], job["total_steps"], f"loss {loss:.3f}" if loss is not None else "",
                           job.get("eta_seconds"))
                if job["state"] in ("succeeded", "failed", "cancelled", "paused"):
                    return _finished(job, bar)
                _sleep(POLL_SECONDS, interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)


def _sleep(seconds: float, interrupt: _Interrupt) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not interrupt.requested:
        time.sleep(0.05)


def _pause(client: Client, job_id: str, bar: Bar) -> int:
    bar.print("Pausing the job (it stops at the next step and keeps a checkpoint)…")
    try:
        job = client.post(f"{JOBS}{job_id}/pause/")
    except ApiError as exc:
        bar.print(f"Could not pause: {exc.message}")
        return 1
    deadline = time.monotonic() + PAUSE_WAIT_SECONDS
    while job["state"] not in ("paused", "succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        job = client.get(f"{JOBS}{job_id}/", metrics_after=10**9, samples_after=10**9)
    # The bar last showed a step polled before the pause took effect: bring it to where it stopped.
    bar.update(job["step"], job["total_steps"])
    if job["state"] == "paused":
        bar.print(f"Paused at step {job['step']} of {job['total_steps']}. Run the same command again to resume.")
        return 130
    return _finished(job, bar)


def _finished(job: dict, bar: Bar) -> int:
    if job["state"] == "succeeded":
        _print_versions(job, bar.print, lead=f"Finished: {job['step']} steps. ")
        return 0
    if job["state"] == "paused":
        bar.print(f"The job was paused at step {job['step']}. Run the same command again to resume.")
        return 0
    bar.print(f"Job {job['state']}: {job.get('error') or ''}".rstrip(": "))
    return 1


def cmd_jobs(args, cfg) -> int:
    for j in _client(cfg).get(JOBS):
        print(f"{j['id']}  {j['name']:<24} {j['state']:<10} {j['step']:>7}/{j['total_steps']:<7} {j['base_model']}")
    return 0


def cmd_job(args, cfg) -> int:
    job = _client(cfg).get(f"{JOBS}{args.job}/")
    last = job["metrics"][-1] if job["metrics"] else {}
    print(f"Job {job['id']} ({job['name']}): {job['state']}, step {job['step']}/{job['total_steps']} "
          f"({job['percent']} %), {job['compute_seconds']} s of compute on {job['device'] or 'no device yet'}.")
    if last:
        print("Last metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                                           if isinstance(v, float) and k != "step"))
    for warning in job.get("warnings") or []:
        print(f"WARNING [{warning['code']}]: {warning['message']}")
    for v in job["versions"]:
        why = f" ({v['selection']})" if v.get("selection") else ""
        print(f"Version {v['id']} from step {v['from_step']}{why}: {v['digest'][:16]}…")
    if job.get("error"):
        print(f"Error: {job['error']}")
    return 0


def cmd_versions(args, cfg) -> int:
    if args.action == "download":
        return cmd_versions_download(args, cfg)
    for v in _client(cfg).get("/api/v1/training/versions/"):
        loss = v["metrics"].get("val_loss")
        method = "lora" if v.get("method") == "lora" else "full"
        print(f"{v['id']}  {v['name']:<28} {v['digest'][:12]}  step {v['from_step']}  {method}"
              + (f"  val_loss {loss:.3f}" if isinstance(loss, (int, float)) else ""))
    return 0


def cmd_versions_download(args, cfg) -> int:
    """Save one of your versions as a zip (an adapter's peft folder, or --merged: a whole model)."""
    if not args.version:
        raise SystemExit("imprint versions download: give a version id")
    client = _client(cfg)
    params = {"merged": "1"} if args.merged else {}
    path = f"/api/v1/training/versions/{args.version}/download/"
    target = Path(args.output or f"{args.version}{'-merged' if args.merged else ''}.zip")
    size = client.download(path, target, params=params)
    print(f"Saved {target} ({size} bytes).")
    return 0


# --- publish ---------------------------------------------------------------------------------

def parse_offer(spec: str, attribution: str = "") -> dict:
    """An offer from `NAME:FEE_CENTS[:USES[:TOKENS/PERIOD]]` (e.g. `Personal:0:personal,research:100000/month`),
    inline JSON, or @file.json (the API's offer: name, terms, fee_cents, currency, …)."""
    if spec.startswith("@"):
        return json.loads(Path(spec[1:]).read_text())
    if spec.lstrip().startswith("{"):
        return json.loads(spec)
    name, fee, uses, quota = (spec.split(":") + ["", "", ""])[:4]
    tokens, _, period = (quota or "100000/month").partition("/")
    if not fee.isdigit():
        raise SystemExit(f"Offer {spec!r}: the fee is a whole number of cents (NAME:FEE_CENTS[:USES[:TOKENS/PERIOD]]).")
    terms = {"uses": (uses or "personal").split(","), "samples": {"publish": True, "resell": False},
             "attribution": attribution, "quota": {"tokens": int(tokens), "period": period or "month"},
             "rate_limit_per_minute": 60, "duration_days": 365, "restrictions": []}
    return {"name": name or "Standard", "terms": terms, "fee_cents": int(fee)}


def cmd_publish(args, cfg) -> int:
    client = _client(cfg)
    offers = [parse_offer(spec, args.attribution) for spec in args.offer]
    listing = client.post("/api/v1/marketplace/listings/publish/",
                          {"model_version": args.version, "title": args.title, "description": args.description,
                           "acknowledge_memorisation": args.acknowledge_memorisation})
    print(f"Published {listing['title']} as listing {listing['id']}.")
    for offer in offers:
        made = client.post(f"/api/v1/marketplace/listings/{listing['id']}/offers/", offer)
        print(f"Offer {made['name']}: {made['fee_cents']} {made['currency']} cents, "
              f"uses {', '.join(made['terms']['uses'])} (terms {made['terms_sha256'][:12]}…).")
    return 0


# --- generate and verify ---------------------------------------------------------------------

def cmd_generate(args, cfg) -> int:
    body = {"model": args.model, "prompt": args.prompt, "max_new_tokens": args.max_tokens,
            "temperature": args.temperature}
    if args.seed is not None:
        body["seed"] = args.seed
    result = _client(cfg, credential="api_key").post("/api/v1/generations", body)
    output = result["outputs"][0]
    print(output["text"])
    receipt = output.get("receipt") or {}
    stamp = result.get("licence", {})
    print(f"\nreceipt: {receipt.get('id', 'none')}")
    if result.get("model_name"):
        print(f"model: {result.get('model_title')} ({result['model_name']})")
    print(f"licence: {stamp.get('licence_id', '?')} · uses {', '.join(stamp.get('uses', []))} · "
          f"attribution: {stamp.get('attribution') or 'none required'} · terms {stamp.get('url', '')}")
    if args.output:
        out = Path(args.output)
        out.write_text(output["text"])
        Path(f"{out}.receipt").write_text(json.dumps({"receipt": receipt.get("jws", ""), "prompt": args.prompt}))
        print(f"Saved the text in {out} and its receipt in {out}.receipt")
    return 0


_OWNERSHIP_WORDS = {"customer": "the customer who generated it owns it",
                    "licensed": "the trainer keeps the rights; the customer holds a licence to use it",
                    "public": "no one owns it exclusively; it carries no restriction beyond attribution"}


def licence_lines(licence: dict) -> list[str]:
    """A receipt's licence claim as readable lines (a server's plain words are not at hand here:
    the verification needs no login)."""
    lines = []
    if licence.get("ownership"):
        lines.append(f"Ownership: {_OWNERSHIP_WORDS.get(licence['ownership'], licence['ownership'])}")
    if licence.get("uses"):
        lines.append(f"Permitted uses: {', '.join(licence['uses'])}")
    if licence.get("attribution"):
        lines.append(f"Attribution: {licence['attribution']}")
    if licence.get("share_alike"):
        lines.append(f"Share-alike: {licence['share_alike']}")
    if licence.get("terms_id"):
        lines.append(f"Licence terms: {licence['terms_id']}")
    return lines


def cmd_verify(args, cfg) -> int:
    path = Path(args.file)
    text = path.read_text()
    sidecar = Path(f"{path}.receipt")
    receipt, prompt = args.receipt or "", ""
    if not receipt and sidecar.exists():
        saved = json.loads(sidecar.read_text())
        receipt, prompt = saved.get("receipt", ""), saved.get("prompt", "")
    if not cfg.get("url"):
        raise SystemExit("Which site? Give --url, set IMPRINT_URL, or run `imprint login URL` first.")
    client = Client(cfg["url"], None)  # the text and receipt only: no credential is sent
    result = client.post("/api/v1/verifications", {"text": text, "receipt": receipt, "prompt": prompt})
    verdict = result["verdict"]
    labels = {"receipt_valid": "VALID: the receipt is genuine and covers this exact text",
              "watermark_detected": "WATERMARK DETECTED: generated on Imprint"}
    print(labels.get(verdict, verdict.replace("_", " ").upper()))
    claims = (result.get("receipt") or {}).get("claims") or {}
    if claims:
        print(f"Model: {claims.get('model', {}).get('digest', '?')[:16]}…")
        for line in licence_lines(claims.get("licence") or {}):
            print(line)
    mark = result.get("watermark") or {}
    if "z" in mark or "z_score" in mark:
        print(f"watermark: z = {mark.get('z', mark.get('z_score'))}, detected: {mark.get('detected')}")
    return 0 if verdict in labels else 1


def cmd_keys_create(args, cfg) -> int:
    key = _client(cfg).post("/api/v1/licences/keys/", {"name": args.name})
    plaintext = key.get("key") or key.get("plaintext")
    print(f"API key {key.get('prefix', '')}… created. It is shown once: {plaintext}")
    if args.save:
        print(f"Saved for `imprint generate` in {config.save({'api_key': plaintext})}.")
    return 0


# --- parser ----------------------------------------------------------------------------------

def _train_arguments(p) -> None:
    p.add_argument("file", help="UTF-8 text; documents separated by <|endoftext|>")
    p.add_argument("--base", default="tiny", help="base model: tiny, gpt2, gpt2-medium, … (default tiny)")
    p.add_argument("--name", default="", help="job name (default: the file name)")
    p.add_argument("--licence", help="the data's licence, if the file must be uploaded (e.g. cc-by-4.0)")
    p.add_argument("--rights-holder", action="append", default=[], help=RIGHTS_HOLDER_HELP)
    p.add_argument("--detach", action="store_true", help="start (or resume) the job and return at once")
    p.add_argument("--new", action="store_true", help="start another job even if the same one is running, paused "
                   "or already succeeded (default: follow, resume, or print the finished job's version)")
    p.set_defaults(hyperparameter_options=True)


TRAIN_EPILOG = ("Hyperparameters: --NAME VALUE for any of the server's (`imprint hyperparameters` lists them with "
                "their defaults and limits), e.g. --steps 1000 --learning-rate 1e-3 --lr-schedule cosine "
                "--weight-decay 0.01 --grad-clip 1.0 --sample-every 50 --sample-count 2. Unset ones take the "
                "server's defaults; the server refuses unknown names and values out of range.")


def cmd_hyperparameters(args, cfg) -> int:
    for hp in _client(cfg).get("/api/v1/training/hyperparameters/", base_model=args.base):
        limits = ", ".join(f"{k} {v}" for k, v in hp["limits"].items())
        print(f"--{hp['name'].replace('_', '-'):<26} {hp['type']:<6} default {hp['default']!s:<8} "
              f"{limits}{'; ' if limits else ''}{hp['help']}")
    return 0


def cmd_base_models(args, cfg) -> int:
    """Every base model, and whether this server can train on it now (and why not)."""
    for base in _client(cfg).get("/api/v1/training/base-models/"):
        mark = "available  " if base["available"] else "unavailable"
        print(f"{base['name']:<14} {mark}  {base['reason']}\n{'':<14} {base['label']}, licence {base['licence']}")
    return 0


RIGHTS_HOLDER_HELP = ("who holds the rights in the text (you, for your own text); repeat for several. Every "
                      "licence sold on a model trained on it names them")


INSECURE_HTTP_HELP = ("send your token even over plain http:// to another machine (anyone on the network can "
                      "read it); also IMPRINT_INSECURE_HTTP=1. Loopback (127.0.0.1, ::1, localhost) needs no flag")


def _global_options() -> argparse.ArgumentParser:
    """Options accepted before and after the command (`imprint --insecure-http login …` and
    `imprint login … --insecure-http`); SUPPRESS keeps a command from resetting what was given before it."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--insecure-http", action="store_true", default=argparse.SUPPRESS, help=INSECURE_HTTP_HELP)
    return options


class _Commands:
    """Adds commands that all take the global options."""

    def __init__(self, subparsers):
        self.subparsers, self.common = subparsers, _global_options()

    def add(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.subparsers.add_parser(name, parents=[self.common], **kwargs)

    def group(self, name: str, **kwargs) -> _Commands:
        return _Commands(self.add(name, **kwargs).add_subparsers(dest="action", required=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imprint", description="Imprint from a terminal: train, publish, "
                                     "generate and verify through the site's API.")
    parser.add_argument("--version", action="version", version=f"imprint {__version__}")
    parser.add_argument("--insecure-http", action="store_true", help=INSECURE_HTTP_HELP)
    sub = _Commands(parser.add_subparsers(dest="command", required=True))
    p = sub.add("login", help="store the site's URL and a personal access token")
    p.add_argument("url")
    p.add_argument("--api-key", dest="save_api_key", action="store_true",
                   help="also store an API key (imp_…) for generate")
    p.set_defaults(run=cmd_login)
    datasets = sub.group("datasets", help="upload and list datasets")
    p = datasets.add("upload", help="upload a text file; prints its statistics or why it was refused")
    p.add_argument("file")
    p.add_argument("--licence", required=True, help="the data's licence: an SPDX id such as cc-by-4.0, or custom")
    p.add_argument("--name", default="")
    p.add_argument("--count-for", default="", help="base model whose tokenizer counts the tokens (default tiny)")
    p.add_argument("--rights-holder", action="append", default=[], help=RIGHTS_HOLDER_HELP)
    p.set_defaults(run=cmd_datasets_upload)
    datasets.add("list").set_defaults(run=cmd_datasets_list)
    p = sub.add("train", help="train on a file (uploaded if new); Ctrl+C pauses, the same command resumes",
                       epilog=TRAIN_EPILOG, allow_abbrev=False)  # never take a hyperparameter for --name
    _train_arguments(p)
    p.set_defaults(run=cmd_train)
    p = sub.add("hyperparameters", help="what `imprint train` can set: names, defaults, limits")
    p.add_argument("--base", default=None, help="show this base model's defaults (default tiny)")
    p.set_defaults(run=cmd_hyperparameters)
    sub.add("base-models", help="the base models, and whether this server can train on each now").set_defaults(
        run=cmd_base_models)
    sub.add("jobs", help="your training jobs").set_defaults(run=cmd_jobs)
    p = sub.add("job", help="a job's status and metrics")
    p.add_argument("job")
    p.set_defaults(run=cmd_job)
    p = sub.add("versions", help="your model versions; `versions download ID` saves one as a zip")
    p.add_argument("action", nargs="?", choices=["download"], help="download: save a version's folder as a zip")
    p.add_argument("version", nargs="?", help="the version id (download)")
    p.add_argument("--merged", action="store_true", help="an adapter folded into its base: a whole model folder")
    p.add_argument("-o", "--output", help="the zip's path (default: VERSION.zip)")
    p.set_defaults(run=cmd_versions)
    p = sub.add("publish", help="publish a model version with licence offers")
    p.add_argument("version")
    p.add_argument("--title", required=True)
    p.add_argument("--description", default="")
    p.add_argument("--attribution", default="", help="attribution text of the NAME:FEE offers (CC BY data needs one)")
    p.add_argument("--offer", action="append", default=[],
                   help="NAME:FEE_CENTS[:USES[:TOKENS/PERIOD]], inline JSON or @offer.json; repeatable")
    p.add_argument("--acknowledge-memorisation", action="store_true",
                   help="publish a version whose samples copy its training data (a memorisation warning); "
                        "recorded on its card and in the audit log")
    p.set_defaults(run=cmd_publish)
    p = sub.add("generate", help="generate text under your licence (needs an API key)")
    p.add_argument("model", help="trainer/model[@version], a version id or a listing id")
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--api-key", help="the API key (default: IMPRINT_API_KEY, else the saved one)")
    p.add_argument("-o", "--output", help="also save the text (and FILE.receipt) for `imprint verify`")
    p.set_defaults(run=cmd_generate)
    p = sub.add("verify", help="check a text's receipt and watermark")
    p.add_argument("file")
    p.add_argument("--receipt", help="the receipt (JWS); default: FILE.receipt when present")
    p.add_argument("--url", help="the site (default: IMPRINT_URL, else the one you logged in to)")
    p.set_defaults(run=cmd_verify)
    commissions.register(sub.group("commissions", help="hire a trainer, or work for a customer: post, propose, "
                                   "accept, pay, deliver, review"),
                         lambda fn: lambda args, cfg: fn(args, cfg, _client(cfg)), upload_dataset=upload_dataset)
    keys = sub.group("keys", help="API keys for generation")
    p = keys.add("create")
    p.add_argument("name")
    p.add_argument("--save", action="store_true", help="store it for `imprint generate`")
    p.set_defaults(run=cmd_keys_create)
    return parser


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `imprint train` also takes hyperparameters as `--name value` (in
    `args.hyperparameters`), which only the server knows, so they are not declared here."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "hyperparameter_options", False):
        args.hyperparameters = parse_hyperparameters(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def command_options(args: argparse.Namespace) -> dict:
    """The settings given on the command line, which win over the environment and the saved config."""
    return {"url": getattr(args, "url", None), "api_key": getattr(args, "api_key", None),
            "insecure_http": args.insecure_http}


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        return args.run(args, config.load(command_options(args)))
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.body.get("error", {}).get("code") == "base_model_unavailable":
            print("`imprint base-models` lists the base models this server can train on now.", file=sys.stderr)
        return 1
    except PlainHttpRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130

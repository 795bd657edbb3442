"""`imprint commissions …`: post a commission, propose, accept, pay, deliver and review from a terminal,
through the same API as the pages."""

from __future__ import annotations

from pathlib import Path

COMMISSIONS = "/api/v1/marketplace/commissions/"


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency.upper()}"


def _line(c: dict) -> str:
    return (f"{c['id']}  {c['title'][:32]:<32} {c['state']:<12} {_money(c['budget_cents'], c['currency']):>12}  "
            f"due {c['deadline'][:16]}" + ("  exclusive" if c["exclusive"] else ""))


def cmd_list(args, cfg, client) -> int:
    for c in client.get(COMMISSIONS):
        print(_line(c))
    return 0


def cmd_show(args, cfg, client) -> int:
    c = client.get(f"{COMMISSIONS}{args.commission}/")
    print(_line(c))
    print(c["description"])
    if c.get("payment"):
        p = c["payment"]
        print(f"Payment: {_money(p['amount_cents'], p['currency'])} {p['state']} ({p['provider']})")
    for p in c.get("proposals", []):
        print(f"  proposal {p['id']}  {p['trainer']:<12} {_money(p['price_cents'], c['currency']):>12}  "
              f"{p['base_model']}/{p['method']} {p['steps']} steps  {p['state']}")
    for e in c.get("timeline", []):
        print(f"  {e['at'][:19]}  {e.get('text') or e['event']}" + (f" ({e['detail']})" if e.get("detail") else ""))
    return 0


def cmd_post(args, cfg, client) -> int:
    body = {"title": args.title, "description": args.description, "examples": args.example,
            "budget_cents": args.budget_cents, "currency": args.currency, "uses": args.uses.split(","),
            "ownership": args.ownership, "exclusive": not args.not_exclusive, "deadline": args.deadline,
            "show_dataset_stats": args.show_stats}
    if args.data:
        body["dataset"] = args.upload_dataset(client, Path(args.data), licence=args.licence, name="", count_for="",
                                         rights_holders=args.rights_holder)["id"]
    c = client.post(COMMISSIONS, body)
    print(f"Posted commission {c['id']}: trainers can propose now.")
    return 0


def cmd_propose(args, cfg, client) -> int:
    p = client.post(f"{COMMISSIONS}{args.commission}/proposals/", {
        "price_cents": args.price_cents, "base_model": args.base_model, "method": args.method, "steps": args.steps,
        "context_length": args.context, "delivery_date": args.delivery, "message": args.message})
    print(f"Proposal {p['id']} sent.")
    return 0


def cmd_accept_proposal(args, cfg, client) -> int:
    c = client.post(f"/api/v1/marketplace/proposals/{args.proposal}/accept/")
    print(f"Accepted. Pay {_money(c['payment']['amount_cents'], c['payment']['currency'])} to start the work"
          + (": `imprint commissions pay`." if c["payment"]["provider"] == "local_test" else " on the commission's page."))
    return 0


def cmd_pay(args, cfg, client) -> int:
    c = client.post(f"{COMMISSIONS}{args.commission}/pay-test-mode/", {"card_number": args.card})
    print(f"Payment {c['payment']['state']} (local test mode: no money moves). The commission is {c['state']}.")
    return 0


def cmd_action(args, cfg, client) -> int:
    body = {k: v for k, v in (("model_version", getattr(args, "version", None)), ("note", getattr(args, "note", None)),
                              ("reason", getattr(args, "reason", None))) if v is not None}
    c = client.post(f"{COMMISSIONS}{args.commission}/{args.commission_action}/", body)
    print(f"The commission is {c['state']}.")
    return 0


def register(group, run, *, upload_dataset) -> None:
    """Add the `commissions` subcommands to `group` (cli._Commands); `run(fn)` wraps fn with a client,
    `upload_dataset` is the CLI's upload with its progress bars (passed in: this module never imports
    the CLI's, so the two do not import each other)."""
    group.add("list", help="open commissions, yours and those you proposed for").set_defaults(run=run(cmd_list))
    p = group.add("show", help="a commission, its proposals and timeline")
    p.add_argument("commission")
    p.set_defaults(run=run(cmd_show))
    p = group.add("post", help="post a commission (optionally with your dataset)")
    for name in ("--title", "--description", "--deadline"):
        p.add_argument(name, required=True)
    p.add_argument("--budget-cents", type=int, required=True)
    p.add_argument("--currency", default="usd")
    p.add_argument("--uses", default="commercial", help="comma-separated: personal,research,education,internal,commercial")
    p.add_argument("--ownership", default="customer", choices=["customer", "licensed", "public"])
    p.add_argument("--not-exclusive", action="store_true")
    p.add_argument("--example", action="append", default=[])
    p.add_argument("--data", help="a text file uploaded as your dataset (validated; trainers never download it)")
    p.add_argument("--licence", default="proprietary-owned")
    p.add_argument("--rights-holder", action="append", default=[])
    p.add_argument("--show-stats", action="store_true", help="trainers may see the dataset's statistics")
    p.set_defaults(run=run(cmd_post), upload_dataset=upload_dataset)
    p = group.add("propose", help="propose for a commission (trainers)")
    p.add_argument("commission")
    p.add_argument("--price-cents", type=int, required=True)
    p.add_argument("--base-model", default="tiny")
    p.add_argument("--method", default="full", choices=["full", "lora"])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--delivery", required=True, help="ISO date and time")
    p.add_argument("--message", default="")
    p.set_defaults(run=run(cmd_propose))
    p = group.add("accept-proposal", help="accept a proposal (the payment is then held)")
    p.add_argument("proposal")
    p.set_defaults(run=run(cmd_accept_proposal))
    p = group.add("pay", help="pay a held payment in local test mode")
    p.add_argument("commission")
    p.add_argument("--card", default="4242 4242 4242 4242")
    p.set_defaults(run=run(cmd_pay))
    for action, extra, text in (("deliver", "version", "deliver a model version (the chosen trainer)"),
                                ("accept", None, "accept the delivery"), ("revision", "--note", "ask once for a revision"),
                                ("dispute", "--reason", "dispute the delivery"), ("cancel", "--reason", "cancel")):
        p = group.add(action, help=text)
        p.add_argument("commission")
        if extra:
            p.add_argument(extra, **({"required": True} if extra == "--note" else {"default": ""} if extra.startswith("--") else {}))
        p.set_defaults(run=run(cmd_action), commission_action=action)

"""Outside text is hostile: planted everywhere the bot reads, no secret and no ping gets out.

Every secret shape the redactor knows to be tricky is planted — in CloudWatch events (one per
event, and split across two events), in a task definition, in an MLflow error body, in a
ticket title and in what people type — together with Slack control text (``<!channel>``,
``<!here>``, ``<@U…>``, ``<!subteam^…>``, a foreign ``<url|label>`` link, also in a log
stream's name). Then the real bot diagnoses, runs a runbook step, links and verifies the
ticket, takes a note and posts a summary with the export; the CLI prints ``diagnose --json``
and ``incident export``. No secret, nor any 12-character piece of one, may be in what Slack
received, the incident log (SQLite and its WAL), the export, the JSON or the log records, and
no mention or link from outside may be live in any Slack payload.

Every secret is made at run time.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import string
import time
from dataclasses import dataclass, field
from typing import Any

import boto3

from bot.cli import main as cli_main
from bot.sandbox import fakes
from bot.sandbox.conversation import ONCALL_USER, Conversation
from bot.sandbox.world import Sandbox

ALNUM = string.ascii_letters + string.digits
PINGS = (
    "<!channel> <!here> <@U0ATTACKER> <!subteam^S0ONCALL|@oncall> "
    "<https://evil.example/login|Re-authenticate here>"
)
API = "hokusai-api-development"
MLFLOW = "hokusai-mlflow-development"
# What Slack acts on in mrkdwn: a special mention, a person, a group, a channel, a link.
LIVE = re.compile(r"<[!@#][^<>]*>|<(?:https?|mailto):[^<>]*>")
FRAGMENT = 12


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Hostile:
    """The planted text, and every secret in it that must not get out."""

    secrets: list[str] = field(default_factory=list)
    newest_api_stream: list[str] = field(default_factory=list)  # events, in order
    older_api_stream: list[str] = field(default_factory=list)
    mlflow_stream: list[str] = field(default_factory=list)
    error_body: str = ""
    ticket_title: str = ""
    typed_note: str = ""
    task_env: dict[str, str] = field(default_factory=dict)

    def secret(self, value: str) -> str:
        self.secrets.append(value)
        return value


def hostile_text(seed: int = 13) -> Hostile:
    rng = random.Random(seed)
    h = Hostile()

    def password(n: int = 16) -> str:
        return h.secret(pick(rng, ALNUM, n - 2) + "7!")

    def aws_secret() -> str:
        return h.secret(pick(rng, ALNUM + "/+", 38) + "Q9")

    def key_id() -> str:
        return h.secret(fakes.aws_access_key_id())

    upper = h.secret(pick(rng, string.ascii_uppercase, 11))
    snake = h.secret(f"TIGER_{rng.randint(10, 99)}_PROD")
    example = h.secret(f"myexamplepw-{pick(rng, '0123456789abcdef', 6)}")
    env_pw = pick(rng, ALNUM, 5) + "&" + pick(rng, ALNUM, 6)
    h.secrets += [env_pw, env_pw.split("&")[1]]
    pem_body = [h.secret(pick(rng, ALNUM + "+/", 64)) for _ in range(4)]
    split_key = h.secret(fakes.hokusai_key())
    split_password = password(20)
    yaml_pw, json_pw, cookie = password(), password(), h.secret(pick(rng, ALNUM, 32))
    glued_key = h.secret(fakes.hokusai_key())
    basic_pw, k8s_pw, blob_pw = password(), password(), password()
    basic = h.secret(b64(f"admin:{basic_pw}"))
    k8s = h.secret(b64(f"postgresql://mlflow:{k8s_pw}@db.internal:5432/mlflow"))
    blob = h.secret(b64(json.dumps({"user": "mlflow", "password": blob_pw, "n": 3})))
    ids = [key_id() for _ in range(4)]
    aws = [aws_secret() for _ in range(4)]
    nested = json.dumps({"password": json_pw, "user": "mlflow"})
    for _ in range(3):
        nested = json.dumps({"log": nested})

    one_line = {
        "mysql": f"ERROR mysql -u root -p{password()} -h db.internal mlflow: access denied",
        "aws-cli": f"ERROR ACCESSKEY\t{ids[0]}\t2026-11-26T04:00:00+00:00\t{aws[0]}\tActive\tci",
        "aws-csv": f'ERROR credentials row "{ids[1]}","{aws[1]}"',
        "aws-pipe": f"ERROR | {ids[2]} | {aws[2]} |",
        "aws-tab": f"ERROR {ids[3]}\t{aws[3]}",
        "yaml": f"ERROR bad config:\n  database:\n    password:\n      {yaml_pw}\n    port: 5432",
        "json": f"ERROR upstream said {nested}",
        "cookie": f"ERROR replayed Cookie: _hokusai_session={cookie}; theme=dark",
        "glued": f"ERROR rejected header x-api-key{glued_key}",
        "upper": f"ERROR DB_PASSWORD={upper} rejected",
        "snake": f"ERROR DB_PASSWORD={snake} rejected",
        "example": f"ERROR DB_PASSWORD={example} rejected",
        "env": f"ERROR PGPASSWORD={env_pw} psql -h db.internal -U mlflow failed",
        "basic": f"ERROR upstream Authorization: Basic {basic}",
        "k8s": f"ERROR secret data:\n  DATABASE_URL: {k8s}",
        "blob": f"ERROR body={blob}",
        "pings": f"ERROR {PINGS}",
    }
    pem = ["-----BEGIN " + "RSA PRIVATE KEY-----", *pem_body, "-----END RSA PRIVATE KEY-----"]
    cut = 8 + 6  # the first 14 characters of the key in one event, the rest in the next
    split = [f"ERROR probe sent {split_key[:cut]}", f"{split_key[cut:]} and got 401"]
    pw_split = [
        f"ERROR DB_PASSWORD={split_password[:9]}",
        f"{split_password[9:]} was refused by the database",
    ]
    h.newest_api_stream = [
        "ERROR loading signing key:",
        *pem,
        *split,
        *pw_split,
        one_line["json"],
        one_line["yaml"],
        one_line["cookie"],
        one_line["mysql"],
        one_line["pings"],
    ]
    h.mlflow_stream = [
        one_line[name]
        for name in ("aws-cli", "aws-csv", "aws-pipe", "aws-tab", "glued", "upper", "snake")
    ] + [one_line[name] for name in ("example", "env", "basic", "k8s", "blob")]
    # Every shape once more, whole and cut in the middle of its line, for the error groups.
    for line in one_line.values():
        half = len(line) // 2
        h.older_api_stream += [line, line[:half], line[half:]]

    body_pw, body_cookie = password(), h.secret(pick(rng, ALNUM, 30))
    h.error_body = (
        f"Not Found {PINGS} DB_PASSWORD={body_pw} Cookie: session={body_cookie} "
        f"key{h.secret(fakes.hokusai_key())}"
    )
    ticket_key = h.secret(fakes.hokusai_key())
    h.ticket_title = f"<!here> Registry answers 404 {PINGS} probe key {ticket_key}"
    h.typed_note = f"{PINGS} rotated; the old one was DB_PASSWORD={password()}"
    h.task_env = {
        "HOKUSAI_API_KEY": "changeme",
        "DB_PASSWORD": upper,
        "AWS_SECRET_ACCESS_KEY": aws_secret(),
        "NOTES": PINGS,
    }
    return h


# -- planting ---------------------------------------------------------------------------------


def _put_events(logs: Any, group: str, stream: str, messages: list[str]) -> None:
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start = int(time.time() * 1000) - 60_000
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": start + i, "message": m} for i, m in enumerate(messages)],
    )


def plant_logs(sandbox: Sandbox, h: Hostile) -> None:
    logs = boto3.client("logs", endpoint_url=sandbox.moto.url)
    _put_events(logs, f"/ecs/{API}", "api/api/older-task", h.older_api_stream)
    time.sleep(0.01)  # the newest stream is the one created last
    _put_events(logs, f"/ecs/{MLFLOW}", "mlflow/mlflow/newest-task", h.mlflow_stream)
    # An AWS name from outside: a stream name may hold anything but ":" and "*".
    _put_events(logs, f"/ecs/{API}", "api/api/<!here>-<@U0ATTACKER>", h.newest_api_stream)


def plant_task_definition(sandbox: Sandbox, h: Hostile) -> str:
    """A new API revision with ``h.task_env`` added, deployed; returns ``family:revision``."""
    ecs = boto3.client("ecs", endpoint_url=sandbox.moto.url)
    cluster = sandbox.env.ecs.cluster
    service = ecs.describe_services(cluster=cluster, services=[API])["services"][0]
    td = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    containers = td["containerDefinitions"]
    containers[0]["environment"] += [{"name": k, "value": v} for k, v in h.task_env.items()]
    keep = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    new = ecs.register_task_definition(
        containerDefinitions=containers, **{k: td[k] for k in keep if k in td}
    )["taskDefinition"]
    ecs.update_service(cluster=cluster, service=API, taskDefinition=new["taskDefinitionArn"])
    return f"{new['family']}:{new['revision']}"


# -- reading what got out ---------------------------------------------------------------------


def mrkdwn_texts(args: dict[str, Any]) -> list[str]:
    """Every string of a recorded Slack call that Slack renders as mrkdwn."""
    out = [args["text"]] if isinstance(args.get("text"), str) else []

    def walk(value: Any) -> None:
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)  # form-encoded calls carry blocks as JSON text
            except ValueError:
                return
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
                out.append(value["text"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for key in ("blocks", "view", "attachments"):
        walk(args.get(key))
    return out


def leaks(secrets: list[str], haystack: str) -> list[str]:
    """Secrets, or 12-character pieces of them, found in ``haystack``."""
    found = []
    for secret in secrets:
        pieces = [secret[i : i + FRAGMENT] for i in range(max(1, len(secret) - FRAGMENT + 1))]
        if any(piece in haystack for piece in pieces):
            found.append(secret)
    return found


def test_hostile_text_planted_everywhere_gets_nothing_out(shared_mlflow, tmp_path, caplog, capsys):
    h = hostile_text()
    db = tmp_path / "hokusai.db"
    with (
        Sandbox("seed-outage", mlflow=shared_mlflow, workdir=tmp_path / "sandbox") as sandbox,
        Conversation(sandbox.config_path, db) as chat,
    ):
        plant_logs(sandbox, h)
        revision = plant_task_definition(sandbox, h)
        sandbox.api.not_found_detail = h.error_body
        assert chat.tracker is not None
        issue = chat.tracker.add_issue("linear", h.ticket_title)
        acks = []
        with caplog.at_level(logging.INFO):
            acks.append(chat.command(f'incident declare "{PINGS} registry down" sev=1'))
            channel = chat.channel_named("inc-")["id"]
            acks.append(chat.command("diagnose", channel_id=channel))
            acks.append(chat.command("runbook start registry-unreachable", channel_id=channel))
            walkthrough = chat.last_message(channel, containing="runbook_")
            acks.append(chat.click(walkthrough, "Run", channel_id=channel))
            acks.append(chat.command(f"ticket link {issue.key}", channel_id=channel))
            acks.append(chat.command("ticket verify", channel_id=channel))
            acks.append(chat.command(f"incident note {h.typed_note}", channel_id=channel))
            acks.append(chat.command("incident summary export", channel_id=channel))
            capsys.readouterr()
            assert cli_main(["diagnose", "--json"]) in (0, 1)
            diagnose_json = capsys.readouterr().out
            incident_id = chat.server.app.hokusai_services.store().list_incidents()[0].id
            assert cli_main(["incident", "export", str(incident_id)]) == 0
            export = capsys.readouterr().out
        calls = list(chat.slack.calls)
        files = [f.content.decode("utf-8", "replace") for f in chat.slack.files]
        stored = b"".join(
            p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists()
        ).decode("utf-8", "replace")
        channels = {c["id"] for c in chat.slack.channels}
        tracker_url = chat.tracker.base_url
    logged = "\n".join(record.getMessage() for record in caplog.records)
    sent = json.dumps([(c.method, c.args) for c in calls] + [a.body for a in acks]) + "".join(files)

    outputs = {
        "Slack": sent,
        "the incident log": stored,
        "the export": export,
        "diagnose --json": diagnose_json,
        "the log records": logged,
    }
    for where, text in outputs.items():
        assert not leaks(h.secrets, text), f"secrets reached {where}: {leaks(h.secrets, text)}"

    allowed = {f"<@{ONCALL_USER}>"} | {f"<#{c}>" for c in channels}
    foreign = [
        construct
        for call in calls
        for text in mrkdwn_texts(call.args)
        for construct in LIVE.findall(text)
        if construct not in allowed and not construct.startswith(f"<{tracker_url}")
    ]
    foreign += [c for a in acks for c in LIVE.findall(str(a.body.get("text", "")))]
    assert not foreign, f"live mentions or links from outside: {foreign[:5]}"

    # The hostile text did arrive, as text; the shapes were shown, redacted; the placeholder
    # is shown as what it is.
    assert "&lt;!channel&gt;" in sent and "evil.example" in sent
    assert f"HOKUSAI_API_KEY in {revision} is the placeholder `changeme`" in diagnose_json
    for kind in ("private-key", "hokusai-api-key", "password-field", "aws-secret-key", "cookie"):
        assert f"[redacted:{kind}]" in diagnose_json, kind

"""`/hokusai help`: every subcommand with its one-line summary, from the modules themselves."""

from __future__ import annotations

from bot.slack.commanding import CommandRequest, Reply, UsageError

NAME = "help"
SUMMARY = "Show what Hokusai can do and how to ask for it."
USAGE = "help [SUBCOMMAND]"
INLINE = True


def parse(args: list[str]) -> str | None:
    if len(args) > 1:
        raise UsageError("`help` takes at most one subcommand name")
    return args[0].lower() if args else None


async def handle(topic: str | None, req: CommandRequest, services: object) -> Reply:
    from commands import COMMANDS, usage_lines, usage_reply

    if topic:
        module = COMMANDS.get(topic)
        if module is None:
            return usage_reply(f"There is no `{topic}` subcommand.")
        lines = [f"*/hokusai {module.NAME}* — {module.SUMMARY}", "```"]
        lines += usage_lines(module)
        lines.append("```")
        return Reply("\n".join(lines))
    return overview()


def overview() -> Reply:
    from commands import COMMANDS

    rows = [f"• `{m.NAME}` — {m.SUMMARY}" for m in COMMANDS.values()]
    text = (
        "*Hokusai* finds the first failing hop of a broken request path and keeps the "
        "incident log.\n" + "\n".join(rows) + "\nMore on one: `/hokusai help SUBCOMMAND`."
    )
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Read-only: Hokusai never changes the platform it inspects, "
                    "and redacts secrets from everything it posts.",
                }
            ],
        },
    ]
    return Reply(text, blocks)

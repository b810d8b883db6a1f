"""README sections generated from the registries, so the docs cannot drift from the code.

``python -m bot.docs`` rewrites the generated parts of README.md in place;
``tests/test_docs.py`` fails when they are stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_PER = {
    "route": "each route",
    "service": "each ECS service",
    "load_balancer": "each load balancer",
    None: "once",
}


def checks_table() -> str:
    import bot.diagnosis.checks
    from bot.diagnosis.checks.base import LAYERS

    checks = sorted(
        bot.diagnosis.checks.REGISTRY.values(), key=lambda c: (LAYERS.index(c.layer), c.id)
    )
    rows = ["| check | layer | runs for | what it looks at |", "|---|---|---|---|"]
    rows += [f"| `{c.id}` | {c.layer} | {_PER[c.per]} | {c.description} |" for c in checks]
    return "\n".join(rows)


def iam_policy_block() -> str:
    import bot.diagnosis.checks
    from bot.diagnosis.iam import iam_policy

    policy = json.dumps(iam_policy(bot.diagnosis.checks.REGISTRY.values()), indent=2)
    return f"```json\n{policy}\n```"


def slack_usage() -> str:
    from commands import usage_lines

    return "```\n" + "\n".join(usage_lines()) + "\n```"


SECTIONS = {"checks": checks_table, "iam-policy": iam_policy_block, "slack-usage": slack_usage}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- generated:{name} -->.*?<!-- /generated:{name} -->", re.DOTALL)


def render(text: str) -> str:
    """``text`` with every generated section brought up to date."""
    for name, make in SECTIONS.items():
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError(f"README.md has no <!-- generated:{name} --> section")
        block = f"<!-- generated:{name} -->\n{make()}\n<!-- /generated:{name} -->"
        text = pattern.sub(lambda _m, block=block: block, text)
    return text


def main() -> int:
    README.write_text(render(README.read_text()))
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

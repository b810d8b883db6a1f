"""Slack control text: live only where the bot builds it.

Text from outside the bot — log lines, HTTP and MLflow bodies, tracker titles, AWS names and
tags, what people type — may hold Slack's control sequences: ``<!channel>``, ``<!here>``,
``<@U…>``, ``<!subteam^…>``, ``<https://evil.example/login|Re-authenticate here>``. Posted as
they are, they would page the channel or show a phishing link under the bot's name.

So the choke point (``bot/outbound.py``) passes every mrkdwn text it sends to Slack through
``neutralise()``, which escapes ``&``, ``<`` and ``>`` — Slack then shows the sequence as
typed — except in the links and mentions built here with ``link()``, ``user()`` and
``channel()``. Those carry a mark made of private-use characters and a per-process key that
outside text cannot know; ``neutralise()`` keeps a marked construct live and drops any mark it
does not recognise. Everywhere else (the terminal, files, the incident log, trackers)
``plain()`` turns the marked constructs into readable text.

Example::

    text = f"{user('U0ONCALL')} linked {link(url, ticket.title)}: {ticket.title}"
    neutralise(text)  # the mention and the link are live; a "<!here>" in the title is not
"""

from __future__ import annotations

import re
import secrets

_KEY = secrets.token_hex(6)
_OPEN = f"\ue000{_KEY}\ue001"
_CLOSE = "\ue002"
_LIVE = re.compile(re.escape(_OPEN) + r"(<[^<>\ue000-\ue002]*>)" + re.escape(_CLOSE))
_STRAY_MARK = re.compile(r"\ue000[0-9a-f]*\ue001?|[\ue000-\ue002]")
_UNESCAPED_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")
_USER_ID = re.compile(r"[UW][A-Z0-9]+")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")
_URL = re.compile(r"(?:https?|mailto):[^\s<>|\ue000-\ue002]+")
_NEEDS_WORK = re.compile(r"[<>&\ue000-\ue002]")


def escape(text: str) -> str:
    """Text Slack shows as it is: ``&``, ``<`` and ``>`` escaped, stray marks dropped.

    Already-escaped entities (``&lt;`` in what Slack sent us) are kept, not escaped twice.
    """
    text = _STRAY_MARK.sub("", text)
    text = _UNESCAPED_AMPERSAND.sub("&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _live(inner: str) -> str:
    return f"{_OPEN}<{inner}>{_CLOSE}"


def user(user_id: str) -> str:
    """A live mention of a person (``<@U…>``); an id that is no user id is shown as text."""
    if _USER_ID.fullmatch(user_id):
        return _live(f"@{user_id}")
    return escape(user_id)


def channel(channel_id: str) -> str:
    """A live link to a channel (``<#C…>``); anything else is shown as text."""
    if _CHANNEL_ID.fullmatch(channel_id):
        return _live(f"#{channel_id}")
    return escape(channel_id)


def link(url: str, label: str | None = None) -> str:
    """A live link the bot made (``<url|label>``). The label is shown as text, whatever it
    holds; a URL that is not http(s) or mailto is shown as text too."""
    if not _URL.fullmatch(url):
        return escape(label or url)
    if not label:
        return _live(url)
    return _live(f"{url}|{escape(label.replace(chr(10), ' '))}")


def neutralise(text: str) -> str:
    """mrkdwn for Slack: the constructs built by this module live, all other control text
    escaped."""
    if not _NEEDS_WORK.search(text):
        return text
    out: list[str] = []
    cursor = 0
    for m in _LIVE.finditer(text):
        out.append(escape(text[cursor : m.start()]))
        out.append(m.group(1))
        cursor = m.end()
    out.append(escape(text[cursor:]))
    return "".join(out)


def plain(text: str) -> str:
    """The text for anywhere but Slack: a mention as ``@U…``, a channel as ``#C…``, a link as
    ``label (url)``; outside text as it is."""
    if "\ue000" not in text and "\ue002" not in text:
        return text
    text = _LIVE.sub(lambda m: _readable(m.group(1)[1:-1]), text)
    return _STRAY_MARK.sub("", text)


def _readable(inner: str) -> str:
    if inner[:1] in "@#":
        return inner
    url, _, label = inner.partition("|")
    label = label.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return f"{label} ({url})" if label else url


def live_constructs(text: str) -> list[str]:
    """Every ``<…>`` sequence Slack would act on in posted mrkdwn ``text`` (for tests and
    checks): mentions, channel links, special mentions, URLs."""
    return re.findall(r"<[^<>\s][^<>]*>", text)

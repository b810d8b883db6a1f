"""The Slack stand-in answers the real slack_sdk clients and the real Bolt app like Slack does."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import string
import threading
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sandbox import signing
from bot.sandbox.slack import DEFAULT_CHANNEL_ID, SlackStandIn, manifest_scopes

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


def _random_token(prefix: str) -> str:
    # Built at run time so no token-shaped literal sits in the source.
    return prefix + "".join(random.choices(string.ascii_letters + string.digits, k=32))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def bot_token() -> str:
    return _random_token("xox" + "b-")


@pytest.fixture(scope="module")
def signing_secret() -> str:
    return "".join(random.choices(string.hexdigits.lower(), k=32))


@pytest.fixture(scope="module")
def running_standin(bot_token: str) -> Iterator[SlackStandIn]:
    # The stand-in's own methods are exercised here, beyond what the bot's manifest grants.
    scopes = manifest_scopes() | {"channels:read", "channels:join", "users:read"}
    with SlackStandIn(bot_token=bot_token, scopes=scopes) as standin:
        yield standin


@pytest.fixture
def slack(running_standin: SlackStandIn) -> SlackStandIn:
    running_standin.reset()
    return running_standin


@pytest.fixture
def async_client(slack: SlackStandIn, bot_token: str) -> AsyncWebClient:
    return AsyncWebClient(token=bot_token, base_url=slack.api_url, timeout=5)


@pytest.fixture
def sync_client(slack: SlackStandIn, bot_token: str) -> WebClient:
    return WebClient(token=bot_token, base_url=slack.api_url, timeout=5)


# ------------------------------------------------------------------ Web API


async def test_post_update_and_ephemeral_are_recorded_with_args_and_token(
    slack: SlackStandIn, async_client: AsyncWebClient, bot_token: str
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*DNS* ok"}}]
    posted = await async_client.chat_postMessage(
        channel=DEFAULT_CHANNEL_ID, text="Diagnosing", blocks=blocks
    )
    await async_client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Done")
    ephemeral = await async_client.chat_postEphemeral(
        channel=DEFAULT_CHANNEL_ID, user="U0ONCALL", text="only you"
    )
    second = await async_client.chat_postMessage(
        channel=DEFAULT_CHANNEL_ID, text="reply", thread_ts=posted["ts"]
    )

    assert posted["channel"] == DEFAULT_CHANNEL_ID
    assert posted["ts"] < second["ts"]
    post_call = slack.calls_to("chat.postMessage")[0]
    assert post_call.token == bot_token
    assert post_call.args["blocks"] == blocks
    assert [c.method for c in slack.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "chat.postMessage",
    ]
    first, reply = slack.messages(DEFAULT_CHANNEL_ID)
    assert (first["text"], first["blocks"], first["updated"]) == ("Done", blocks, 1)
    assert reply["thread_ts"] == posted["ts"]
    assert ephemeral["message_ts"]
    assert slack.ephemeral_messages(DEFAULT_CHANNEL_ID, user="U0ONCALL")[0]["text"] == "only you"


def test_form_encoded_blocks_are_decoded_and_channel_names_resolve(
    slack: SlackStandIn, sync_client: WebClient
) -> None:
    blocks = [{"type": "divider"}]
    sync_client.api_call(
        "chat.postMessage",
        data={"channel": "#incidents", "text": "form", "blocks": json.dumps(blocks)},
    )

    call = slack.wait_for("chat.postMessage")[0]
    assert call.args["blocks"] == blocks
    assert slack.messages("C0INCIDENT")[0]["blocks"] == blocks


async def test_another_token_is_refused_but_still_recorded(
    slack: SlackStandIn,
) -> None:
    intruder = AsyncWebClient(token=_random_token("xox" + "b-"), base_url=slack.api_url, timeout=5)

    with pytest.raises(SlackApiError) as refused:
        await intruder.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="hi")

    assert refused.value.response["error"] == "invalid_auth"
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.messages(DEFAULT_CHANNEL_ID) == []


async def test_rate_limited_post_is_retried_after_retry_after(
    slack: SlackStandIn, bot_token: str
) -> None:
    client = AsyncWebClient(
        token=bot_token,
        base_url=slack.api_url,
        timeout=5,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail_next("chat.postMessage", retry_after=1)

    started = time.monotonic()
    posted = await client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="after the limit")
    elapsed = time.monotonic() - started

    assert posted["ok"]
    assert elapsed >= 1.0
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in slack.messages(DEFAULT_CHANNEL_ID)] == ["after the limit"]


async def test_rate_limit_without_retry_handler_surfaces_429(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    slack.fail_next("chat.update", retry_after=7)

    with pytest.raises(SlackApiError) as limited:
        await async_client.chat_update(channel=DEFAULT_CHANNEL_ID, ts="1.0", text="x")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.response["error"] == "ratelimited"


async def test_fail_next_error_answers_ok_false_then_recovers(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    slack.fail_next("chat.postMessage", error="channel_not_found", times=2)
    slack.fail_next("conversations.info", status=500)

    errors = []
    for _ in range(2):
        with pytest.raises(SlackApiError) as failed:
            await async_client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="x")
        errors.append((failed.value.response.status_code, failed.value.response["error"]))
    posted = await async_client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="third")
    with pytest.raises(SlackApiError) as broken:
        await async_client.conversations_info(channel=DEFAULT_CHANNEL_ID)

    assert errors == [(200, "channel_not_found")] * 2
    assert posted["ok"]
    assert broken.value.response.status_code == 500


async def test_files_upload_v2_through_the_real_async_client(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    report = b"first failing hop: routing\n" * 100
    parent = await async_client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="report")

    uploaded = await async_client.files_upload_v2(
        channel=DEFAULT_CHANNEL_ID,
        thread_ts=parent["ts"],
        content=report,
        filename="diagnose.txt",
        title="Diagnose report",
        initial_comment="full report",
    )

    (stored,) = slack.files
    assert uploaded["file"]["id"] == stored.id
    assert (stored.name, stored.title, stored.content) == (
        "diagnose.txt",
        "Diagnose report",
        report,
    )
    assert (stored.channel, stored.thread_ts) == (DEFAULT_CHANNEL_ID, parent["ts"])
    share = slack.messages(DEFAULT_CHANNEL_ID)[-1]
    assert share["files"][0]["title"] == "Diagnose report"
    assert share["thread_ts"] == parent["ts"]


def test_files_upload_v2_through_the_real_sync_client(
    slack: SlackStandIn, sync_client: WebClient
) -> None:
    sync_client.files_upload_v2(channel=DEFAULT_CHANNEL_ID, content="a,b\n1,2\n", filename="t.csv")

    assert [(f.name, f.content) for f in slack.files] == [("t.csv", b"a,b\n1,2\n")]
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_conversations_create_refuses_taken_and_invalid_names(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    created = await async_client.conversations_create(name="inc-42-registry-down")
    channel_id = created["channel"]["id"]
    invited = await async_client.conversations_invite(channel=channel_id, users="U0ONCALL,U0LEAD")
    info = await async_client.conversations_info(channel=channel_id)

    refusals = {}
    for name in ("inc-42-registry-down", "Inc 42", "x" * 81, "", "--"):
        with pytest.raises(SlackApiError) as refused:
            await async_client.conversations_create(name=name)
        refusals[name] = refused.value.response["error"]

    assert channel_id.startswith("C")
    assert info["channel"]["name"] == "inc-42-registry-down"
    assert info["channel"]["is_member"] is True
    assert {"U0ONCALL", "U0LEAD"} <= set(invited["channel"]["members"])
    assert refusals == {
        "inc-42-registry-down": "name_taken",
        "Inc 42": "invalid_name_specials",
        "x" * 81: "invalid_name_maxlength",
        "": "invalid_name_required",
        "--": "invalid_name_punctuation",
    }


async def test_preloaded_channel_join_and_unknown_channel(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    slack.add_channel("C0OUTSIDE", "platform", is_member=False)

    before = await async_client.conversations_info(channel="C0OUTSIDE")
    await async_client.conversations_join(channel="C0OUTSIDE")
    with pytest.raises(SlackApiError) as missing:
        await async_client.conversations_info(channel="C0NOWHERE")

    assert before["channel"]["is_member"] is False
    assert slack.channel("#platform")["is_member"] is True
    assert missing.value.response["error"] == "channel_not_found"


async def test_unknown_method_answers_unknown_method_and_is_recorded(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as unknown:
        await async_client.api_call("chat.teleport", json={"channel": DEFAULT_CHANNEL_ID})

    assert unknown.value.response["error"] == "unknown_method"
    assert slack.calls_to("chat.teleport")[0].args == {"channel": DEFAULT_CHANNEL_ID}


async def test_views_open_and_publish_return_views_with_ids(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Declare"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Declare?"}}],
    }
    home = {"type": "home", "blocks": [{"type": "divider"}]}

    opened = await async_client.views_open(trigger_id=signing.new_trigger_id(), view=modal)
    published = await async_client.views_publish(user_id="U0ONCALL", view=home)
    with pytest.raises(SlackApiError) as no_trigger:
        await async_client.api_call("views.open", json={"view": modal})

    assert opened["view"]["id"] != published["view"]["id"]
    assert opened["view"]["title"]["text"] == "Declare"
    assert slack.home_view("U0ONCALL")["blocks"] == home["blocks"]
    assert no_trigger.value.response["error"] == "invalid_arguments"


def test_wait_for_blocks_until_the_call_arrives(
    slack: SlackStandIn, sync_client: WebClient
) -> None:
    def post_later() -> None:
        time.sleep(0.2)
        sync_client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="late")

    poster = threading.Thread(target=post_later)
    poster.start()
    try:
        (call,) = slack.wait_for("chat.postMessage", timeout=5)
    finally:
        poster.join(5)

    assert call.args["text"] == "late"


def test_wait_for_timeout_names_the_calls_that_did_arrive(
    slack: SlackStandIn, sync_client: WebClient
) -> None:
    sync_client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="only this")

    with pytest.raises(TimeoutError) as timed_out:
        slack.wait_for("chat.update", timeout=0.2)

    message = str(timed_out.value)
    assert "chat.update" in message
    assert "chat.postMessage(channel='C0INCIDENT', text='only this')" in message


async def test_response_url_posts_are_recorded_and_change_the_channel(
    slack: SlackStandIn, async_client: AsyncWebClient
) -> None:
    original = await async_client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="Run DNS?")
    url = slack.response_url(
        "run-1", channel=DEFAULT_CHANNEL_ID, user="U0ONCALL", message_ts=original["ts"]
    )
    webhook = AsyncWebhookClient(url, timeout=5)

    await webhook.send(text="Working on it")
    await webhook.send(text="DNS resolves", response_type="in_channel")
    await webhook.send(text="Ran DNS", replace_original=True)
    await webhook.send(text="x")
    await webhook.send(text="y")
    sixth = await webhook.send(text="one too many")

    assert [r["text"] for r in slack.responses("run-1")][:3] == [
        "Working on it",
        "DNS resolves",
        "Ran DNS",
    ]
    assert [m["text"] for m in slack.messages(DEFAULT_CHANNEL_ID)] == ["Ran DNS", "DNS resolves"]
    assert slack.ephemeral_messages(user="U0ONCALL")[0]["text"] == "Working on it"
    assert sixth.status_code == 404


# ------------------------------------------------------------------ signing


def test_signed_slash_command_verifies_and_tampering_fails(signing_secret: str) -> None:
    request = signing.slash_command(signing_secret, "diagnose dns env=development")
    verifier = SignatureVerifier(signing_secret)
    tampered = request.body.replace(b"dns", b"all")
    stale = signing.slash_command(signing_secret, "help", timestamp=int(time.time()) - 600)

    assert verifier.is_valid_request(request.body, request.headers)
    assert not verifier.is_valid_request(tampered, request.headers)
    assert not SignatureVerifier("0" * 32).is_valid_request(request.body, request.headers)
    assert not verifier.is_valid_request(stale.body, stale.headers)


def test_every_helper_signs_what_slack_sends(signing_secret: str) -> None:
    verifier = SignatureVerifier(signing_secret)
    requests = {
        "slash": signing.slash_command(signing_secret, "help", retry_num=1),
        "block_action": signing.block_action(signing_secret, "run_check", "dns"),
        "view": signing.view_submission(
            signing_secret, "declare", {"title": {"input": {"type": "plain_text_input"}}}
        ),
        "event": signing.event(signing_secret, {"type": "app_home_opened", "user": "U0ONCALL"}),
        "challenge": signing.url_verification(signing_secret, "abc123"),
    }
    ts = int(time.time())
    tamper_headers = signing.sign(signing_secret, b"other body", ts)

    assert all(verifier.is_valid_request(r.body, r.headers) for r in requests.values())
    assert not verifier.is_valid_request(requests["slash"].body, tamper_headers)
    assert requests["slash"].headers["X-Slack-Retry-Num"] == "1"
    assert requests["event"].json()["event_id"].startswith("Ev")
    assert requests["challenge"].json()["challenge"] == "abc123"
    clicked = json.loads(parse_qs(requests["block_action"].text)["payload"][0])
    assert clicked["actions"][0]["action_id"] == "run_check"
    assert clicked["actions"][0]["value"] == "dns"
    assert parse_qs(requests["slash"].text)["command"] == ["/hokusai"]


async def test_bolt_accepts_signed_requests_and_refuses_tampered_ones(
    slack: SlackStandIn, bot_token: str, signing_secret: str
) -> None:
    app = AsyncApp(
        signing_secret=signing_secret,
        client=AsyncWebClient(token=bot_token, base_url=slack.api_url, timeout=5),
    )
    clicked: list[str] = []

    @app.command("/hokusai")
    async def on_command(ack, command, respond) -> None:
        await ack(f"Running {command['text']}")
        await respond(f"Finished {command['text']}")

    @app.action("run_check")
    async def on_click(ack, action) -> None:
        await ack()
        clicked.append(action["value"])

    command = signing.slash_command(
        signing_secret, "diagnose dns", response_url=slack.response_url("cmd")
    )
    click = signing.block_action(signing_secret, "run_check", "dns")
    forged = signing.slash_command("f" * 32, "diagnose dns")

    answered = await app.async_dispatch(
        AsyncBoltRequest(body=command.text, headers=command.headers)
    )
    clicked_response = await app.async_dispatch(
        AsyncBoltRequest(body=click.text, headers=click.headers)
    )
    refused = await app.async_dispatch(AsyncBoltRequest(body=forged.text, headers=forged.headers))

    assert (answered.status, answered.body) == (200, "Running diagnose dns")
    assert slack.responses("cmd") == [{"text": "Finished diagnose dns"}]
    assert slack.calls_to("auth.test")[0].token == bot_token
    assert clicked_response.status == 200
    assert clicked == ["dns"]
    assert refused.status == 401


# ------------------------------------------------------------------ Socket Mode


def _bolt_app(slack: SlackStandIn, bot_token: str) -> AsyncApp:
    app = AsyncApp(client=AsyncWebClient(token=bot_token, base_url=slack.api_url, timeout=5))

    @app.command("/hokusai")
    async def on_command(ack, command, client) -> None:
        await ack(f"Usage for {command['text']}")
        await client.chat_postMessage(channel=command["channel_id"], text="working")

    return app


@pytest.fixture
async def socket_handler(
    slack: SlackStandIn, bot_token: str
) -> AsyncIterator[AsyncSocketModeHandler]:
    handler = AsyncSocketModeHandler(_bolt_app(slack, bot_token), app_token=_random_token("xapp-"))
    await handler.connect_async()
    try:
        yield handler
    finally:
        await handler.close_async()


async def test_socket_mode_slash_command_is_acked_with_the_handler_payload(
    slack: SlackStandIn, socket_handler: AsyncSocketModeHandler
) -> None:
    await slack.socket_connected_async()
    payload = signing.slash_command_payload("help", response_url=slack.response_url("sm"))

    ack = await slack.send_envelope_async("slash_commands", payload)
    (posted,) = await slack.wait_for_async("chat.postMessage")

    assert ack["payload"] == {"text": "Usage for help"}
    assert (posted.args["channel"], posted.args["text"]) == (DEFAULT_CHANNEL_ID, "working")
    assert slack.calls_to("apps.connections.open")[0].token.startswith("xapp-")


async def test_socket_mode_redelivery_carries_retry_headers(
    slack: SlackStandIn, socket_handler: AsyncSocketModeHandler
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    @socket_handler.app.event("app_home_opened")
    async def on_home(ack, request) -> None:
        await ack()
        seen.append((request.headers.get("x-slack-retry-num", [None])[0], request.body["event_id"]))

    payload = signing.event_payload({"type": "app_home_opened", "user": "U0ONCALL"})
    first = await slack.send_envelope_async("events_api", payload)
    again = await slack.send_envelope_async(
        "events_api", payload, retry_attempt=1, retry_reason="timeout"
    )
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)

    assert "payload" not in first and "payload" not in again
    assert seen == [("0", payload["event_id"]), ("1", payload["event_id"])]


async def test_socket_mode_client_reconnects_after_disconnect(
    slack: SlackStandIn, socket_handler: AsyncSocketModeHandler
) -> None:
    await slack.socket_connected_async()

    await asyncio.to_thread(slack.send_disconnect)
    await slack.wait_for_async("apps.connections.open", count=2)
    # The client drops the old socket before it opens the new one.
    for _ in range(500):
        if slack.sockets_accepted == 2 and slack.socket_count == 1:
            break
        await asyncio.sleep(0.01)
    ack = await slack.send_envelope_async("slash_commands", signing.slash_command_payload("status"))

    assert ack["payload"] == {"text": "Usage for status"}


async def _close_and_drain(handler: AsyncSocketModeHandler) -> None:
    """Close the client and let its cancelled tasks finish, as asyncio.run would."""
    await handler.close_async()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def test_socket_mode_from_sync_code_with_the_bot_on_its_own_loop(
    slack: SlackStandIn, bot_token: str
) -> None:
    bot_loop = asyncio.new_event_loop()
    bot_thread = threading.Thread(target=bot_loop.run_forever, daemon=True)
    bot_thread.start()

    async def connect() -> AsyncSocketModeHandler:
        handler = AsyncSocketModeHandler(
            _bolt_app(slack, bot_token), app_token=_random_token("xapp-")
        )
        await handler.connect_async()
        return handler

    handler = asyncio.run_coroutine_threadsafe(connect(), bot_loop).result(10)
    try:
        assert slack.socket_connected(timeout=5)
        ack = slack.send_envelope("slash_commands", signing.slash_command_payload("help"))
        slack.wait_for("chat.postMessage")
    finally:
        asyncio.run_coroutine_threadsafe(_close_and_drain(handler), bot_loop).result(10)
        bot_loop.call_soon_threadsafe(bot_loop.stop)
        bot_thread.join(5)
        bot_loop.close()

    assert ack["payload"] == {"text": "Usage for help"}


def test_send_envelope_without_a_client_times_out_with_a_reason(slack: SlackStandIn) -> None:
    with pytest.raises(TimeoutError, match="no Socket Mode client connected"):
        slack.send_envelope("slash_commands", signing.slash_command_payload("help"), timeout=0.2)


# ------------------------------------------------------------------ lifecycle


def test_stop_frees_the_port_and_ends_the_thread(bot_token: str) -> None:
    standin = SlackStandIn(bot_token=bot_token).start()
    port, thread = standin.port, standin._thread
    WebClient(token=bot_token, base_url=standin.api_url, timeout=5).auth_test()

    standin.stop()
    standin.stop()

    assert thread is not None and not thread.is_alive()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_stop_with_a_connected_socket_client_is_prompt(bot_token: str) -> None:
    standin = SlackStandIn(bot_token=bot_token).start()

    async def connect_then_stop() -> float:
        handler = AsyncSocketModeHandler(
            _bolt_app(standin, bot_token), app_token=_random_token("xapp-")
        )
        await handler.connect_async()
        await standin.socket_connected_async()
        started = time.monotonic()
        await asyncio.to_thread(standin.stop)
        elapsed = time.monotonic() - started
        await _close_and_drain(handler)
        return elapsed

    try:
        elapsed = asyncio.run(connect_then_stop())
    finally:
        standin.stop()

    assert elapsed < 3


def test_only_loopback_can_be_bound() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SlackStandIn(host="0.0.0.0")

"""The AMQP transport against a real RabbitMQ: topology as msgflo-nodejs lays it out, routes,
bindings, discovery, confirms and the ordering of acks after them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from msgflo.transport import (
    Binding,
    BindingType,
    QueueKind,
    TransportError,
    _aiormq,
    get_broker,
    get_client,
)
from msgflo.transport.amqp import DISCOVERY_TTL, AmqpBroker, AmqpClient
from msgflo.transport.base import Message
from tests.integration.amqp_helpers import Inbox, PausingProxy, Rabbit, poll, rabbitmqctl, url

pytestmark = pytest.mark.broker

DLX = "x-dead-letter-exchange"


@pytest.fixture
async def connect(vhost: str) -> AsyncIterator[Callable[..., Any]]:
    opened: list[AmqpClient] = []

    async def open_client(*, broker: bool = False, query: str = "", port: int = 5672) -> Any:
        target = url(vhost, port, query)
        client = get_broker(target) if broker else get_client(target)
        assert isinstance(client, AmqpClient)
        await client.connect()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.disconnect()


async def test_unreachable_broker_fails_with_one_line_naming_the_redacted_url() -> None:
    client = get_client("amqp://guest:secret@127.0.0.1:1/", connect_timeout=5)
    with pytest.raises(TransportError) as caught:
        await client.connect()
    assert (
        str(caught.value) == "cannot connect to amqp://guest:***@127.0.0.1:1/: connection refused"
    )


async def test_wrong_password_is_reported_as_such(vhost: str) -> None:
    client = get_client(f"amqp://guest:wrong@127.0.0.1:5672/{vhost}", connect_timeout=5)
    with pytest.raises(TransportError, match=r"guest:\*\*\*@.*authentication failed"):
        await client.connect()


async def test_inqueue_is_declared_exactly_as_msgflo_nodejs_does(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    client = await connect()
    durable, transient = name("IN"), name("TMP")
    await client.create_queue(QueueKind.IN, durable)
    await client.create_queue(QueueKind.IN, transient, persistent=False)

    queues, exchanges, bindings = rabbit.queues(), rabbit.exchanges(), rabbit.bindings()
    assert queues[durable]["durable"] is True
    assert queues[durable]["auto_delete"] is False
    assert queues[durable]["exclusive"] is False
    assert queues[durable]["arguments"] == {DLX: f"dead-{durable}"}
    assert queues[transient]["durable"] is False
    assert queues[transient]["auto_delete"] is True
    assert queues[transient]["arguments"] == {DLX: f"dead-{transient}"}
    assert exchanges[durable] == {
        "name": durable, "type": "fanout", "durable": True, "auto_delete": False
    }  # fmt: skip
    assert exchanges[transient]["durable"] is False
    assert exchanges[transient]["auto_delete"] is True
    assert (durable, "queue", durable) in bindings
    assert (transient, "queue", transient) in bindings
    # The equivalence RabbitMQ checks: same flags accepted, others refused.
    args = {DLX: f"dead-{durable}"}
    assert await rabbit.redeclare_ok("queue", durable, durable=True, arguments=args)
    assert not await rabbit.redeclare_ok("queue", durable, durable=True)


async def test_outqueue_is_a_durable_fanout_exchange(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    client = await connect()
    out = name("OUT")
    await client.create_queue(QueueKind.OUT, out)
    assert await rabbit.redeclare_ok("exchange", out, exchange_type="fanout", durable=True)
    assert not await rabbit.exists("queue", out)
    await client.remove_queue(QueueKind.OUT, out)
    assert not await rabbit.exists("exchange", out)


async def consumed(client: AmqpClient, queue: str) -> Inbox:
    """Declare ``queue`` as an inqueue and collect what arrives on it."""
    await client.create_queue(QueueKind.IN, queue)
    inbox = Inbox(client)
    await client.subscribe_to_queue(queue, inbox)
    return inbox


async def test_send_reaches_an_inqueue_directly_and_through_its_exchange(
    connect: Callable[..., Any], name: Callable[[str], str]
) -> None:
    client = await connect()
    queue = name("IN")
    inbox = await consumed(client, queue)
    await client.send_to(QueueKind.IN, queue, {"route": "default exchange"})
    await client.send_to(QueueKind.OUT, queue, {"route": "fanout exchange"})
    received = await inbox.take(2)
    assert [m.data for m in received] == [
        {"route": "default exchange"},
        {"route": "fanout exchange"},
    ]
    assert all(m.queue == queue for m in received)


async def test_sending_to_an_exchange_never_declared_declares_it_and_keeps_the_channel(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    client = await connect()
    queue, undeclared = name("IN"), name("NEVER")
    inbox = await consumed(client, queue)
    await client.send_to(QueueKind.OUT, undeclared, "into the void")
    await client.flush()
    assert await rabbit.redeclare_ok("exchange", undeclared, exchange_type="fanout", durable=True)
    await client.send_to(QueueKind.IN, queue, "still alive")
    assert [m.data for m in await inbox.take(1)] == ["still alive"]


async def test_pubsub_bindings_give_every_target_a_copy_until_removed(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    broker = await connect(broker=True)
    out, a, b = name("OUT"), name("A"), name("B")
    await broker.create_queue(QueueKind.OUT, out)
    await broker.create_queue(QueueKind.IN, a)
    await broker.create_queue(QueueKind.IN, b)
    to_a, to_b = Binding(out, a), Binding(out, b)
    await broker.add_binding(to_a)
    await broker.add_binding(to_b)
    assert await broker.list_bindings() == [to_a, to_b]

    await broker.send_to(QueueKind.OUT, out, {"n": 1})
    await broker.flush()
    await rabbit.wait_ready(a, 1)
    await rabbit.wait_ready(b, 1)

    await broker.remove_binding(to_b)
    assert await broker.list_bindings() == [to_a]
    await broker.send_to(QueueKind.OUT, out, {"n": 2})
    await broker.flush()
    await rabbit.wait_ready(a, 2)
    assert await rabbit.get_all(b) == [b'{"n":1}']


async def test_roundrobin_shares_work_between_consumers_and_deadletters_nacks(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    broker = await connect(broker=True)
    src, tgt, dead = name("OUT"), name("WORK"), name("DEAD")
    await broker.create_queue(QueueKind.OUT, src)
    await broker.create_queue(QueueKind.IN, tgt)
    await broker.create_queue(QueueKind.IN, dead)
    binding = Binding(src, tgt, BindingType.ROUNDROBIN, deadletter=dead)
    await broker.add_binding(binding)
    assert await broker.list_bindings() == [binding]
    assert {(src, "exchange", f"out-{src}"), (f"out-{src}", "queue", tgt)} <= rabbit.bindings()
    assert (f"dead-{tgt}", "queue", dead) in rabbit.bindings()

    workers = [await connect(query="prefetch=1"), await connect(query="prefetch=1")]
    seen: list[list[Any]] = [[], []]
    done = asyncio.Event()
    total = 20

    def worker(index: int) -> Callable[[Message], Any]:
        async def handle(message: Message) -> None:
            seen[index].append(message.data)
            if message.data == 0:
                await workers[index].nack_message(message)
            else:
                await workers[index].ack_message(message)
            if sum(map(len, seen)) == total:
                done.set()

        return handle

    for index, client in enumerate(workers):
        await client.subscribe_to_queue(tgt, worker(index))
    for n in range(total):
        await broker.send_to(QueueKind.OUT, src, n)
    async with asyncio.timeout(10):
        await done.wait()
    assert sorted(seen[0] + seen[1]) == list(range(total))
    assert seen[0] and seen[1], "both consumers got work"
    await rabbit.wait_ready(dead, 1)
    assert await rabbit.get_all(dead) == [b"0"]

    await broker.remove_binding(binding)
    assert await broker.list_bindings() == []
    assert (f"out-{src}", "queue", tgt) not in rabbit.bindings()
    assert (f"dead-{tgt}", "queue", dead) not in rabbit.bindings()


async def test_data_subscription_observes_a_source_until_unsubscribed(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    broker = await connect(broker=True)
    assert isinstance(broker, AmqpBroker)
    src, other = name("OUT"), name("OTHER")
    await broker.create_queue(QueueKind.OUT, src)
    await broker.create_queue(QueueKind.OUT, other)
    seen: asyncio.Queue[tuple[Binding, Any]] = asyncio.Queue()

    async def observe(binding: Binding, data: Any) -> None:
        seen.put_nowait((binding, data))

    edge = Binding(src, name("IN"))
    await broker.subscribe_data(edge, observe)
    await broker.subscribe_data(Binding(other, name("IN2")), observe)
    await broker.send_to(QueueKind.OUT, src, {"x": 1})
    await broker.send_raw(QueueKind.OUT, src, b"not json")
    async with asyncio.timeout(10):
        assert await seen.get() == (edge, {"x": 1})
        assert await seen.get() == (edge, "not json")

    subscriptions = [q for q, row in rabbit.queues().items() if q.startswith(".msgflo-broker-")]
    assert len(subscriptions) == 1
    row = rabbit.queues()[subscriptions[0]]
    assert (row["exclusive"], row["durable"], row["auto_delete"]) == (True, False, True)
    await broker.unsubscribe_data(edge, observe)
    assert (src, "queue", subscriptions[0]) not in rabbit.bindings()
    assert (other, "queue", subscriptions[0]) in rabbit.bindings()


async def test_every_coordinator_hears_every_announcement_and_fbp_stays_empty(
    connect: Callable[..., Any], rabbit: Rabbit
) -> None:
    """Two coordinators (and a third, older-style consumer of the queue ``fbp``) on one broker:
    none takes an announcement of ours from another, and none waits unread in ``fbp``."""
    first, second = await connect(broker=True), await connect(broker=True)
    observer = await connect(broker=True)
    participant = await connect()
    heard = [Inbox(), Inbox(), Inbox()]
    await first.subscribe_participant_change(heard[0])
    await second.subscribe_participant_change(heard[1])
    await observer.subscribe_participant_change(heard[2], exclusive=True)
    greedy = await rabbit.channel()  # takes whatever reaches the queue fbp

    async def take(_: Any) -> None:
        pass

    await greedy.basic_consume("fbp", take, no_ack=True)
    definitions = [
        {"id": f"p-{n}", "role": "p", "component": "C", "inports": [], "outports": []}
        for n in range(5)
    ]
    for definition in definitions:
        await participant.register_participant(definition)
    for inbox in heard:
        assert [m.data["payload"] for m in await inbox.take(5)] == definitions
    assert rabbit.exchanges()["fbp"]["type"] == "fanout"
    assert rabbit.queues()["fbp"]["arguments"] == {}  # as the original declares it
    assert "fbp" not in rabbit.bindings_from("fbp")
    await greedy.close()
    for client in (first, second, observer):
        await client.disconnect()
    for definition in definitions:  # nobody listening: nothing may pile up
        await participant.register_participant(definition)
    assert await rabbit.ready("fbp") == 0
    assert [q for q in rabbit.queues() if q.startswith(".msgflo-discovery-")] == []


async def test_the_original_participants_announcements_in_fbp_are_heard(
    connect: Callable[..., Any], rabbit: Rabbit
) -> None:
    """msgflo-nodejs participants send to the queue ``fbp`` through the default exchange."""
    coordinator = await connect(broker=True)
    heard = Inbox()
    await coordinator.subscribe_participant_change(heard)
    channel = await rabbit.channel()
    envelope = {"protocol": "discovery", "command": "participant", "payload": {"id": "node-1"}}
    await channel.basic_publish(json.dumps(envelope).encode(), exchange="", routing_key="fbp")
    assert [m.data for m in await heard.take(1)] == [envelope]
    await coordinator.disconnect()  # acked after the handler: nothing left waiting
    assert rabbit.queues()["fbp"]["messages_unacknowledged"] == 0
    assert await rabbit.ready("fbp") == 0


async def test_fbp_queue_option_feeds_an_original_coordinator_with_expiring_announcements(
    connect: Callable[..., Any], rabbit: Rabbit
) -> None:
    participant = await connect(query="fbp_queue=1")
    definition = {"id": "p-1", "role": "p", "component": "C", "inports": [], "outports": []}
    await participant.register_participant(definition)
    assert "fbp" in rabbit.bindings_from("fbp")
    channel = await rabbit.channel()
    got = await channel.basic_get("fbp", no_ack=True)  # how the original coordinator reads it
    assert json.loads(got.body)["payload"] == definition
    assert got.header.properties.expiration == str(int(DISCOVERY_TTL * 1000))
    await channel.queue_unbind("fbp", "fbp", routing_key="")  # the rest of the module: default


async def test_an_ack_waits_until_earlier_sends_are_confirmed(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    """At-least-once: an input must stay unacked while the output it caused is unconfirmed."""
    source, result, marker = name("IN"), name("OUT"), name("MARK")
    helper = await connect()
    for queue in (source, result, marker):
        await helper.create_queue(QueueKind.IN, queue)
    async with PausingProxy().running() as proxy:
        relay = await connect(port=proxy.port)
        handled = asyncio.Event()

        async def process(message: Message) -> None:
            proxy.hold()  # no confirm reaches the client from now on
            await relay.send_raw(QueueKind.IN, result, message.body)
            await relay.ack_message(message)
            await relay.send_raw(QueueKind.IN, marker, b"after the ack")
            handled.set()

        await relay.subscribe_to_queue(source, process)
        await helper.send_to(QueueKind.IN, source, "job")
        async with asyncio.timeout(10):
            await handled.wait()
        # Frames on one channel are handled in order: had the ack been sent before the
        # marker, the broker would have processed it by the time the marker is queued.
        await rabbit.wait_ready(marker, 1)
        assert await rabbit.ready(result) == 1
        assert rabbit.queues()[source]["messages_unacknowledged"] == 1

        proxy.release()
        await relay.flush()

        async def acked() -> bool:
            return bool(rabbit.queues()[source]["messages_unacknowledged"] == 0)

        await poll(acked)


async def test_a_publish_the_broker_refuses_surfaces_from_flush(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    client = await connect()
    full = name("FULL")
    channel = await rabbit.channel()
    await channel.queue_declare(
        full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )  # fmt: skip
    await client.send_raw(QueueKind.IN, full, b"fits")
    await client.send_raw(QueueKind.IN, full, b"refused")
    with pytest.raises(TransportError, match=f"queue '{full}'"):
        await client.flush()
    await client.flush()  # reported once


async def test_bodies_arrive_byte_for_byte_whatever_they_contain(
    connect: Callable[..., Any], name: Callable[[str], str]
) -> None:
    client = await connect()
    queue = name("IN")
    inbox = await consumed(client, queue)
    big = b"x" * (1024 * 1024)
    garbage = b"\xff\xfe\x00not json"
    await client.send_raw(QueueKind.IN, queue, big)
    await client.send_raw(QueueKind.IN, queue, garbage)
    await client.send_to(QueueKind.IN, queue, {"text": "héllo wörld ✓ 日本"})
    received = await inbox.take(3)
    assert received[0].body == big
    assert received[0].data == big.decode()
    assert received[1].body == garbage
    assert received[1].data == garbage
    assert received[2].data == {"text": "héllo wörld ✓ 日本"}


async def test_persistent_option_makes_messages_survive_as_delivery_mode_2(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    transient, persistent = await connect(), await connect(query="persistent=1")
    queue = name("IN")
    await transient.create_queue(QueueKind.IN, queue)
    await transient.send_raw(QueueKind.IN, queue, b"1")
    await transient.flush()  # two connections: order them by confirmation
    await persistent.send_raw(QueueKind.IN, queue, b"2")
    await persistent.flush()
    channel = await rabbit.channel()
    modes = []
    for _ in range(2):
        message = await channel.basic_get(queue, no_ack=True)
        modes.append(message.header.properties.delivery_mode)
    assert modes == [1, 2]


async def test_handlers_run_in_order_and_a_failing_one_is_nacked_not_fatal(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    client = await connect()
    queue = name("IN")
    await client.create_queue(QueueKind.IN, queue)
    await client.create_queue(QueueKind.IN, f"dead-{queue}")  # what noflo's --deadletter does
    order: list[int] = []
    finished = asyncio.Event()

    async def handle(message: Message) -> None:
        order.append(message.data)
        await asyncio.sleep(0.001 * (message.data % 3))  # uneven work must not reorder
        if message.data == 3:
            raise ValueError("boom")
        await client.ack_message(message)
        await client.ack_message(message)  # a second ack is a no-op, not a channel error
        if message.data == 29:
            finished.set()

    await client.subscribe_to_queue(queue, handle)
    for n in range(30):
        await client.send_to(QueueKind.IN, queue, n)
    async with asyncio.timeout(10):
        await finished.wait()
    assert order == list(range(30))
    await rabbit.wait_ready(f"dead-{queue}", 1)
    assert await rabbit.get_all(f"dead-{queue}") == [b"3"]


async def test_disconnect_is_idempotent_and_leaves_no_task_behind(
    vhost: str, name: Callable[[str], str]
) -> None:
    before = asyncio.all_tasks()
    client = get_broker(url(vhost))
    await client.connect()
    queue = name("IN")
    await client.create_queue(QueueKind.IN, queue)
    await client.subscribe_to_queue(queue, Inbox(client))
    await client.send_to(QueueKind.OUT, queue, 1)
    await client.disconnect()
    await client.disconnect()

    async def only_ours_left() -> bool:  # aiormq's writer ends one loop turn after the close
        return asyncio.all_tasks() == before

    await poll(only_ours_left, timeout=2)
    with pytest.raises(TransportError, match="not connected"):
        await client.send_to(QueueKind.OUT, queue, 2)


@pytest.mark.parametrize("query", ["", "fastpath=0"], ids=["fastpath", "public"])
async def test_a_consumer_refused_for_an_exclusive_queue_fails_with_the_brokers_reason(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str], query: str
) -> None:
    owner = await (await rabbit.channel()).queue_declare(name("MINE"), exclusive=True)
    client = await connect(query=query)
    with pytest.raises(TransportError) as caught:
        await client.subscribe_to_queue(owner.queue, Inbox(client))
    text = str(caught.value)
    assert f"consuming queue {owner.queue!r} refused" in text
    assert "RESOURCE_LOCKED" in text and "\n" not in text
    # The refusal costs nothing else: the client still consumes its own queues.
    inbox = await consumed(client, name("IN"))
    await client.send_to(QueueKind.IN, name("IN"), "still consuming")
    assert [m.data for m in await inbox.take(1)] == ["still consuming"]


async def test_a_consumer_refused_access_fails_with_the_brokers_reason_and_recovers(
    connect: Callable[..., Any], vhost: str, name: Callable[[str], str]
) -> None:
    secret = name("SECRET")
    client = await connect()
    await client.create_queue(QueueKind.IN, secret)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", "^(?!.*SECRET).*")
    with pytest.raises(TransportError) as caught:
        await client.subscribe_to_queue(secret, Inbox(client))
    text = str(caught.value)
    assert f"consuming queue {secret!r} refused" in text and "ACCESS_REFUSED" in text
    inbox = await consumed(client, name("IN"))
    await client.send_to(QueueKind.IN, name("IN"), "after the refusal")
    assert [m.data for m in await inbox.take(1)] == ["after the refusal"]


async def test_untested_library_versions_turn_the_fast_path_off_and_messages_still_flow(
    connect: Callable[..., Any],
    name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(_aiormq.TESTED, "aiormq", ((1, 0), (1, 1)))
    client = await connect()
    assert not client.fastpath
    inbox = await consumed(client, name("IN"))
    await client.send_to(QueueKind.IN, name("IN"), "public API")
    await client.flush()
    assert [m.data for m in await inbox.take(1)] == ["public API"]
    assert "AMQP fast path off (aiormq 7." in caplog.text

"""The input-size limit of the Qwen2.5-1M Space: the README promises inputs up to
10,000,000 characters. Everything the Space would receive counts (system, earlier turns,
the question); a conversation at the limit is accepted and built whole, one character
more is refused before any request is sent."""

import httpx
import pytest
import respx

import qwen_core
from qwen_core import queue_api
from qwen_core.spaces.qwen25_1m import Qwen25_1M

from .conftest import BASE

MODEL = "qwen-2.5-1m"
LIMIT = 10_000_000
SYSTEM = "Summarise the document."
EARLIER_Q, EARLIER_A = "What is in it?", "A very long text."


def conversation(total: int) -> list[dict[str, str]]:
    """System + one earlier turn + a question: ``total`` characters in all."""
    fixed = len(SYSTEM) + len(EARLIER_Q) + len(EARLIER_A)
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": EARLIER_Q},
        {"role": "assistant", "content": EARLIER_A},
        {"role": "user", "content": "d" * (total - fixed)},
    ]


def mocked_space(router: respx.Router) -> list[respx.Route]:
    """Every route a turn could use (Gradio 4: no prefix), so any request would show."""
    return [
        router.get(f"{BASE}/config").mock(return_value=httpx.Response(404)),
        router.post(f"{BASE}/queue/join").mock(
            return_value=httpx.Response(200, json={"event_id": "e1"})),
        router.get(f"{BASE}/queue/data").mock(return_value=httpx.Response(500)),
        router.post(f"{BASE}/run/predict").mock(return_value=httpx.Response(500)),
        router.route().mock(return_value=httpx.Response(500)),  # anything else
    ]


def test_the_1m_space_declares_the_readme_limit():
    assert Qwen25_1M.max_input_chars == LIMIT
    assert qwen_core.resolve_model(MODEL).adapter is Qwen25_1M


@pytest.mark.parametrize("total", [LIMIT - 1, LIMIT])
def test_a_conversation_up_to_the_limit_is_accepted_and_built_whole(total):
    messages = conversation(total)
    request = queue_api.prepare(MODEL, messages, base_url=BASE)  # no network
    assert request.conversation.size() == total
    data = request.payload(Qwen25_1M.known_layout()).data
    chatbot = data[0]
    # the earlier turn as a pair, then the new turn: system before the question (the
    # 1M Space has no system input), nothing cut
    assert chatbot[0][0]["text"] == EARLIER_Q and chatbot[0][1][0]["text"] == EARLIER_A
    assert chatbot[-1][0]["text"] == f"{SYSTEM}\n\n{messages[-1]['content']}"
    assert chatbot[-1][1] is None
    assert sum(len(side["text"]) for side in (chatbot[0][0], chatbot[0][1][0],
                                              chatbot[-1][0])) == total + len("\n\n")


@pytest.mark.parametrize("over", [1, 1000])
def test_over_the_limit_is_invalid_request_naming_it_and_nothing_is_sent(over):
    messages = conversation(LIMIT + over)
    with respx.mock(assert_all_called=False) as router:
        routes = mocked_space(router)
        with pytest.raises(qwen_core.InvalidRequest) as info:
            list(qwen_core.stream_chat(MODEL, messages, base_url=BASE))
        with pytest.raises(qwen_core.InvalidRequest):
            queue_api.prepare(MODEL, messages, base_url=BASE)
        assert not router.calls
        assert not any(route.called for route in routes)
    message = str(info.value)
    assert "10,000,000" in message and f"{LIMIT + over:,}" in message
    assert info.value.space_id == "Qwen/Qwen2.5-1M-Demo"


def test_every_part_of_the_conversation_counts():
    """One character over only because of the system prompt, or of the earlier answer."""
    base = conversation(LIMIT)
    longer_system = [{**base[0], "content": SYSTEM + "!"}, *base[1:]]
    longer_answer = [*base[:2], {**base[2], "content": EARLIER_A + "!"}, base[3]]
    for messages in (longer_system, longer_answer):
        with pytest.raises(qwen_core.InvalidRequest, match="10,000,000"):
            queue_api.prepare(MODEL, messages, base_url=BASE)


def test_the_limit_is_the_1m_spaces_own():
    """The same 10M conversation is too long for a Space with the default 1M limit."""
    with pytest.raises(qwen_core.InvalidRequest, match="at most 1,000,000"):
        queue_api.prepare("qwen-2.5-max", conversation(LIMIT), base_url=BASE)

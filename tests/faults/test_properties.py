"""Properties of the sans-IO core under random input (Hypothesis).

- The diff applier and the message handling raise nothing but ``SpaceError``, whatever
  the Space sends.
- Applying the diffs Gradio computes (a line-by-line copy of ``gradio.utils.diff``, Gradio
  5.50 and 6.x alike) gives what Gradio's own client gets (``gradio_client.utils.
  apply_diff``, copied too) -- which is the new value whenever Gradio's diff is right.
  The copies are checked against the real thing, so drift shows: every comparison also
  runs the installed ``gradio_client.utils.apply_diff`` (main venv), and
  :func:`test_copied_diff_is_what_the_installed_gradio_computes` runs ``gradio.utils.diff``
  in the replica venvs (Gradio 5 and 6) on the same pairs as the copy.
  (Gradio's diff mis-indexes deletes inside nested lists: it shifts them once in the inner
  list and again in the outer one. Every client then applies the same wrong edits; so do
  we, and :func:`test_gradio_diff_quirk_is_applied_like_gradio_client` pins it.)
- For random token sequences streamed as Gradio streams them, the text deltas joined equal
  the final answer.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
from typing import Any

import gradio_client
import pytest
from gradio_client.utils import apply_diff as client_apply_diff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen_core import MODELS, SpaceError
from qwen_core import queue_api as q
from qwen_core.diff import OPS, DiffError, apply_edit
from qwen_core.events import Done, ReasoningDelta, TextDelta, TextReplaced
from qwen_core.protocol import Msg, TurnDecoder
from qwen_core.spaces.base import Layout, Payload
from qwen_core.spaces.chatbot import modelscope_message
from qwen_core.spaces.qwen25_1m import SUMMARY_MARKER, Qwen25_1M
from qwen_core.spaces.qwen25_max import Qwen25Max
from tests.replicas import bed

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EID = "ev"

# -- reference implementations (copied from Gradio 6.x; Gradio 5.50 is identical) ----------


def gradio_diff(old: Any, new: Any) -> list[list[Any]]:
    """``gradio.utils.diff``, line by line."""

    def compare_objects(obj1: Any, obj2: Any, path: list[Any] | None = None) -> list[Any]:
        if path is None:
            path = []
        edits: list[Any] = []
        if obj1 == obj2:
            return edits
        if type(obj1) is not type(obj2):
            edits.append(["replace", path, obj2])
            return edits
        if isinstance(obj1, str) and obj2.startswith(obj1):
            edits.append(["append", path, obj2[len(obj1):]])
            return edits
        if isinstance(obj1, list):
            common_length = min(len(obj1), len(obj2))
            for i in range(common_length):
                edits.extend(compare_objects(obj1[i], obj2[i], path + [i]))
            for i in range(common_length, len(obj1)):
                edits.append(["delete", path + [i], None])
            for i in range(common_length, len(obj2)):
                edits.append(["add", path + [i], obj2[i]])
            deletes_seen = 0
            for edit in edits:
                if edit[0] == "delete" and isinstance(edit[1][-1], int):
                    edit[1][-1] -= deletes_seen
                    deletes_seen += 1
            return edits
        if isinstance(obj1, dict):
            for key in obj1:
                if key in obj2:
                    edits.extend(compare_objects(obj1[key], obj2[key], path + [key]))
                else:
                    edits.append(["delete", path + [key], None])
            for key in obj2:
                if key not in obj1:
                    edits.append(["add", path + [key], obj2[key]])
            return edits
        edits.append(["replace", path, obj2])
        return edits

    return compare_objects(old, new)


def gradio_apply(obj: Any, diff: list[list[Any]]) -> Any:
    """``gradio_client.utils.apply_diff``, line by line."""
    obj = copy.deepcopy(obj)

    def apply(target: Any, path: list[Any], action: str, value: Any) -> Any:
        if len(path) == 0:
            if action == "replace":
                return value
            if action == "append":
                return target + value
            raise ValueError(f"Unsupported action: {action}")
        current = target
        for i in range(len(path) - 1):
            current = current[path[i]]
        last_path = path[-1]
        if action == "replace":
            current[last_path] = value
        elif action == "append":
            current[last_path] += value
        elif action == "add":
            if isinstance(current, list):
                current.insert(int(last_path), value)
            else:
                current[last_path] = value
        elif action == "delete":
            if isinstance(current, list):
                del current[int(last_path)]
            else:
                del current[last_path]
        else:
            raise ValueError(f"Unknown action: {action}")
        return target

    for action, path, value in diff:
        obj = apply(obj, path, action, value)
    return obj


class Raised:
    """What an apply did when it raised: the exception's type (compared, not raised)."""

    def __init__(self, exc: BaseException) -> None:
        self.kind = type(exc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Raised) and other.kind is self.kind

    def __repr__(self) -> str:
        return f"Raised({self.kind.__name__})"


def outcome(apply: Any, obj: Any, diff: list[list[Any]]) -> Any:
    """``apply(obj, diff)``'s value, or ``Raised`` with the exception type."""
    try:
        return apply(copy.deepcopy(obj), copy.deepcopy(diff))
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        return Raised(exc)


def client_outcome(obj: Any, diff: list[list[Any]]) -> Any:
    """What the installed gradio_client gets; the copy above must get the same (drift)."""
    theirs = outcome(client_apply_diff, obj, diff)
    assert outcome(gradio_apply, obj, diff) == theirs, (
        f"the copy of apply_diff no longer matches gradio_client {gradio_client.__version__}"
    )
    return theirs


def qwen_apply(obj: Any, diff: list[list[Any]]) -> Any:
    outputs = [copy.deepcopy(obj)]
    for op, path, value in copy.deepcopy(diff):
        apply_edit(outputs, 0, op, path, value)
    return outputs[0]


# -- strategies ---------------------------------------------------------------------------

leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=6)
json_values = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids,
                                                              max_size=4),
    max_leaves=12,
)
anything = st.recursive(  # also what JSON cannot hold: floats, tuples, bytes, sets
    json_values | st.floats() | st.binary(max_size=4),
    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
    | st.dictionaries(st.text(max_size=2) | st.integers(), kids, max_size=3)
    | st.frozensets(st.integers(), max_size=2),
    max_leaves=8,
)


def mutate(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """A random edit of ``value`` (so that diffs have appends, adds, deletes, nesting)."""
    choice = data.draw(st.integers(0, 9))
    if choice == 0 or depth > 4:
        return data.draw(json_values)
    if isinstance(value, str):
        return value + data.draw(st.text(max_size=4)) if choice < 8 else data.draw(st.text())
    if isinstance(value, list):
        out = list(value)
        for _ in range(data.draw(st.integers(0, 3))):
            action = data.draw(st.integers(0, 2))
            if action == 0 and out:
                i = data.draw(st.integers(0, len(out) - 1))
                out[i] = mutate(data, out[i], depth + 1)
            elif action == 1 and out:
                del out[data.draw(st.integers(0, len(out) - 1))]
            else:
                out.append(data.draw(json_values))
        return out
    if isinstance(value, dict):
        out_d = dict(value)
        for key in list(out_d):
            action = data.draw(st.integers(0, 3))
            if action == 0:
                del out_d[key]
            elif action == 1:
                out_d[key] = mutate(data, out_d[key], depth + 1)
        if data.draw(st.booleans()):
            out_d[data.draw(st.text(max_size=3))] = data.draw(json_values)
        return out_d
    return data.draw(json_values)


def has_nested_list_delete(diff: list[list[Any]]) -> bool:
    """Deletes at depth > 1 are where Gradio's diff can mis-index (see the module doc)."""
    return any(op == "delete" and len(path) > 1 for op, path, _ in diff)


# -- the diff applier ----------------------------------------------------------------------


@FAST
@given(
    outputs=st.lists(json_values, min_size=1, max_size=3),
    index=st.integers(-1, 4) | anything,
    op=st.sampled_from(sorted(OPS)) | anything,
    path=st.lists(st.integers(-3, 4) | st.text(max_size=2) | anything, max_size=4) | anything,
    value=anything,
)
def test_apply_edit_raises_only_space_errors(outputs, index, op, path, value):
    try:
        apply_edit(outputs, index, op, path, value)
    except SpaceError as exc:
        assert isinstance(exc, DiffError) and str(exc)


@FAST
@given(data=st.data(), old=json_values)
def test_applying_gradios_diff_gives_what_gradio_client_gets(data, old):
    new = mutate(data, old)
    diff = gradio_diff(copy.deepcopy(old), copy.deepcopy(new))
    expected = client_outcome(old, diff)
    if isinstance(expected, Raised):
        with pytest.raises(DiffError):
            qwen_apply(old, diff)
        return
    assert qwen_apply(old, diff) == expected
    if not has_nested_list_delete(diff):
        assert expected == new


@FAST
@given(data=st.data(), start=json_values, steps=st.integers(1, 6))
def test_a_sequence_of_diffs_tracks_the_values_in_place(data, start, steps):
    """One output tree edited in place across many updates, as during a stream."""
    ours = [copy.deepcopy(start)]
    theirs = copy.deepcopy(start)
    current = start
    for _ in range(steps):
        new = mutate(data, current)
        diff = gradio_diff(copy.deepcopy(current), copy.deepcopy(new))
        theirs = client_outcome(theirs, diff)
        if isinstance(theirs, Raised):
            return  # Gradio's quirk made the edits unusable; covered by the test above
        for op, path, value in copy.deepcopy(diff):
            apply_edit(ours, 0, op, path, value)
        assert ours[0] == theirs
        current = theirs


def test_gradio_diff_quirk_is_applied_like_gradio_client():
    old, new = [[1, 2, 3]], [[1]]
    diff = gradio_diff(old, new)
    assert diff == [["delete", [0, 1], None], ["delete", [0, 0], None]]  # Gradio's output
    assert qwen_apply(old, diff) == gradio_apply(old, diff) == [[3]]
    assert client_apply_diff(old, diff) == [[3]]  # the installed gradio_client agrees


@pytest.mark.parametrize(
    ("old", "diff"),
    [
        ({"a": "x"}, [["append", ["a"], "y"], ["add", ["b"], [1]], ["add", ["b", 0], 0]]),
        ([1, [2, 3]], [["delete", [1, 0], None], ["replace", [0], "z"]]),
        ("abc", [["append", [], "d"]]),
        ([[]], [["append", [], [1]]]),
        ([1], [["delete", [5], None]]),            # out of range: IndexError
        ({"a": 1}, [["append", ["a"], "s"]]),       # int += str: TypeError
        ([1], [["frobnicate", [0], None]]),         # unknown action: ValueError
        ([0], [["add", ["x"], 1]]),                 # list index "x": ValueError
    ],
)
def test_copied_apply_diff_matches_the_installed_gradio_client(old, diff):
    """Fixed cases through both, exceptions included (the properties cover the rest)."""
    assert outcome(gradio_apply, old, diff) == outcome(client_apply_diff, old, diff)


# -- the copy of gradio.utils.diff against the real one (replica venvs) -------------------


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice("ab c\n") for _ in range(rng.randrange(5)))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, 1, -2])
    if kind in (2, 3):
        return random_text(rng)
    if kind in (4, 5):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice("kxyz"): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_edit(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """Like :func:`mutate`, from a seeded generator (the pairs go to another process)."""
    choice = rng.randrange(10)
    if choice == 0 or depth > 4:
        return random_json(rng)
    if isinstance(value, str):
        return value + random_text(rng) if choice < 8 else random_text(rng)
    if isinstance(value, list):
        out = list(value)
        for _ in range(rng.randrange(4)):
            action = rng.randrange(3)
            if action == 0 and out:
                i = rng.randrange(len(out))
                out[i] = random_edit(rng, out[i], depth + 1)
            elif action == 1 and out:
                del out[rng.randrange(len(out))]
            else:
                out.append(random_json(rng, depth + 1))
        return out
    if isinstance(value, dict):
        out_d = {}
        for key, item in value.items():
            action = rng.randrange(4)
            if action == 1:
                out_d[key] = random_edit(rng, item, depth + 1)
            elif action != 0:
                out_d[key] = item
        if rng.randrange(2):
            out_d[rng.choice("kxyzw")] = random_json(rng, depth + 1)
        return out_d
    return random_json(rng)


GRADIO_DIFF = (
    "import json, sys\n"
    "from gradio.utils import diff\n"
    "pairs = json.load(sys.stdin)\n"
    "json.dump([diff(old, new) for old, new in pairs], sys.stdout)\n"
)


@pytest.mark.replica
@pytest.mark.parametrize("replica", ["max_g5", "max_g6"])  # their venvs: Gradio 5.50, 6.x
def test_copied_diff_is_what_the_installed_gradio_computes(replica):
    python = bed.REPLICAS[replica].python
    assert python.exists(), f"{python} missing: make setup creates the Gradio venvs"
    rng = random.Random(20251203)
    pairs = [[[[1, 2, 3]], [[1]]], [{"a": "x"}, {"a": "xy", "b": 1}], ["ab", "b"]]
    for _ in range(1500):
        old = random_json(rng)
        pairs.append([old, random_edit(rng, old)])
    run_gradio = subprocess.run(
        [str(python), "-c", GRADIO_DIFF], input=json.dumps(pairs), capture_output=True,
        text=True, timeout=120, env={"GRADIO_ANALYTICS_ENABLED": "False",
                                     "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run_gradio.returncode == 0, run_gradio.stderr[-2000:]
    theirs = json.loads(run_gradio.stdout)
    ours = [gradio_diff(copy.deepcopy(old), copy.deepcopy(new)) for old, new in pairs]
    drifted = [(p, o, t) for p, o, t in zip(pairs, ours, theirs, strict=True) if o != t]
    assert not drifted, f"the copy of gradio.utils.diff drifted, e.g. {drifted[:3]}"
    kinds = {edit[0] for diff in theirs for edit in diff}
    assert kinds == {"replace", "append", "add", "delete"}  # the pairs exercise every op


# -- message handling ----------------------------------------------------------------------

msg_kinds = st.sampled_from([m.value for m in Msg]) | st.text(max_size=8)
edits = st.lists(
    st.tuples(st.sampled_from([*sorted(OPS), "frobnicate"]),
              st.lists(st.integers(-2, 3) | st.sampled_from(["content", "text", "value"]),
                       max_size=5),
              json_values).map(list) | json_values,
    max_size=3,
)
output_data = (
    st.lists(json_values, max_size=6)
    | st.lists(edits, max_size=6)
    | st.just(["", [["q", "partial"]], "s"])
    | st.just(["", [["q", [{"text": "x"}]]], "s"])
)
messages = st.fixed_dictionaries(
    {"msg": msg_kinds},
    optional={
        "event_id": st.sampled_from([EID, None, "other"]) | json_values,
        "output": st.fixed_dictionaries({}, optional={
            "data": output_data | json_values, "error": json_values, "title": json_values,
        }) | json_values,
        "success": st.booleans() | json_values,
        "rank": json_values, "queue_size": json_values, "rank_eta": json_values,
        "eta": json_values, "message": json_values, "session_not_found": json_values,
        "title": json_values, "log": json_values, "level": json_values,
        "progress_data": st.lists(st.fixed_dictionaries({}, optional={"desc": json_values})
                                  | json_values, max_size=2) | json_values,
    },
) | json_values


def _payloads() -> list[tuple[Any, Payload, str]]:
    """(adapter, payload, protocol) for every model, as the transports build them."""
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "q"}]
    found = []
    for model_id in MODELS:
        request = q.prepare(model_id, msgs, base_url="http://127.0.0.1:9")
        layout = request.adapter.known_layout()
        for protocol in ("sse_v3", "sse_v1"):
            found.append((request.adapter, request.payload(layout), protocol))
    g6 = Layout(protocol="sse_v3", api_prefix="/gradio_api", fn_index=0, version="6.0.0")
    request = q.prepare("qwen-2.5-max", msgs, base_url="http://127.0.0.1:9")
    found.append((Qwen25Max, request.payload(g6), "sse_v3"))
    return found


PAYLOADS = _payloads()


@FAST
@given(which=st.integers(0, len(PAYLOADS) - 1), stream=st.lists(messages, max_size=8))
def test_turn_decoder_raises_only_space_errors(which, stream):
    adapter, payload, protocol = PAYLOADS[which]
    decoder = TurnDecoder(adapter, payload, protocol=protocol, event_id=EID)
    for message in stream:
        try:
            events = decoder.feed(message)
        except SpaceError as exc:
            assert str(exc) and exc.space_id == adapter.space_id
            continue
        assert isinstance(events, list)
    try:
        decoder.stream_ended()
    except SpaceError:
        pass


@FAST
@given(text=st.text(max_size=60) | json_values.map(json.dumps).flatmap(
    lambda s: st.integers(0, len(s)).map(lambda n: s[:n])))
def test_decode_sse_data_raises_only_space_errors(text):
    try:
        q.decode_sse_data(text)
    except SpaceError as exc:
        assert "malformed" in str(exc)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_absurdly_nested_message_is_space_api_changed(depth):
    with pytest.raises(SpaceError):
        q.decode_sse_data("[" * depth + "]" * depth)


# -- streamed deltas join to the final answer -------------------------------------------------


def stream_of(states: list[list[Any]], eid: str = EID) -> list[dict[str, Any]]:
    """The queue messages Gradio sends for these successive output values (sse_v3)."""
    out = [{"msg": "estimation", "event_id": eid, "rank": 0, "queue_size": 1},
           {"msg": "process_starts", "event_id": eid},
           {"msg": "process_generating", "event_id": eid, "success": True,
            "output": {"data": copy.deepcopy(states[0]), "is_generating": True}}]
    for old, new in zip(states, states[1:], strict=False):
        diffs = [gradio_diff(copy.deepcopy(a), copy.deepcopy(b)) for a, b in zip(old, new,
                                                                                    strict=True)]
        out.append({"msg": "process_generating", "event_id": eid, "success": True,
                    "output": {"data": diffs, "is_generating": True}})
        out.append({"msg": "heartbeat"})
    out.append({"msg": "process_completed", "event_id": eid, "success": True,
                "output": {"data": copy.deepcopy(states[-1]), "is_generating": False}})
    return out


def run(decoder: TurnDecoder, stream: list[dict[str, Any]]) -> tuple[str, str, Done]:
    """Feed everything; returns (joined text deltas, joined reasoning deltas, Done)."""
    text, reasoning, done = [], [], None
    for message in stream:
        for event in decoder.feed(message):
            assert not isinstance(event, TextReplaced), "only appends: nothing to rewrite"
            if isinstance(event, TextDelta):
                assert event.text
                text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, Done):
                done = event
    assert done is not None and decoder.finished
    return "".join(text), "".join(reasoning), done


def grouped(tokens: list[str], sizes: list[int]) -> list[str]:
    """Prefixes of the answer as the Space yields them (several tokens per update)."""
    prefixes, i, k = [""], 0, 0
    while i < len(tokens):
        step = sizes[k % len(sizes)] if sizes else 1
        i += step
        k += 1
        prefixes.append("".join(tokens[:i]))
    return prefixes


token_lists = st.lists(st.text(max_size=5), max_size=25)
update_sizes = st.lists(st.integers(1, 3), max_size=4)


@FAST
@given(tokens=token_lists, sizes=update_sizes, turns=st.integers(0, 2))
def test_tuples_chatbot_deltas_join_to_the_final_answer(tokens, sizes, turns):
    history = [[f"u{i}", f"a{i}"] for i in range(turns)]
    states = [["", [*history, ["q", text]], "sys"] for text in grouped(tokens, sizes)]
    decoder = TurnDecoder(Qwen25Max, Payload(data=[], answer_index=turns), event_id=EID)
    text, _, done = run(decoder, stream_of(states))
    assert text == done.text == "".join(tokens)


@FAST
@given(tokens=token_lists, sizes=update_sizes, turns=st.integers(0, 2))
def test_gradio6_messages_chatbot_deltas_join_to_the_final_answer(tokens, sizes, turns):
    def message(role: str, text: str) -> dict[str, Any]:
        return {"role": role, "metadata": None, "content": [{"text": text, "type": "text"}],
                "options": None}

    history = [message(r, f"{r}{i}") for i in range(turns) for r in ("user", "assistant")]
    states = [["", [*history, message("user", "q"), message("assistant", text)], "sys"]
              for text in grouped(tokens, sizes)]
    payload = Payload(data=[], answer_index=2 * turns, extra={"messages": True})
    decoder = TurnDecoder(Qwen25Max, payload, event_id=EID)
    text, _, done = run(decoder, stream_of(states))
    assert text == done.text == "".join(tokens)


marker_pieces = st.sampled_from(["a", " b", "\n", "<", "\n<", "sum", "mary>", "<summary>",
                                 SUMMARY_MARKER, "\n<sum"]) | st.text(max_size=4)


@FAST
@given(tokens=st.lists(marker_pieces, max_size=25), sizes=update_sizes)
def test_1m_deltas_join_to_the_answer_before_its_summary_marker(tokens, sizes):
    """The 1M Space shows a placeholder first and may end with a summary block: the
    answer is the text before ``\\n<summary>`` even when the marker arrives split."""
    full = "".join(tokens)
    def pair(text: str) -> list[Any]:
        return [modelscope_message("q"), [modelscope_message(text)]]

    states = [[[pair("Qwen is thinking...")]]]
    states += [[[pair(text)]] for text in grouped(tokens, sizes)[1:]]
    decoder = TurnDecoder(Qwen25_1M, Payload(data=[], answer_index=0), event_id=EID)
    text, reasoning, done = run(decoder, stream_of(states))
    cut = full.find(SUMMARY_MARKER)
    answer = full if cut < 0 else full[:cut]
    assert text == done.text == answer
    assert done.reasoning == ("" if cut < 0 else full[cut:])

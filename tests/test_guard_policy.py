from aiogw.config import User
from aiogw.config_guards import GuardActions
from aiogw.guards import redact
from aiogw.guards.policy import Policy


def test_defaults():
    a = Policy(GuardActions(), []).for_user("anyone")
    assert a.action("injection", "tool_result", None) == "block"
    assert a.action("injection", "tool_definition", None) == "block"
    assert a.action("injection", "user", None) == "log"
    assert a.action("injection", "assistant", None) == "off"
    assert a.action("credential", "system", None) == "block"
    assert a.action("pii", "user", None) == "log"
    assert a.response == "log"


def test_precedence_user_then_config_then_pattern_then_builtin():
    configured = GuardActions(places=(("pii", "user", "redact"),), response="block")
    users = [User("bob", GuardActions(places=(("pii", "user", "off"), ("injection", "user", "block"))))]
    policy = Policy(configured, users)
    assert policy.for_user("bob").action("pii", "user", "log") == "off"
    assert policy.for_user("bob").action("injection", "user", None) == "block"
    assert policy.for_user("alice").action("pii", "user", "log") == "redact"
    assert policy.for_user("alice").action("pii", "system", "off") == "off"  # the pattern's own default
    assert policy.for_user(None).action("pii", "system", None) == "log"
    assert policy.for_user("bob").response == "block"


def test_mask_spans():
    assert redact.mask("mail a@b.io or c@d.io", [(5, 11, "email"), (15, 21, "email")]) == \
        "mail [REDACTED:email] or [REDACTED:email]"
    assert redact.mask("abcdef", [(1, 4, "x"), (2, 5, "y")]) == "a[REDACTED:x]f"


def test_apply_at_paths():
    body = {"messages": [{"content": [{"text": "key AKIA123 here"}]}]}
    findings = [{"path": ["messages", 0, "content", 0, "text"], "start": 4, "end": 11, "subcategory": "aws"}]
    assert redact.apply(body, findings) == 1
    assert body["messages"][0]["content"][0]["text"] == "key [REDACTED:aws] here"


class CountingEngine:
    """Counts the texts it is asked to scan, and the calls."""

    def __init__(self):
        self.texts = 0
        self.calls = 0

    def scan_many(self, place, texts):
        self.calls += 1
        self.texts += len(texts)
        return [[("match", place)] for _ in texts]


def test_scan_memo_scans_a_resent_text_once():
    from aiogw.dialects.walk import Text
    from aiogw.guards.check import ScanMemo

    engine, memo = CountingEngine(), ScanMemo(max_chars=3000)
    long_text = "x" * 1000
    for _ in range(3):
        assert memo.scan(engine, [Text("tool_result", (), "".join(long_text))]) == [[("match", "tool_result")]]
    assert engine.texts == 1
    memo.scan(engine, [Text("user", (), long_text)])  # another place: its own scan
    memo.scan(engine, [Text("user", (), "short")])
    memo.scan(engine, [Text("user", (), "short")])  # short texts are always scanned
    assert engine.texts == 4
    for i in range(3):
        memo.scan(engine, [Text("user", (), str(i) * 1000)])  # over max_chars: the oldest go
    memo.scan(engine, [Text("tool_result", (), long_text)])
    assert engine.texts == 8


def test_scan_memo_sends_a_place_s_texts_in_one_call():
    from aiogw.dialects.walk import Text
    from aiogw.guards.check import ScanMemo

    engine, memo = CountingEngine(), ScanMemo()
    items = [Text("user", (), "a"), Text("tool_result", (), "b"), Text("user", (), "c" * 600), Text("user", (), "d")]
    assert memo.scan(engine, items) == [[("match", p)] for p in ("user", "tool_result", "user", "user")]
    assert (engine.calls, engine.texts) == (2, 4)
    memo.scan(engine, items)  # the long one is remembered
    assert (engine.calls, engine.texts) == (4, 7)


def test_scan_memo_counts_a_text_repeated_in_one_request_once():
    from aiogw.dialects.walk import Text
    from aiogw.guards.check import ScanMemo

    engine, memo = CountingEngine(), ScanMemo(max_chars=10_000)
    text = "y" * 1000
    for i in range(50):
        memo.scan(engine, [Text("user", (), text), Text("user", (), text), Text("user", (), str(i) * 600)])
    assert memo.chars == sum(len(text) for _, text in memo)
    assert len(memo) > 1  # the memo still holds texts

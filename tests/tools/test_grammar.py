"""The grammar IR: GBNF text, bounds, and prefix matching with shortest completions."""

from __future__ import annotations

import pytest

from nanoserve.worker.grammar import ANY_CHAR, ROOT, Chars, Grammar, Lit, Ref, Repeat, chars


def _digits_grammar() -> Grammar:
    g = Grammar()
    digit = chars("0-9")
    g.rule(ROOT, [Lit("n="), Repeat(digit, 2, 4), Lit(";")])
    return g


def test_gbnf_text() -> None:
    g = Grammar()
    word = g.rule("word", [chars("a-z"), Repeat(chars("a-z"), 0, 7)])
    g.rule(ROOT, [Lit('say "'), word, Lit('"\n')], [Lit("-"), Repeat(Chars(((ord("]"), ord("]")),)), 1, None)])
    assert g.gbnf() == (
        'root ::= "say \\"" word "\\"\\n" | "-" [\\]]{1,}\n'
        "word ::= [a-z] [a-z]{0,7}\n"
    )


def test_identical_rules_are_shared() -> None:
    g = Grammar()
    a = g.rule("x", [Lit("a")])
    b = g.rule("y", [Lit("a")])
    c = g.rule("x", [Lit("b")])
    assert a == b and c.name == "x-2"


def test_escapes_in_classes_and_literals() -> None:
    g = Grammar()
    g.rule(ROOT, [Lit("\t\x01é"), Chars(((0, 0x1F), (ord("-"), ord("-")), (0x1F600, 0x1F600)), negated=True), ANY_CHAR])
    assert g.gbnf() == 'root ::= "\\t\\x01é" [^\\x00-\\x1F\\-\\U0001F600] .\n'


def test_bounds() -> None:
    g = _digits_grammar()
    assert g.min_text() == "n=00;"
    assert g.max_bytes() == 2 + 4 + 1
    # worst cut: before anything was written: the whole shortest sentence
    assert g.close_bound() == len("n=00;")
    unbounded = Grammar()
    unbounded.rule(ROOT, [Lit("x"), Repeat(chars("a"), 0, None)])
    assert unbounded.max_bytes() is None


def test_multibyte_characters_count_their_bytes() -> None:
    g = Grammar()
    g.rule(ROOT, [Repeat(Chars(((ord('"'), ord('"')),), negated=True), 0, 3)])
    assert g.max_bytes() == 12


def test_close_bound_with_a_token_cost() -> None:
    g = Grammar()
    g.rule(ROOT, [Lit("<tool_call>"), Repeat(chars("a"), 0, 5), Lit("</tool_call>")])
    # cut after "<": the rest of the opener (10) and the closer (12)
    assert g.close_bound() == 10 + 12 + 1
    assert g.close_bound(lambda text: 1) == 2  # every literal one "token": rest of a literal + the closer


@pytest.mark.parametrize("text", ["", "n", "n=", "n=1", "n=12", "n=123", "n=1234"])
def test_every_prefix_completes(text: str) -> None:
    g = _digits_grammar()
    m = g.matcher()
    assert m.feed(text)
    completed = text + m.completion()
    check = g.matcher()
    assert check.feed(completed) and check.accepted
    assert len(completed) <= max(len(text), 4) + 1


def test_matcher_rejects_and_accepts() -> None:
    g = _digits_grammar()
    m = g.matcher()
    assert m.feed("n=12") and not m.accepted
    assert m.feed(";") and m.accepted and m.completion() == ""
    assert not g.matcher().feed("n=1a")
    assert not g.matcher().feed("n=12345")


def test_alternatives_complete_with_the_cheapest_branch() -> None:
    g = Grammar()
    long_word = g.rule("long", [Lit("abcdefgh")])
    g.rule(ROOT, [Lit("a"), Lit("bc")], [long_word])
    m = g.matcher()
    assert m.feed("a") and m.completion() == "bc"
    m = g.matcher()
    assert m.feed("abcd") and m.completion() == "efgh"


def test_recursive_rule_is_unbounded_and_refused_by_the_analysis() -> None:
    g = Grammar()
    g.rules[ROOT] = ((Lit("("), Repeat(Ref(ROOT), 0, 1), Lit(")")),)
    assert g.max_bytes() is None
    with pytest.raises(ValueError, match="recursive"):
        g.close_bound()

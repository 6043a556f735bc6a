"""A1111's 75-token chunking with comma backtracking, on plain token ids."""

from __future__ import annotations

from sdapi.engine.conditioning import split_into_chunks

BOS, EOS, COMMA = 49406, 49407, 267


def chunks_of(ids, backtrack=20):
    return split_into_chunks([(ids, 1.0)], COMMA, EOS, BOS, backtrack)


def test_short_prompt_is_one_padded_chunk():
    (chunk,) = chunks_of([1, 2, 3])
    assert chunk.tokens == [BOS, 1, 2, 3] + [EOS] * 73
    assert len(chunk.tokens) == 77 and chunk.weights == [1.0] * 77


def test_empty_prompt_is_one_chunk():
    assert [c.tokens for c in chunks_of([])] == [[BOS] + [EOS] * 76]


def test_exactly_75_tokens_fit_one_chunk():
    assert len(chunks_of(list(range(1, 76)))) == 1
    assert len(chunks_of(list(range(1, 77)))) == 2


def test_comma_backtrack_moves_the_tail_after_the_last_comma():
    ids = list(range(1, 69)) + [COMMA] + list(range(100, 132))  # comma is token 69 (index 68)
    first, second = chunks_of(ids)
    assert first.tokens[1:70] == ids[:69] and first.tokens[70:] == [EOS] * 7
    assert second.tokens[1:33] == ids[69:]


def test_no_backtrack_when_the_comma_is_too_far_back_or_disabled():
    ids = list(range(1, 40)) + [COMMA] + list(range(100, 150))
    first, _ = chunks_of(ids)
    assert first.tokens[1:76] == ids[:75]
    first, _ = chunks_of(list(range(1, 69)) + [COMMA] + list(range(100, 132)), backtrack=0)
    assert first.tokens[1:76] == (list(range(1, 69)) + [COMMA] + list(range(100, 132)))[:75]


def test_break_closes_the_chunk():
    chunks = split_into_chunks([([1, 2], 1.0), ([], -1), ([3], 1.0)], COMMA, EOS, BOS)
    assert [c.tokens[:4] for c in chunks] == [[BOS, 1, 2, EOS], [BOS, 3, EOS, EOS]]


def test_weights_follow_their_tokens():
    (chunk,) = split_into_chunks([([1], 1.0), ([2, 3], 1.21)], COMMA, EOS, BOS)
    assert chunk.weights[:5] == [1.0, 1.0, 1.21, 1.21, 1.0]

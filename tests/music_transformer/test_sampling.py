"""The processors and loops added to lightning_modules/sampling.py, on hand-made logits and ids."""
import pytest
import torch

from lightning_modules.sampling import (build_processors, chord_tone_mask, generate_batch, pitch_class_mask,
                                        remi_beat_position, repetition_penalty, sample_next, stream_tokens,
                                        top_k)
from tests.music_transformer.test_relative_attention import tiny_model


def test_repetition_penalty_touches_only_recent_eligible_ids():
    logits = torch.tensor([[2.0, -1.0, 3.0, 4.0, 1.0]])
    history = torch.tensor([[0, 1, 3, 2]])
    out = repetition_penalty(2.0, window=3, token_ids=[1, 2, 4])(logits, history)
    # window = last 3 ids {1, 3, 2}; eligible {1, 2, 4}: ids 1 and 2 are penalised, 0 (too old) and 3 not
    assert out.tolist() == [[2.0, -2.0, 1.5, 4.0, 1.0]]


def test_pitch_class_mask_per_row_hard_and_soft():
    pcs = torch.tensor([-1, 0, 4, 7, 1, 12 % 12, -1])  # ids 0 and 6 are not pitches
    allowed = torch.zeros(2, 12, dtype=torch.bool)
    allowed[0, [0, 4, 7]] = True  # C major triad
    allowed[1, [1]] = True
    logits = torch.zeros(2, 7)
    hard = pitch_class_mask(pcs, allowed)(logits, torch.zeros(2, 1, dtype=torch.long))
    assert torch.isinf(hard).tolist() == [[False, False, False, False, True, False, False],
                                          [False, True, True, True, False, True, False]]
    soft = pitch_class_mask(pcs, allowed[0], penalty=3.0)(logits, torch.zeros(2, 1, dtype=torch.long))
    assert soft[1].tolist() == [0, 0, 0, 0, -3.0, 0, 0]


def test_remi_beat_position_and_chord_mask_follow_the_decoded_time():
    # vocab: 0 Bar, 1 Position beat 0, 2 Position beat 2, 3 pitch C, 4 pitch D
    is_bar = torch.tensor([True, False, False, False, False])
    position = torch.tensor([-1.0, 0.0, 2.0, -1.0, -1.0])
    pcs = torch.tensor([-1, -1, -1, 0, 2])
    history = torch.tensor([[9, 0, 1, 3, 2, 0, 2]])  # prompt id 9, then bar 0 .. bar 1 beat 2
    beat = remi_beat_position(history[:, 1:], is_bar, position)
    assert beat.tolist() == [6.0]
    grid = torch.zeros(1, 8, 12, dtype=torch.bool)  # one step per beat: C allowed before beat 6, D after
    grid[0, :6, 0] = True
    grid[0, 6:, 2] = True
    mask = chord_tone_mask(pcs, is_bar, position, grid, steps_per_beat=1, start=1, penalty=float("inf"))
    out = mask(torch.zeros(1, 5), history)
    assert torch.isinf(out[0, 3]) and out[0, 4] == 0
    # the first generated token (nothing after the prompt yet) is judged at beat 0
    assert remi_beat_position(history[:, 7:], is_bar, position).tolist() == [0.0]
    first = mask(torch.zeros(1, 5), history[:, :1])
    assert first[0, 3] == 0 and torch.isinf(first[0, 4])


def test_old_processors_unchanged_and_history_required_when_needed():
    torch.manual_seed(0)
    logits = torch.randn(4, 10)
    greedy = sample_next(logits, build_processors(top_k_=1))
    assert torch.equal(greedy, logits.argmax(-1))
    with pytest.raises(ValueError, match="history"):
        sample_next(logits, [repetition_penalty(1.5)])


def test_streaming_yields_the_batch_result_step_by_step():
    model = tiny_model()
    prompts = [[1, 2, 3, 4], [5, 6, 7, 8]]
    batch = generate_batch(model, prompts, 10, [top_k(1)], pad_id=0)
    streamed = [tok.tolist() for tok, _ in stream_tokens(model, torch.tensor(prompts), 10, [top_k(1)])]
    assert [list(r) for r in zip(*streamed)] == batch


def test_stop_and_eos_end_rows_independently():
    model = tiny_model()
    first = generate_batch(model, [[1, 2, 3]], 6, [top_k(1)], pad_id=0)[0]
    stop_id = first[2]  # the row must end at the first occurrence of this id
    out = generate_batch(model, [[1, 2, 3], [1, 2, 3]], 6, [top_k(1)], pad_id=0,
                         stop=lambda nxt: nxt == stop_id)
    end = first.index(stop_id) + 1
    assert out == [first[:end], first[:end]]
    eos = generate_batch(model, [[1, 2, 3]], 6, [top_k(1)], pad_id=0, eos_id=stop_id)[0]
    assert eos == first[:end]

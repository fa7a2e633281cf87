from runner.rank.accounting import count_generated

EOS = 2
PAD = 0


def test_no_eos_counts_every_position():
    c = count_generated([5, 6, 7, 8], [EOS])
    assert (c.tokens, c.raw_tokens, c.padding) == (4, 4, 0)


def test_padding_after_eos_is_not_counted_and_eos_counts_once():
    # what a batched generate returns for a row that stopped early: EOS, then pads
    c = count_generated([5, 6, EOS, PAD, PAD, PAD], [EOS])
    assert (c.tokens, c.raw_tokens, c.padding) == (3, 6, 3)


def test_only_the_first_eos_ends_the_sequence():
    c = count_generated([EOS, 5, EOS, PAD], [EOS])
    assert c.tokens == 1


def test_several_eos_ids():
    assert count_generated([5, 9, 6], [2, 9]).tokens == 2

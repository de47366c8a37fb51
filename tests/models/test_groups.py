"""C4 and D4 as grid symmetries: the Cayley table is a group table and agrees with the action."""

import itertools

import pytest
import torch

from equissl.models.groups import act, get_group


@pytest.mark.parametrize("name,order", [("c4", 4), ("d4", 8)])
def test_table_is_a_group_that_matches_the_action(name, order):
    g = get_group(name)
    assert g.order == order and g.elements[0] == (0, 0)
    t = g.table
    x = torch.randn(2, 5, 5)
    for a, b in itertools.product(range(order), repeat=2):
        assert torch.equal(g.act(g.act(x, b), a), g.act(x, int(t[a, b])))  # a after b = ab
    for a, b, c in itertools.product(range(order), repeat=3):
        assert t[t[a, b], c] == t[a, t[b, c]]  # associative
    assert torch.equal(t[0], torch.arange(order)) and torch.equal(t[:, 0], torch.arange(order))
    assert all(t[a, g.inverse[a]] == 0 == t[g.inverse[a], a] for a in range(order))
    for row in t:  # every row a permutation (Latin square)
        assert sorted(row.tolist()) == list(range(order))


def test_quarter_turn_has_order_four_and_mirror_order_two():
    x = torch.randn(3, 6, 6)
    turn = x
    for k in range(1, 5):
        turn = act(turn, (1, 0))
        assert torch.equal(turn, x) == (k == 4)
    assert torch.equal(act(act(x, (0, 1)), (0, 1)), x) and not torch.equal(act(x, (0, 1)), x)
    d4 = get_group("d4")
    # a mirror conjugates a turn to its inverse: m r m = r^-1
    m, r = d4.elements.index((0, 1)), d4.elements.index((1, 0))
    assert d4.table[m, d4.table[r, m]] == d4.inverse[r]


def test_unknown_group_is_refused():
    with pytest.raises(ValueError, match="unknown group 'c8'"):
        get_group("c8")

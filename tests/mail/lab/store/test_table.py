"""
Tests for L{twisted_netlab.mail.lab.store.table}: the compact table of a
folder's messages, whose kept counts must always equal a count made from
scratch, and the flag words, which must give the flags the names give.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.store.names import flags_from_info, size_from_name
from twisted_netlab.mail.lab.store.table import (
    MessageTable,
    flags_of_word,
    info_of,
    key_of,
    word_of,
)

KEYWORDS = {0: "$Forwarded", 2: "Work", 25: "last"}

infos = st.one_of(
    st.none(), st.text(alphabet="DFPRSTacz!,", max_size=6)
)  # None: no ":2," at all
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(1, 60),
            infos,
            st.booleans(),
            st.one_of(st.none(), st.integers(0, 10_000)),
        ),
        st.tuples(st.just("rename"), st.integers(0, 80), infos, st.booleans()),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 80), max_size=40)),
        st.tuples(st.just("replace"), st.lists(st.integers(1, 60), max_size=40)),
    ),
    max_size=40,
)


def name_for(uid: int, info: str | None, size: int | None) -> str:
    key = f"1700000000.M{uid}P7.host,S=1" + ("" if size is None else f",W={size}")
    return key if info is None else f"{key}:2,{info}"


def named_size(name: str, otherwise: int) -> int:
    size = size_from_name(key_of(name), "W=")
    return otherwise if size is None else size


def recount(model: dict[int, tuple[str, bool]]) -> dict[str, object]:
    """The counts, made from scratch from (name, in new/) by UID."""
    ordered = sorted(model)
    unseen = [u for u in ordered if "S" not in info_of(model[u][0])]
    return {
        "messages": len(model),
        "unseen": len(unseen),
        "deleted": sum(1 for u in ordered if "T" in info_of(model[u][0])),
        "recent": sum(1 for u in ordered if model[u][1]),
        "first_unseen": ordered.index(unseen[0]) if unseen else -1,
        "size": sum(named_size(model[u][0], 1000 + u) for u in ordered),
    }


def counts(table: MessageTable) -> dict[str, object]:
    return {
        "messages": len(table),
        "unseen": table.unseen,
        "deleted": table.deleted,
        "recent": table.recent,
        "first_unseen": table.first_unseen(),
        "size": table.size(lambda uid: 1000 + uid),
    }


class TableTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(operations)
    def test_counts_kept(self, steps: list[tuple[object, ...]]) -> None:
        """
        After any sequence of additions (in any UID order), renames,
        removals and wholesale replacements, the table's UIDs, names,
        places and counts (messages, unseen, deleted, recent, the first
        unseen, the size with unsized messages measured) equal a recount.
        """
        table = MessageTable()
        model: dict[int, tuple[str, bool]] = {}
        for step in steps:
            kind = step[0]
            if kind == "add":
                _, uid, info, new, size = step
                assert isinstance(uid, int)
                name = name_for(uid, info, size)  # type: ignore[arg-type]
                table.add(uid, name, bool(new))
                model[uid] = (name, bool(new))
            elif kind == "rename" and model:
                _, index, info, new = step
                uid = sorted(model)[index % len(model)]  # type: ignore[operator]
                key = key_of(model[uid][0])
                name = key if info is None else f"{key}:2,{info}"
                table.update(table.position(uid), name, bool(new))
                model[uid] = (name, bool(new))
            elif kind == "remove" and model:
                ordered = sorted(model)
                chosen = {ordered[i % len(ordered)] for i in step[1]}  # type: ignore[attr-defined]
                removed = table.remove(table.position(uid) for uid in chosen)
                self.assertEqual(sorted(removed), sorted(chosen))
                for uid in chosen:
                    del model[uid]
            elif kind == "replace":
                model = {
                    uid: (name_for(uid, "S" if uid % 3 else None, uid), uid % 2 == 0)
                    for uid in step[1]  # type: ignore[attr-defined]
                }
                table.replace((u, n, new) for u, (n, new) in model.items())
            self.assertEqual(list(table.uids), sorted(model))
            self.assertEqual(table.names, [model[u][0] for u in sorted(model)])
            self.assertEqual(
                list(table.places), [int(model[u][1]) for u in sorted(model)]
            )
            self.assertEqual(counts(table), recount(model))

    def test_first_unseen_after_a_flag_is_taken_away(self) -> None:
        """
        Once every message is seen, taking \\Seen away from an old one makes
        it the first unseen again (the low-water mark goes back).
        """
        table = MessageTable()
        for uid in (1, 2, 3):
            table.add(uid, name_for(uid, "S", 10), False)
        self.assertEqual(table.first_unseen(), -1)
        table.update(1, name_for(2, "", 10), False)
        self.assertEqual(table.first_unseen(), 1)
        table.add(4, name_for(4, None, 10), True)
        self.assertEqual(table.first_unseen(), 1)

    def test_positions(self) -> None:
        """
        L{MessageTable.positions} finds each of ascending UIDs, -1 for the
        missing, in one pass.
        """
        table = MessageTable()
        for uid in (2, 4, 6, 8):
            table.add(uid, name_for(uid, None, 1), False)
        self.assertEqual(
            list(table.positions([1, 2, 5, 6, 8, 9])), [-1, 0, -1, 2, 3, -1]
        )
        self.assertEqual(table.position(8), 3)
        self.assertEqual(table.position(7), -1)


class WordTests(SynchronousTestCase):
    @given(st.text(alphabet="DFPRSTabcyz!,2:", max_size=10))
    def test_flags_as_the_names_give_them(self, info: str) -> None:
        """
        The flags of a name's flag word are its system flags (as
        L{flags_from_info} reads them) then its keywords in letter order;
        a letter without a keyword is said to be missing.
        """
        name = f"1700000000.M1P1.host:2,{info}"
        flags, complete = flags_of_word(word_of(name), KEYWORDS)
        letters = sorted({ord(c) - 97 for c in info_of(name) if "a" <= c <= "z"})
        self.assertEqual(
            flags,
            flags_from_info(info_of(name))
            + tuple(KEYWORDS[i] for i in letters if i in KEYWORDS),
        )
        self.assertEqual(complete, all(i in KEYWORDS for i in letters))

    def test_no_info(self) -> None:
        """A name without C{:2,} has no flags; its key is the whole name."""
        self.assertEqual(word_of("1.M1P1.host,S=3"), 0)
        self.assertEqual(key_of("1.M1P1.host,S=3:2,S"), "1.M1P1.host,S=3")
        self.assertEqual(info_of("1.M1P1.host:1,x"), "")
